"""train.py and metrics.py: metric values, the training loop, a whole run, and the CLI's errors."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO
from scipy import stats

import train as T
from dataset import load_nb101
from lib import metrics as MT
from model import load_checkpoint, predict

# ----------------------------------------------------------------------------- metrics


def test_kendall_and_spearman_on_known_input():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    assert MT.kendall_tau(true, true) == 1.0 and MT.kendall_tau(-true, true) == -1.0
    # one discordant pair out of six: (5 - 1) / 6
    assert MT.kendall_tau(np.array([1.0, 3.0, 2.0, 4.0]), true) == pytest.approx(4 / 6)
    # ranks 1,3,2,4 vs 1,2,3,4: rho = 1 - 6 * 2 / (4 * 15)
    assert MT.spearman(np.array([10.0, 30.0, 20.0, 40.0]), true) == pytest.approx(0.8)


def test_metrics_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 20, 500) / 20  # many ties
    pred = true + rng.normal(0, 0.3, 500)
    pred[:50] = 0.5  # ties in the prediction too
    assert MT.kendall_tau(pred, true) == pytest.approx(stats.kendalltau(pred, true).statistic, abs=1e-12)
    assert MT.spearman(pred, true) == pytest.approx(stats.spearmanr(pred, true).statistic, abs=1e-12)


def test_precision_at_k_mse_and_top_values():
    true = np.array([0.90, 0.95, 0.80, 0.93, 0.91])
    pred = np.array([0.92, 0.90, 0.85, 0.94, 0.80])  # predicted order 3, 0, 1, 2, 4
    assert MT.precision_at_k(pred, true, 1) == 0.0  # true best is 1
    assert MT.precision_at_k(pred, true, 2) == 0.5  # {3, 0} vs {1, 3}
    assert MT.precision_at_k(pred, true, 3) == pytest.approx(2 / 3)  # {3, 0, 1} vs {1, 3, 4}
    assert MT.precision_at_k(pred, true, 100) == 1.0  # k beyond N: all cells
    assert MT.mse_pp(np.array([0.90, 0.92]), np.array([0.91, 0.92])) == pytest.approx(0.5)  # (1 pp)^2 / 2
    m = MT.evaluate(pred, true)
    assert m["top1_true"] == 0.93 and m["best_true"] == 0.95 and m["n_eval"] == 5
    assert m["top10_true_mean"] == pytest.approx(true.mean())
    assert set(m["precision_at_k"]) == {"10", "100"}
    json.dumps(m)  # plain JSON types


# ----------------------------------------------------------------------------- config helpers


def test_parse_target_and_hyperparams():
    assert T.parse_target("val") == ("val", 0)
    assert T.parse_target("test:2") == ("test", 2)
    assert T.parse_target("val:mean") == ("val", "mean")
    hp = T.hyperparams("gcn", {"epochs": 5, "lr": None, "model": "gcn"})
    assert hp == dict(epochs=5, batch_size=10, lr=1e-4, wd=1e-3, loss="mse")


# ----------------------------------------------------------------------------- training


def test_training_lowers_the_loss_and_learns_the_ranking(demo_h5):
    data = load_nb101(demo_h5)
    y = data.labels("val")
    train, held_out = np.arange(0, 200), np.arange(200, len(data))
    hp = dict(epochs=40, batch_size=10, lr=1e-3, wd=0.0, loss="mse")
    threads = torch.get_num_threads()
    model, history = T.train_model("gcn", data.features(train), y[train], hp, seed=0, quiet=True)
    assert len(history) == 40 and history[-1] < 0.5 * history[0]
    assert model.label_mean.item() == pytest.approx(y[train].mean())  # normalised with training labels only
    assert model.label_std.item() == pytest.approx(y[train].std())
    assert MT.kendall_tau(predict(model, data.features(held_out)), y[held_out]) > 0.3
    assert torch.get_num_threads() == threads and not model.training  # training's 1 thread restored


def test_fit_rejects_a_batch_larger_than_the_training_set(demo_h5):
    data = load_nb101(demo_h5)
    with pytest.raises(T.TrainError, match="batch size 10 is larger than the 5 training cells"):
        T.train_model("mlp", data.features(np.arange(5)), data.labels()[:5], T.hyperparams("mlp"), quiet=True)


# ----------------------------------------------------------------------------- a whole run


def test_run_writes_checkpoint_metrics_plot_and_latest(demo_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = T.main(["--data", str(demo_h5), "--model", "mlp", "--epochs", "5", "--quiet", "--target", "val:mean"])
    run = tmp_path / m["config"]["run"]
    assert run.parent == tmp_path / "runs" and run.name.startswith("mlp-172-s0-")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.json", "scatter.png"]
    assert (tmp_path / "runs" / "latest").resolve() == run.resolve()
    assert os.readlink(tmp_path / "runs" / "latest") == run.name  # relative: the runs/ folder can move

    saved = json.loads((run / "metrics.json").read_text())
    for key in ("kendall_tau", "spearman", "mse", "precision_at_k", "top1_true", "top10_true_mean", "best_true",
                "n_train", "n_eval", "seconds", "config"):  # fmt: skip
        assert key in saved, key
    assert saved["n_train"] == 172 and saved["n_eval"] == 400 and saved["config"]["epochs"] == 5
    assert (run / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the checkpoint alone gives back the evaluated model: same predictions, same metrics
    model, info = load_checkpoint(run / "checkpoint.pt")
    data = load_nb101(demo_h5)
    assert info["model"] == "mlp" and info["split"] == {"name": "172", "seed": 0, "eval": "all"}
    assert info["target"] == {"metric": "val", "repeat": "mean", "budget": 108}
    assert info["data"]["fingerprint"] == data.fingerprint and info["hp"]["epochs"] == 5
    again = MT.evaluate(predict(model, data.features()), data.labels("val", repeat="mean"))
    assert again["kendall_tau"] == pytest.approx(saved["kendall_tau"], abs=1e-9)
    assert again["mse"] == pytest.approx(saved["mse"], rel=1e-9)

    # a second run gets its own folder and takes over runs/latest
    m2 = T.main(["--data", str(demo_h5), "--model", "gcn", "--epochs", "2", "--quiet", "--split", "334"])
    assert (tmp_path / "runs" / "latest").resolve() == (tmp_path / m2["config"]["run"]).resolve() != run.resolve()


# ----------------------------------------------------------------------------- CLI errors


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_missing_data_file_is_one_line_pointing_at_the_converter(tmp_path):
    r = run_cli("--split", "172", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("train.py: error: data/nasbench.hdf5: no such file")
    assert "nasbench_tfrecord_converter.py" in r.stderr and "make demo" in r.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--split", "999"], "argument --split: invalid choice: '999'"),
        (["--model", "transformer"], "argument --model: invalid choice: 'transformer'"),
        (["--target", "train"], "argument --target: invalid choice: 'train'"),
    ],
)
def test_bad_arguments_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        T.main(args)
    assert message in str(e.value.code) and "\n" not in str(e.value.code)
    assert capsys.readouterr().err == ""  # no usage dump


def test_empty_split_and_absent_labels_are_one_line(demo_h5, tmp_path, monkeypatch):
    low = tmp_path / "low.hdf5"
    low.write_bytes(demo_h5.read_bytes())
    with h5py.File(low, "r+") as f:
        f["metrics"][...] = np.minimum(f["metrics"][()], 0.9)  # nothing above 91%
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        T.main(["--data", str(low), "--split", "91-172", "--quiet"])
    assert e.value.code == f"train.py: error: --split 91-172 (seed 0) of {low}: no cell with a val label"
    with h5py.File(low, "r+") as f:
        f["metrics"][:, :, :, :, 3] = np.nan  # no test accuracy at all
    with pytest.raises(SystemExit) as e:
        T.main(["--data", str(low), "--target", "test", "--quiet"])
    assert e.value.code == f"train.py: error: {low} has no test accuracy at 108 epochs; try another --target"
    assert not (tmp_path / "runs").exists()


def test_help_shows_the_usage_examples():
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "python train.py --split 172" in r.stdout and "--target" in r.stdout


def test_predictor_bench_runs_on_demo_data(demo_h5, tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import predictors

    out = tmp_path / "bench"
    r = predictors.main(["--data", str(demo_h5), "--models", "mlp", "gcn", "--seeds", "0", "1", "--epochs", "2",
                         "--out", str(out)])  # fmt: skip
    assert [(x["model"], x["split_seed"]) for x in r["runs"]] == [("mlp", 0), ("mlp", 1), ("gcn", 0), ("gcn", 1)]
    assert r["protocol"]["overrides"] == {"epochs": 2} and r["runs"][0]["hp"]["epochs"] == 2
    taus = [x["kendall_tau"] for x in r["runs"] if x["model"] == "gcn"]
    assert r["summary"]["gcn"]["kendall_tau"]["mean"] == pytest.approx(np.mean(taus))
    assert json.loads(out.with_suffix(".json").read_text())["summary"] == r["summary"]
    assert "| gcn | 2 |" in out.with_suffix(".md").read_text()
