"""bench/best_rank.py on demo data."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO


@pytest.mark.slow
def test_best_rank_bench_runs_on_demo_data(demo_h5, tmp_path):
    """bench/best_rank.py: the ranks it reports are those of the cells it left out, among the cells
    each fit did not see, by the predictor and by trainable parameters."""
    from dataset import load_nb101

    out = tmp_path / "best_rank.json"
    args = ["--data", str(demo_h5), "--model", "mlp", "--sizes", "30", "--draws", "2", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "bench.best_rank", *args], cwd=REPO, check=True, capture_output=True)
    r = json.loads(out.read_text())
    data = load_nb101(demo_h5)
    y = data.labels("val", 108, 0)
    best = np.argsort(-y, kind="stable")[:20]
    assert r["pool"]["best_val"] == pytest.approx(y[best[:5]].tolist())
    for draw in r["draws"]:
        fitted = np.random.RandomState(draw["draw"]).permutation(np.setdiff1d(np.arange(len(y)), best))[:30]
        rest = np.setdiff1d(np.arange(len(y)), fitted)
        params, p = data.trainable_parameters[rest], data.trainable_parameters
        want = [1 + int((params > p[b]).sum() + ((params == p[b]) & (rest < b)).sum()) for b in best[:5]]
        assert draw["params_ranks"] == want  # ties go by row
        assert all(1 <= k <= len(rest) for k in draw["ranks"]) and len(set(draw["ranks"])) == 5
