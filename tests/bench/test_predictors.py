"""bench/predictors.py on demo data: the protocol's runs, seeds and summary."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO


@pytest.mark.slow
def test_predictor_bench_runs_on_demo_data(demo_h5, tmp_path):
    out = tmp_path / "bench"
    args = ["--data", str(demo_h5), "--models", "mlp", "gcn", "--seeds", "0", "1", "--epochs", "2", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "bench.predictors", *args], cwd=REPO, check=True, capture_output=True)
    r = json.loads(out.with_suffix(".json").read_text())
    assert [(x["model"], x["split_seed"]) for x in r["runs"]] == [("mlp", 0), ("mlp", 1), ("gcn", 0), ("gcn", 1)]
    assert [x["train_seed"] for x in r["runs"]] == [0, 1, 0, 1]  # training seed = split seed, the protocol
    assert r["protocol"]["overrides"] == {"epochs": 2} and r["runs"][0]["hp"]["epochs"] == 2
    taus = [x["kendall_tau"] for x in r["runs"] if x["model"] == "gcn"]
    assert r["summary"]["gcn"]["kendall_tau"]["mean"] == pytest.approx(np.mean(taus))
    assert "| gcn | 2 |" in out.with_suffix(".md").read_text()
