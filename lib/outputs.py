"""Outputs that are complete or absent: every file the toolkit writes goes through here.

from lib.outputs import write_atomic
write_atomic("runs/x/metrics.json", lambda f: json.dump(m, f))
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np


def write_atomic(path: str | Path, write, mode: str = "w") -> None:
    """write(f) into a temp file beside `path`, then rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays), "wb")


_SCALAR = r'(?:"[^"\n]*"|[-+.\deE]+|null|true|false)'
_FLAT_LIST = re.compile(rf"\[\s*({_SCALAR}(?:,\s*{_SCALAR})*)\s*\]")


def dumps(obj) -> str:
    """JSON with indent 2, but each list of scalars on one line (adjacency rows, ops, curves)."""
    # only the newlines json.dumps put between items go (strings hold none), so values never change
    return _FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", json.dumps(obj, indent=2))


def json_number(x: float) -> float | None:
    """JSON has no NaN: missing values are null."""
    return None if not math.isfinite(x) else float(x)


def pct(x: float | None, width: int = 6) -> str:
    """A fraction as a percentage with 2 decimals, or '-' when missing."""
    return f"{100 * x:{width}.2f}" if x is not None and math.isfinite(x) else f"{'-':>{width}}"
