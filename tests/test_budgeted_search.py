"""budgeted_search.py: a search of NB101's table end to end, a time budget its pool cannot fill, the
predictor prepared aloud, synthetic labels said, --prior, the flags --resume takes, and searches with real
training: on the local engine (resumed), and on Ray through the command line. Its refusals:
tests/test_budgeted_search_refusals.py."""

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
TINY += ["--trial-eval-images", "50", "--trial-args", "--batch-size 50 --bn-momentum 0.1"]


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


def test_a_time_budget_the_pool_cannot_fill_ends_with_the_pool(tmp_path, space, capsys):
    """5 cells whose 108-epoch repeats took 100, 110 and 120 s: --budget-time 600 (each cell at its costliest)
    is a budget the pool can pay. A query reads a repeat at random: each search queries each cell once, for
    less than 600 s (these seeds never draw the costliest repeat of every cell), then ends and says so."""
    m = final_accuracies(np.linspace(0.90, 0.94, 5))
    m[:, 3, :, 1, 0] = (100, 110, 120)  # training time, 108 epochs, each repeat
    path = write_h5(tmp_path / "d.hdf5", m, rows_of(space, np.arange(5) * 1000))
    argv = ["--budget-time", "600", "--random-repeat", "--data", str(path), "--strategy", "random,re", "--seeds", "2"]
    res = budgeted_search.main([*argv, "--out", str(tmp_path / "b")])
    runs = [r for s in res["strategies"].values() for r in s["runs"]]
    assert len(runs) == 4 and all(len(r["queried"]) == len(set(r["queried"])) == 5 for r in runs)
    assert all(500 <= r["seconds"] < 600 and r["seconds"] % 10 == 0 for r in runs)
    assert (
        "note: 4 of 4 searches queried every cell they could before their budget was spent" in capsys.readouterr().out
    )


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
    prior_scorer = budgeted_search.load_prior(args, torch.device("cpu"))
    fit = budgeted_search.predictor_trainer(args, "cpu", threads=1, prior=prior_scorer)
    y = np.zeros(3)
    fit(None, y, 0)
    fit(None, y, 1, start=SimpleNamespace(net="the last fit"))
    first_start, later_start = calls
    assert isinstance(first_start, torch.nn.Module) and first_start.name == "mlp" and later_start == "the last fit"
    saved = torch.load(prior, weights_only=True)["state_dict"]
    assert all((first_start.state_dict()[k].cpu() == v).all() for k, v in saved.items())


def test_resume_takes_the_flags_given_that_say_what_was_saved(tmp_path, monkeypatch):
    """--resume: a flag given with the saved value passes (its default value too, --trial-args split alike,
    --out as --resume's folder), those that may change do, and the rest are the saved ones."""
    monkeypatch.chdir(tmp_path)
    argv = ["--budget", "12", "--data-root", "imgs", "--strategy", "random", "--trial-epochs", "4"]
    args, _ = budgeted_search.parse_args([*argv, "--trial-args", "--lr 0.1   --compile", "--out", "prev"])
    assert args.trial_args == "--lr 0.1   --compile" and args.strategy == ["random"]
    (tmp_path / "prev").mkdir()
    config = budgeted_search.trials_config(args, {"classes": ["a", "b"], "images": {}, "image_size": [8, 8]})
    (tmp_path / "prev" / "search_config.json").write_text(json.dumps(config))
    same = ["--strategy", "random", "--trial-epochs", "4", "--trial-args", "--lr 0.1 --compile", "--out", "./prev"]
    resumed, _ = budgeted_search.parse_args(["--resume", "prev", *same, "--budget", "20", "--engine", "ray"])
    assert (resumed.out, resumed.budget, resumed.engine) == ("prev", 20, "ray")
    assert (resumed.strategy, resumed.trial_epochs, resumed.trial_args) == (["random"], 4, "--lr 0.1 --compile")
    assert resumed.data_root == str(tmp_path / "imgs") and resumed.scheduler == "none"


@pytest.mark.slow
def test_a_local_search_with_real_training_resumed(cifar_jpegs: Path, tmp_path: Path, capsys, monkeypatch):
    """Two real trials, then --resume with a budget of three (from another folder: the data was given as a
    relative path): one more, the first two read back untouched; --train hands the pick to trainer.py."""
    out = tmp_path / "s"
    monkeypatch.chdir(cifar_jpegs.parent)
    budgeted_search.main(
        [
            "--budget",
            "2",
            "--data-root",
            cifar_jpegs.name,
            "--strategy",
            "re",
            *TINY,
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    first = {p: p.stat().st_mtime_ns for p in out.glob("trials/re-s0/*/metrics.json")}
    monkeypatch.chdir(tmp_path)
    picks = []
    monkeypatch.setattr(budgeted_search, "train_pick", picks.append)
    result = budgeted_search.main(
        ["--resume", str(out), "--budget", "3", "--train", "--", "--epochs", "1", "--batch-size", "50"]
    )
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
    assert picks == [[*trainer, *where, "--epochs", "1", "--batch-size", "50"]]
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
