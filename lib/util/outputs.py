"""Outputs that are complete or absent: every file the toolkit writes goes through here.

    from lib.util.outputs import write_atomic, write_json, atomic_path, atomic_dir
    write_json("runs/x/metrics.json", m)                                 # + "provenance": the code that made it
    write_atomic("runs/x/scatter.png", lambda f: fig.savefig(f), "wb")
    with atomic_path("data/x.hdf5") as tmp: h5py.File(tmp, "w")...      # libraries that want a path
    with atomic_dir("runs/x") as tmp: ...                                # a folder of files, all or none

Each writes beside its target and renames at the end, so a reader (or a crash, or Ctrl-C) never
sees half an output. New files and folders get the usual modes under the user's umask
(0644 / 0755 with umask 022), as open() and mkdir() would give them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lib.util.provenance import provenance


def umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file beside `path` to write; renamed onto `path` if the block ends well, removed if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write, mode: str = "w") -> None:
    """write(f) into a temp file beside `path`, then rename: readers never see a half-written file."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        write(f)


@contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """A temp folder beside `path` to fill; it becomes `path` if the block ends well, else it is removed.

    replace: an existing folder at `path` is swapped out and deleted (two renames: for an instant
    `path` is absent, never partial). Without it, an existing non-empty `path` is an OSError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700
        if replace and path.is_dir() and not path.is_symlink():
            old = tmp.with_name(tmp.name + ".old")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)  # fails on a non-empty folder: never merged into another run
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays), "wb")


_SCALAR = r'(?:"[^"\n]*"|[-+.\deE]+|null|true|false)'
_FLAT_LIST = re.compile(rf"\[\s*({_SCALAR}(?:,\s*{_SCALAR})*)\s*\]")


def dumps(obj) -> str:
    """JSON with indent 2, but each list of scalars on one line (adjacency rows, ops, curves)."""
    # only the newlines json.dumps put between items go (strings hold none), so values never change
    return _FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", json.dumps(obj, indent=2))


def write_json(path: str | Path, obj: dict) -> None:
    """`obj` as JSON (dumps), atomically, with "provenance": the commit and versions that made it."""
    write_atomic(path, lambda f: f.write(dumps(obj | {"provenance": provenance()}) + "\n"))


def json_number(x: float) -> float | None:
    """JSON has no NaN: missing values are null."""
    return None if not math.isfinite(x) else float(x)


def pct(x: float | None, width: int = 6) -> str:
    """A fraction as a percentage with 2 decimals, or '-' when missing."""
    return f"{100 * x:{width}.2f}" if x is not None and math.isfinite(x) else f"{'-':>{width}}"
