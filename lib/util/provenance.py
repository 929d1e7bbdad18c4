"""Which code made an output: the commit, whether the tree held uncommitted changes, and the versions
that shape the numbers. Every JSON output carries it (lib.util.outputs.write_json).

    from lib.util.provenance import provenance
    provenance()   # {"commit": "3f2a...", "dirty": False, "python": "3.11.7", "torch": "2.14.1", "numpy": "2.4.6"}

Outside a git checkout (an installed copy, a tarball) commit and dirty are None. Read once per process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def provenance() -> dict:
    return {"commit": _git("rev-parse", "HEAD"), "dirty": _dirty()} | {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dirty() -> bool | None:
    """Changes to tracked files (untracked ones, such as data/ and runs/, are not the code)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
