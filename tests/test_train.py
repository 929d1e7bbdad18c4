"""train.py: a whole run (checkpoint, metrics, plot, runs/latest) and the CLI's errors."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import train as T
from dataset import load_nb101
from lib.nb101.join import space_rows
from lib.nb101.space import NUM_CELLS, space_fingerprint
from lib.predictors.inference import predict, predict_cells
from lib.predictors.metrics import prediction_metrics
from lib.util.errors import UserError
from lib.util.outputs import umask
from model import load_checkpoint

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
    for key in (
        "kendall_tau",
        "spearman",
        "mse",
        "precision_at_k",
        "top1_true",
        "top10_true_mean",
        "best_true",
        "n_train",
        "n_eval",
        "seconds",
        "config",
    ):
        assert key in saved, key
    assert saved["n_train"] == 172 and saved["n_eval"] == 400 and saved["config"]["epochs"] == 5
    assert (run / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the checkpoint alone gives back the evaluated model: same predictions, same metrics
    model, info = load_checkpoint(run / "checkpoint.pt")
    data = load_nb101(demo_h5)
    assert info["model"] == "mlp" and info["split"] == {"name": "172", "seed": 0, "eval": "all"}
    assert info["target"] == {"metric": "val", "repeat": "mean", "epochs": 108}
    assert info["data"]["fingerprint"] == data.fingerprint and info["hp"]["epochs"] == 5
    again = prediction_metrics(predict(model, data.features()), data.labels("val", repeat="mean"))
    assert again["kendall_tau"] == pytest.approx(saved["kendall_tau"], abs=1e-9)
    assert again["mse"] == pytest.approx(saved["mse"], rel=1e-9)

    # a second run gets its own folder and takes over runs/latest
    m2 = T.main(["--data", str(demo_h5), "--model", "gcn", "--epochs", "2", "--quiet", "--split", "334"])
    assert (tmp_path / "runs" / "latest").resolve() == (tmp_path / m2["config"]["run"]).resolve() != run.resolve()


# ----------------------------------------------------------------------------- CLI errors


def test_empty_split_and_absent_labels_are_one_line(demo_h5, tmp_path, monkeypatch):
    low = tmp_path / "low.hdf5"
    low.write_bytes(demo_h5.read_bytes())
    with h5py.File(low, "r+") as f:
        f["metrics"][...] = np.minimum(f["metrics"][()], 0.9)  # nothing above 91%
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        T.main(["--data", str(low), "--split", "91-172", "--quiet"])
    assert str(e.value) == f"--split 91-172 (seed 0) of {low}: no cell with a val label"
    with h5py.File(low, "r+") as f:
        f["metrics"][:, :, :, :, 3] = np.nan  # no test accuracy at all
    with pytest.raises(UserError) as e:
        T.main(["--data", str(low), "--target", "test", "--quiet"])
    assert str(e.value) == f"{low} has no test accuracy at 108 epochs; try another --target"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_training_cells_that_cover_the_eval_cells_are_said(demo_h5, tmp_path, monkeypatch, capsys):
    """Over half: a warning; the count in metrics.json and the summary; all: refused (tests/test_refusals.py)."""
    monkeypatch.chdir(tmp_path)
    m = T.main(["--data", str(demo_h5), *QUICK, "--split", "334"])  # 334 of the 400 cells
    assert capsys.readouterr().err == (
        "train.py: warning: 334 of the 400 evaluation cells are training cells (--split 334): the metrics measure "
        "the fit more than the prediction\n"
    )
    assert m["n_eval_trained_on"] == 334 and m["true_label"] == "val:0 at 108 epochs"
    m = T.main(["--data", str(demo_h5), "--model", "mlp", "--epochs", "2", "--target", "val:mean"])
    out, err = capsys.readouterr()
    assert "warning" not in err and m["n_eval_trained_on"] == 172 and m["true_label"] == "val:mean at 108 epochs"
    assert "400 cells (172 of them training cells)" in out
    assert (
        f"best of the eval cells {100 * m['best_true']:.2f}%" in out
        and "true val:mean at 108 epochs (the target)" in out
    )


def test_help_shows_the_usage_examples(capsys):
    with pytest.raises(SystemExit) as e:
        T.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "python train.py --split 172" in out and "--target" in out


# ----------------------------------------------------------------------------- complete or absent, synthetic labels

QUICK = ["--model", "mlp", "--epochs", "2", "--quiet"]


@pytest.mark.slow
def test_a_failed_run_leaves_no_folder_and_latest_unchanged(demo_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = Path(T.main(["--data", str(demo_h5), *QUICK])["config"]["run"])
    mine = Path(T.main(["--data", str(demo_h5), *QUICK, "--out", "runs/mine"])["config"]["run"])
    before = {p: p.read_bytes() for p in mine.iterdir()}

    def fail_after_the_checkpoint(path, *args):
        assert (path.parent / "checkpoint.pt").is_file()  # written, in the folder being built
        raise RuntimeError("disk full")

    monkeypatch.setattr(T, "save_scatter", fail_after_the_checkpoint)
    for out in ([], ["--out", "runs/mine"], ["--out", "runs/new"]):
        with pytest.raises(RuntimeError, match="disk full"):
            T.main(["--data", str(demo_h5), *QUICK, *out])
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([first.name, "latest", "mine"])
        assert os.readlink(tmp_path / "runs" / "latest") == "mine"  # the last complete run
        assert {p: p.read_bytes() for p in mine.iterdir()} == before


@pytest.mark.slow
def test_out_replaces_a_run_and_refuses_anything_else(demo_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    T.main(["--data", str(demo_h5), *QUICK, "--out", "r"])
    (tmp_path / "r" / "search.json").write_text("{}")  # search.py's, about the old predictor
    T.main(["--data", str(demo_h5), *QUICK, "--out", "r"])
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pt", "metrics.json", "scatter.png"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(UserError, match="--out notes exists and is not a train.py run folder"):
        T.main(["--data", str(demo_h5), *QUICK, "--out", "notes"])
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]
    assert oct((tmp_path / "r").stat().st_mode & 0o777) == oct(0o777 & ~umask())  # a folder's usual mode


@pytest.mark.slow
def test_synthetic_labels_are_said_everywhere(demo_h5, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    titles, save_scatter = [], T.save_scatter

    def spy(path, pred, true, title):
        titles.append(title)
        save_scatter(path, pred, true, title)

    monkeypatch.setattr(T, "save_scatter", spy)
    real = tmp_path / "real.hdf5"
    real.write_bytes(demo_h5.read_bytes())
    with h5py.File(real, "r+") as f:
        f.attrs["synthetic_labels"] = False
    for path, synthetic in ((demo_h5, True), (real, False)):
        m = T.main(["--data", str(path), "--model", "mlp", "--epochs", "2", "--out", f"runs/{synthetic}"])
        summary = capsys.readouterr().out
        saved = json.loads((tmp_path / "runs" / str(synthetic) / "metrics.json").read_text())
        assert load_nb101(path).synthetic is m["synthetic_labels"] is saved["synthetic_labels"] is synthetic
        assert ("SYNTHETIC labels" in summary) is synthetic and ("SYNTHETIC" in titles[-1]) is synthetic


@pytest.mark.slow
def test_predictions_are_stored_with_the_checkpoint_for_search(demo_h5, tmp_path, monkeypatch, space):
    """Every row of --data, and with --predict-space every NB101 cell (the 423,624-cell path)."""
    monkeypatch.chdir(tmp_path)
    argv = ["--data", str(demo_h5), "--model", "mlp", "--epochs", "3", "--quiet", "--threads", "2"]
    m = T.main([*argv, "--out", "part"])
    assert m["config"]["stored_predictions"] == ["data"]  # 400 cells: the space would cost a prediction of 423k
    assert m["config"]["inference"]["threads"] == 2
    m = T.main([*argv, "--predict-space", "--out", "all"])
    model, info = load_checkpoint(tmp_path / "all" / "checkpoint.pt")
    data, stored = load_nb101(demo_h5), info["predictions"]
    assert m["config"]["stored_predictions"] == ["data", "space"]
    assert stored["data"]["fingerprint"] == data.fingerprint
    assert stored["data"]["precision"] == stored["space"]["precision"] == m["config"]["inference"]["precision"]
    rows = stored["data"]["values"].numpy()
    np.testing.assert_array_equal(rows, predict(model, data.features(), threads=2))  # the same batches, bit for bit
    everywhere = stored["space"]["values"].numpy()
    assert stored["space"]["fingerprint"] == space_fingerprint(space) and everywhere.shape == (NUM_CELLS,)
    at = space_rows(space, data.adjacency, data.operations, data.num_vertices)
    np.testing.assert_array_equal(everywhere[at], rows)
    sample = np.random.default_rng(0).choice(NUM_CELLS, 2000, replace=False)
    cells = {k: space[k][sample] for k in ("adjacency", "operations", "num_vertices")}
    np.testing.assert_allclose(everywhere[sample], predict_cells(model, cells), rtol=0, atol=1e-3)
