"""lib/util/provenance.py and write_json: the commit, whether tracked files changed, the versions."""

import json
import subprocess

import numpy as np
import pytest

from lib.util import provenance as P
from lib.util.outputs import write_json


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git checkout of one commit, as the code's REPO; provenance read afresh."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(P, "REPO", tmp_path)
    P.provenance.cache_clear()
    yield tmp_path, git
    P.provenance.cache_clear()


def test_the_commit_and_a_clean_tree(repo):
    root, git = repo
    (root / "runs").mkdir()  # untracked outputs are not the code
    (root / "runs" / "metrics.json").write_text("{}")
    p = P.provenance()
    assert p["commit"] == git("rev-parse", "HEAD") and len(p["commit"]) == 40 and p["dirty"] is False
    assert p["numpy"] == np.__version__ and p["python"].count(".") == 2


def test_a_changed_tracked_file_makes_the_tree_dirty(repo):
    root, _ = repo
    (root / "code.py").write_text("x = 2\n")
    assert P.provenance()["dirty"] is True


def test_outside_a_checkout_there_is_no_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "REPO", tmp_path)
    P.provenance.cache_clear()
    try:
        assert P.provenance()["commit"] is None and P.provenance()["dirty"] is None
    finally:
        P.provenance.cache_clear()


def test_every_json_output_carries_it(repo, tmp_path):
    write_json(tmp_path / "out.json", {"tau": 0.5})
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["tau"] == 0.5 and saved["provenance"] == P.provenance()
