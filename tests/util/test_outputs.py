"""lib/util/outputs.py: atomic writes (files and folders, with the umask's modes) and the JSON and table
formatting of results."""

import json
import os
import stat

import numpy as np
import pytest

from lib.util.outputs import atomic_dir, dumps, json_number, pct, umask, write_atomic


@pytest.fixture(params=[0o022, 0o077, 0o002])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_folders_get_the_usual_modes_under_the_umask(tmp_path, mask):
    assert umask() == mask and umask() == mask  # reading it leaves it be
    write_atomic(tmp_path / "a" / "x.json", lambda f: f.write("{}"))
    (tmp_path / "plain.json").write_text("{}")  # what open() gives
    assert mode(tmp_path / "a" / "x.json") == mode(tmp_path / "plain.json") == 0o666 & ~mask
    with atomic_dir(tmp_path / "run") as d:
        (d / "m.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    assert mode(tmp_path / "run") == mode(tmp_path / "plain") == 0o777 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "x.json"
    write_atomic(path, lambda f: f.write("old"))

    def half_then_fail(f):
        f.write("new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]


def test_a_folder_is_whole_or_absent_and_replaced_only_when_asked(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_dir(run) as d:
            (d / "checkpoint.pt").write_bytes(b"weights")
            raise RuntimeError("crash before the metrics")
    assert os.listdir(tmp_path) == []  # neither the folder nor its temp
    with atomic_dir(run) as d:
        (d / "a").write_text("1")
    with pytest.raises(OSError), atomic_dir(run) as d:  # not asked to replace: refused, run kept
        (d / "b").write_text("2")
    assert os.listdir(run) == ["a"]
    with pytest.raises(RuntimeError), atomic_dir(run, replace=True) as d:
        (d / "b").write_text("2")
        raise RuntimeError
    assert os.listdir(run) == ["a"]
    with atomic_dir(run, replace=True) as d:
        (d / "b").write_text("2")
    assert os.listdir(run) == ["b"] and os.listdir(tmp_path) == ["run"]


def test_json_output_is_compact_and_lossless():
    obj = {"adjacency": [[0, 1], [0, 0]], "ops": ["input", "a,  b", "[1,\n2]"], "x": [1e-3, None, True], "e": []}
    text = dumps(obj)
    assert json.loads(text) == obj and '"adjacency": [\n    [0, 1],\n    [0, 0]\n  ]' in text
    assert json_number(float("nan")) is None and json_number(np.float32(0.5)) == 0.5
    assert pct(0.9412) == " 94.12" and pct(None) == "     -"
