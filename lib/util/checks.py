"""The checks every script makes before any work: numbers in their range, seeds, output paths.

    from lib.util.checks import SEED, at_least, number, output_file, output_folder
    p.add_argument("--epochs", type=at_least(1))          # `--epochs 0`: one line, exit status 2
    p.add_argument("--lr", type=number(above=0))          # finite and > 0: no NaN, no inf
    p.add_argument("--seed", type=SEED)                   # 0 .. 2**32 - 1, what numpy's generators take
    output_file(args.output, "--output", inputs=[args.input])   # before the work, never after it
    output_folder(args.out, "--out")

The argparse types raise argparse's own error, which lib.util.errors.ArgumentParser makes a UserError:
`script: error: argument --epochs: must be at least 1 (got 0)`. The path checks raise UserError
naming the flag: a folder where a file goes (or the reverse), an output that is an input, a folder
that cannot be made or written (tried with a temporary file, which is removed: the permission bits
say nothing to root or on a read-only mount).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from lib.util.errors import UserError


def at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= low (and <= high)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {span} (got {value})")
        return value

    parse.__name__ = "integer"
    return parse


SEED = at_least(0, 2**32 - 1)  # numpy's RandomState and default_rng take no other seed


def number(
    *, above: float | None = None, low: float | None = None, below: float | None = None, high: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite float, > above, >= low, < below, <= high (those given)."""
    bounds = [(above, ">", lambda v, b: v > b), (low, ">=", lambda v, b: v >= b)]
    bounds += [(below, "<", lambda v, b: v < b), (high, "<=", lambda v, b: v <= b)]
    bounds = [(b, op, ok) for b, op, ok in bounds if b is not None]
    want = " and ".join(f"{op} {b:g}" for b, op, _ in bounds)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
        if not all(ok(value, b) for b, _, ok in bounds):
            raise argparse.ArgumentTypeError(f"must be {want} (got {text})")
        return value

    parse.__name__ = "number"
    return parse


# ----------------------------------------------------------------------------- output paths


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through links and spellings); False when either is absent."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def output_file(path: str | Path, flag: str | None, inputs: Iterable[str | Path | None] = ()) -> Path:
    """`path` can be written as a file: not a folder, none of `inputs`, and its folder (made if missing)
    writable. UserError naming `flag` (e.g. "--output") and the path otherwise."""
    what = f"{flag} {path}" if flag else str(path)
    if str(path) == "":
        raise UserError(f"{flag}: empty path (give a file name)")
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what}: is a folder (give a file name)")
    for source in inputs:
        if source is not None and same_file(p, source):
            raise UserError(f"{what} is the input {source} (write the output to another file)")
    _writable(p.parent, what)
    return p


def output_folder(path: str | Path, flag: str | None, hint: str = "choose another") -> Path:
    """`path` can hold output files: a folder, or one that can be made. UserError naming `flag` and the
    path otherwise, ending with `hint`."""
    what = f"{flag} {path}" if flag else str(path)
    if str(path) == "":
        raise UserError(f"{flag}: empty path (give a folder)")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what}: is a file, not a folder ({hint})")
    _writable(p, what, hint)
    return p


def _writable(folder: Path, what: str, hint: str = "choose another place") -> None:
    """UserError unless files can be created in `folder`, or in its nearest existing ancestor when it
    does not exist yet (where it would be made)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{what}: {existing} is a file, not a folder ({hint})")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-check.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{what}: cannot write in {existing}: {e.strerror or e} ({hint})") from None
    os.close(fd)
    os.unlink(probe)
