"""bench/nasbench_api.py on demo data: both readers measured on both files, and their answers compared."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow  # ~5 s: six Python processes
def test_the_bench_measures_both_readers_on_both_files(demo_h5, tfrecord, tmp_path):
    out = tmp_path / "nasbench_api.json"
    args = ["--full", str(demo_h5), "--real", str(tfrecord), "--queries", "50", "--out", str(out)]
    run = subprocess.run([sys.executable, "-m", "bench.nasbench_api", *args], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert [(f["file"], f["cells"]) for f in r["files"]] == [(demo_h5.name, 400), (tfrecord.name, 30)]
    for f in r["files"]:
        assert f["same_answers"] is True
        for reader in ("nasbench.api", "dicts"):
            m = f[reader]
            assert m["cells"] == f["cells"] and m["queries"] == min(50, f["cells"]) and m["load_s"] > 0
            assert m["queries_per_s"] > 0 and m["peak_rss_mb"] >= m["peak_rss_mb_after_load"] > 0
    assert r["files"][1]["first_load_converting_s"] > 0 and 0 < r["import_s"] < 5
    assert "| demo.hdf5 | nasbench.api | 400 |" in run.stdout and "published" in run.stdout
