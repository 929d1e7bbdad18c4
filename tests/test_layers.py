"""Imports point one way: entry scripts -> dataset.py, model.py -> lib/ (docs/pipeline.md).

import-linter checks the packages (lib/, bench/) by pyproject.toml's contracts; the top-level modules,
which it cannot analyse, are checked here by what their import statements name."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

STAGE_MODULES = {"dataset", "model"}
SCRIPTS = {"train", "search", "budgeted_search", "trainer", "tools"}  # tools/*.py are entry scripts too
OURS = STAGE_MODULES | SCRIPTS | {"lib", "bench"}


def imported(source: str) -> set[str]:
    """The full names of every module that `source` imports, at any depth of the code."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def crossings(path: Path) -> set[str]:
    """The repository's modules that `path` imports against the layers: a stage module imports no other
    module of ours but lib/, and the data layer (dataset.py) no search code; an entry script imports
    no other script."""
    full = imported(path.read_text())
    names = {n.split(".")[0] for n in full} & OURS
    if path.stem == "dataset":
        return (names - {"lib"}) | {n for n in full if n == "lib.search" or n.startswith("lib.search.")}
    if path.stem in STAGE_MODULES:
        return names - {"lib"}
    return names & SCRIPTS


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_top_level_modules_import_down_only():
    paths = [REPO / f"{m}.py" for m in ("dataset", "model", "train", "search", "budgeted_search", "trainer")]
    paths += sorted((REPO / "tools").glob("*.py"))
    assert {p: crossings(p) for p in paths} == {p: set() for p in paths}


def test_a_crossing_is_found(tmp_path):
    """The check above can fail: a stage module importing another, the data layer importing search code,
    a script importing a script."""
    (tmp_path / "model.py").write_text(
        "import numpy\nfrom lib.predictors.features import x\n\ndef f():\n    import dataset\n"
    )
    (tmp_path / "dataset.py").write_text("from lib.nb101.schema import EPOCHS\nfrom lib.search.table import Table\n")
    (tmp_path / "search.py").write_text("from model import build_model\nfrom budgeted_search import main\n")
    assert crossings(tmp_path / "model.py") == {"dataset"}
    assert crossings(tmp_path / "dataset.py") == {"lib.search.table"}
    assert crossings(tmp_path / "search.py") == {"budgeted_search"}
