"""budgeted_search.py: a search of NB101's table end to end, the predictor prepared aloud, synthetic
labels said, --prior, and searches with real training: on the local engine (resumed), and on Ray through
the command line. Its refusals: tests/test_budgeted_search_refusals.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import REPO, final_accuracies, rows_of, write_h5

import budgeted_search
import model
from lib.nb101.space import NUM_CELLS

PREDICTOR = "--n0 10 --per-round 5 --model mlp --epochs 2 --batch-size-train 5 --jobs 1".split()
TINY = ["--trial-epochs", "1", "--trial-stem-channels", "4", "--trial-stacks", "1", "--trial-train-images", "200"]
TINY += ["--trial-eval-images", "50", "--trial-args", "--batch-size 50 --bn-momentum 0.1", "--threads", "1"]


def test_help_fits_a_screen(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")  # what argparse wraps to when the help goes to a pipe
    with pytest.raises(SystemExit) as e:
        budgeted_search.parse_args(["--help"])
    assert e.value.code == 0 and len(capsys.readouterr().out.splitlines()) < 60


def test_a_table_search_end_to_end(tmp_path, space):
    rows = np.random.default_rng(3).choice(NUM_CELLS, 60, replace=False)
    val = np.random.default_rng(4).uniform(0.85, 0.95, 60)
    path = write_h5(tmp_path / "d.hdf5", final_accuracies(val), rows_of(space, rows))
    argv = ["--budget", "15", "--seeds", "2", "--strategy", "guided,re,random", "--data", str(path)]
    res = budgeted_search.main([*argv, *PREDICTOR, "--out", str(tmp_path / "b")])
    assert list(res["strategies"]) == ["guided", "re", "random"]
    for m in res["strategies"].values():
        assert len(m["curve_val_mean"]) == 15 and np.all(np.diff(m["curve_val_mean"]) >= 0)
        assert m["final_val_mean"] <= val.max() + 1e-6 and len(m["runs"]) == 2
        assert all(len(set(r["queried"])) == 15 for r in m["runs"])
    assert res["pool"]["best"]["val"] == pytest.approx(val.max()) and res["pool"]["cells"] == 60
    assert res["pool"]["neighbourhood"] == "10 nearest by path encoding"
    for name in ("curves_queries.png", "curves_time.png"):
        assert (tmp_path / "b" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "b" / "budget.json").read_text())
    assert saved["config"]["queries"] == 15 and saved["strategies"]["re"]["runs"] == res["strategies"]["re"]["runs"]


def test_the_predictor_is_prepared_aloud_before_the_rounds(tmp_path, demo_h5, monkeypatch):
    """A first-time preparation (pgin's pretraining, a minute) runs once before the quiet rounds, and may print."""
    calls = []
    real = budgeted_search.build_model

    def spy(name, **kwargs):
        built = real(name, **kwargs)
        built.prepare = lambda quiet=False: calls.append(quiet)
        return built

    monkeypatch.setattr(budgeted_search, "build_model", spy)
    argv = ["--budget", "12", "--seeds", "1", "--strategy", "guided", "--data", str(demo_h5), *PREDICTOR]
    res = budgeted_search.main([*argv, "--out", str(tmp_path / "b")])
    assert calls == [False] and res["config"]["model"] == "mlp" and res["pool"]["cells"] == 400


def test_synthetic_labels_are_said(tmp_path, demo_h5, monkeypatch, capsys):
    titles, plot_curves = [], budgeted_search.plot_search_curves
    monkeypatch.setattr(
        budgeted_search, "plot_search_curves", lambda out, *a: titles.append(a[2]) or plot_curves(out, *a)
    )
    budgeted_search.main(["--budget", "5", "--strategy", "random", "--data", str(demo_h5), "--out", str(tmp_path)])
    assert json.loads((tmp_path / "budget.json").read_text())["synthetic_labels"] is True
    assert "SYNTHETIC labels" in capsys.readouterr().out and titles[0].startswith("SYNTHETIC labels")


def test_prior_is_where_the_first_fit_starts(predictor, monkeypatch):
    """--prior: the first fit continues from the checkpoint's weights; later ones from the last fit."""
    calls = []
    monkeypatch.setattr(model, "refit", lambda net, *a, **k: calls.append(net))
    prior = predictor / "checkpoint.pt"
    args, _ = budgeted_search.parse_args(
        ["--budget", "12", "--data-root", "x", "--model", "mlp", "--prior", str(prior)]
    )
    fit = budgeted_search.predictor_trainer(args, "cpu", threads=1)
    y = np.zeros(3)
    fit(None, y, 0)
    fit(None, y, 1, start=SimpleNamespace(net="the last fit"))
    first_start, later_start = calls
    assert isinstance(first_start, torch.nn.Module) and first_start.name == "mlp" and later_start == "the last fit"
    saved = torch.load(prior, weights_only=True)["state_dict"]
    assert all((first_start.state_dict()[k].cpu() == v).all() for k, v in saved.items())


@pytest.mark.slow
def test_a_local_search_with_real_training_resumed(cifar_jpegs: Path, tmp_path: Path, capsys, monkeypatch):
    """Two real trials, then --resume with a budget of three (from another folder: the data was given as a
    relative path): one more, the first two read back untouched; --train hands the pick to trainer.py."""
    out = tmp_path / "s"
    monkeypatch.chdir(cifar_jpegs.parent)
    budgeted_search.main(
        ["--budget", "2", "--data-root", cifar_jpegs.name, "--strategy", "re", *TINY, "--out", str(out)]
    )
    first = {p: p.stat().st_mtime_ns for p in out.glob("trials/re-s0/*/metrics.json")}
    monkeypatch.chdir(tmp_path)
    picks = []
    monkeypatch.setattr(budgeted_search, "train_pick", picks.append)
    result = budgeted_search.main(["--resume", str(out), "--budget", "3", "--train", "--", "--epochs", "1"])
    assert len(first) == 2 and all(p.stat().st_mtime_ns == t for p, t in first.items())
    journal = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["index"] for r in journal] == [0, 1, 2]
    assert all(r["status"] == "done" and 0 <= r["val"] <= 1 for r in journal)
    for r in journal:
        m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert m["status"] == "done" and m["hash"] == r["hash"] and m["final"]["valid_acc"] == r["val"]
        assert m["config"]["stem_channels"] == 4 and m["config"]["epochs"] == 1  # the --trial-* flags
    top1 = json.loads((out / "top1.json").read_text())
    assert top1["val"] == max(r["val"] for r in journal)
    trainer = [sys.executable, str(REPO / "trainer.py"), "--arch", str(out / "top1.json")]
    where = ["--data-root", str(cifar_jpegs.resolve()), "--out", str(out / "top1")]  # as saved: from anywhere
    assert picks == [[*trainer, *where, "--epochs", "1"]]
    run = result["strategies"]["re"]["runs"][0]
    assert run["queried"] == [r["hash"] for r in journal] and len(result["strategies"]["re"]["curve_val_mean"]) == 3
    printed = capsys.readouterr().out
    assert printed.count("re s0 trial ") == 3 and "best val accuracy measured in 3 trials" in printed
    config = json.loads((out / "search_config.json").read_text())
    assert config["budget"] == 3 and config["data"]["classes"] == sorted(config["data"]["classes"])
    assert json.loads((out / "budget.json").read_text())["config"]["budget"] == 3


@pytest.mark.slow
def test_trials_on_ray_through_the_command_line(cifar_jpegs, tmp_path: Path, ray_address, one_ray_at_a_time, capsys):
    """--engine ray --address --concurrent 2: the local engine's outputs, the trials side by side."""
    out = tmp_path / "s"
    argv = ["--budget", "2", "--data-root", str(cifar_jpegs), "--strategy", "random", "--engine", "ray"]
    result = budgeted_search.main([*argv, "--address", ray_address, "--concurrent", "2", *TINY, "--out", str(out)])
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1] and all(r["status"] == "done" for r in records)
    assert result["strategies"]["random"]["runs"][0]["queried"] == [r["hash"] for r in records]
    assert json.loads((out / "top1.json").read_text())["val"] == max(r["val"] for r in records)
    assert capsys.readouterr().out.count("random s0 trial ") == 2
