"""Search with real training as the oracle (search.py --data-root, lib/search/trials.py, lib/search/trial_search.py):
tiny trials (a reduced network, 1 epoch, a few hundred real CIFAR-10 JPEGs) on the local engine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import REPO

import model
import search
from lib.search.trial_search import TrialSetupError, search_locally

TINY = ["--trial-epochs", "1", "--trial-stem-channels", "4", "--trial-stacks", "1", "--trial-train-images", "200"]
TINY += ["--trial-eval-images", "50", "--trial-args", "--batch-size 50 --bn-momentum 0.1", "--threads", "1"]


@pytest.mark.slow
def test_an_eight_trial_local_search(cifar_jpegs: Path, tmp_path: Path, capsys, monkeypatch):
    """Five trials, then --resume with a budget of eight (from another folder: the data was given as a
    relative path): three more, the first five read back untouched."""
    out = tmp_path / "s"
    monkeypatch.chdir(cifar_jpegs.parent)
    search.main(["--budget", "5", "--data-root", cifar_jpegs.name, "--strategy", "re", *TINY, "--out", str(out)])
    first = {p: p.stat().st_mtime_ns for p in out.glob("trials/re-s0/*/metrics.json")}
    monkeypatch.chdir(tmp_path)
    tiny_run = ["--epochs", "1", "--stem-channels", "4", "--num-stacks", "1", "--cells-per-stack", "1"]
    tiny_run += ["--train-images", "100", "--eval-images", "50", "--batch-size", "50"]
    result = search.main(["--resume", str(out), "--budget", "8", "--train", "--", *tiny_run])
    assert len(first) == 5 and all(p.stat().st_mtime_ns == t for p, t in first.items())
    journal = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["index"] for r in journal] == list(range(8))
    assert all(r["status"] == "done" and 0 <= r["val"] <= 1 for r in journal)
    for r in journal:
        m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert m["status"] == "done" and m["hash"] == r["hash"] and m["final"]["valid_acc"] == r["val"]
        assert (Path(r["run_dir"]) / "curves.png").exists()
    top1 = json.loads((out / "top1.json").read_text())
    assert top1["val"] == max(r["val"] for r in journal)
    trained = json.loads((out / "top1" / "metrics.json").read_text())  # --train: the pick, trained again
    assert trained["hash"] == top1["hash"] and trained["status"] == "done" and trained["config"]["epochs"] == 1
    run = result["strategies"]["re"]["runs"][0]
    assert run["queried"] == [r["hash"] for r in journal] and len(result["strategies"]["re"]["curve_val_mean"]) == 8
    printed = capsys.readouterr().out
    assert printed.count("re s0 trial ") == 8 and "best val accuracy measured in 8 trials" in printed
    assert json.loads((out / "budget.json").read_text())["config"]["budget"] == 8


# ----------------------------------------------------------------------------- the engine, with a stand-in trainer

# A stand-in for trainer.py with its contract (--adjacency/--ops/--out or --resume; metrics.json with status,
# final, epochs; a one-line `trainer.py: error:` and exit 2): cells with a max-pool fail, others score by
# their convolutions. Each start is logged, so a test sees whether a trial was trained twice.
FAKE_TRAINER = r"""
import json, sys, time
from pathlib import Path
a = sys.argv[1:]
get = lambda flag: a[a.index(flag) + 1]
out = Path(get("--out"))
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "starts.log", "a") as f:
    f.write(out.name + "\n")
time.sleep(float(get("--sleep")))
ops = get("--ops").split(",")
if "maxpool3x3" in ops:
    print("trainer.py: error: loss became NaN/inf in epoch 1; stopped", file=sys.stderr)
    sys.exit(2)
val = 0.5 + 0.05 * ops.count("conv3x3-bn-relu") + 0.01 * ops.count("conv1x1-bn-relu")
final = {"epoch": 1, "valid_acc": val, "test_acc": val - 0.01, "wall_time_s": 0.1}
(out / "metrics.json").write_text(json.dumps({"status": "done", "final": final, "epochs": [final]}))
"""


def fake_search(tmp_path: Path, space, name: str = "re", trials: int = 12, sleep: float = 0.0):
    from lib.search.strategies import STRATEGIES, Pool
    from lib.search.trial_search import TrialSearch

    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    trainer = [sys.executable, str(script), "--sleep", str(sleep)]
    return TrialSearch(name, 0, STRATEGIES[name](Pool(space), 0), trials, trainer, tmp_path / "s", epochs=1)


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path: Path, space, capsys):
    search = fake_search(tmp_path, space)
    told = search_locally(search, quiet=True)
    failed = [r for r in told if "maxpool3x3" in r["ops"]]
    assert failed and len(told) == 12  # about a third of NB101's ops are max-pools: some trials fail
    assert all(r["status"] == "failed" and r["val"] is None for r in failed)
    assert {r["error"] for r in failed} == {"loss became NaN/inf in epoch 1; stopped"}
    assert all(search.strategy.queried[r["row"]] for r in failed)
    assert not {r["row"] for r in failed} & {row for row, _ in search.strategy.population}
    assert capsys.readouterr().out.count("FAILED (loss became NaN/inf") == len(failed)


def test_trials_that_all_fail_alike_stop_the_search(tmp_path: Path, space):
    search = fake_search(tmp_path, space)
    search.trainer += ["--no-such-flag"]  # the stand-in then fails every trial the same way
    search.trainer[1] = str(tmp_path / "missing.py")
    with pytest.raises(TrialSetupError, match="the first 3 trials all failed: "):
        search_locally(search, quiet=True)
    assert len(search.journal.records()) == 3


DRIVER = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}, {here!r}]
from pathlib import Path
from lib.nb101.space import enumerate_space
from test_trial_search import fake_search
from lib.search.trial_search import search_locally
search_locally(fake_search(Path({tmp!r}), enumerate_space(hashes=False), trials=10, sleep={sleep}), quiet=True)
"""


def test_a_killed_search_resumes_with_no_trial_lost_or_trained_twice(tmp_path: Path, space):
    driver = tmp_path / "driver.py"
    driver.write_text(
        DRIVER.format(
            repo=str(REPO), tests=str(REPO / "tests"), here=str(Path(__file__).parent), tmp=str(tmp_path), sleep=0.3
        )
    )
    journal = tmp_path / "s" / "trials.jsonl"
    proc = subprocess.Popen([sys.executable, str(driver)])
    try:
        deadline = time.time() + 60
        while (not journal.exists() or len(journal.read_text().splitlines()) < 4) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    before = [json.loads(line) for line in journal.read_text().splitlines()]
    assert 4 <= len(before) < 10
    resumed = fake_search(tmp_path, space, trials=10)
    told = search_locally(resumed, quiet=True)
    assert [r["index"] for r in told] == list(range(10)) == [r["index"] for r in resumed.journal.records()]
    assert told[: len(before)] == before
    starts = (tmp_path / "s" / "trials" / "re-s0" / "starts.log").read_text().split()
    extra = len(starts) - len(set(starts))  # the one trial the kill cut short may start again; no other
    assert extra <= 1 and sorted(set(starts)) == sorted(Path(r["run_dir"]).name for r in told)
    uninterrupted = search_locally(fake_search(tmp_path / "u", space, trials=10), quiet=True)
    assert [r["hash"] for r in told] == [r["hash"] for r in uninterrupted]


def test_prior_is_where_the_first_fit_starts(tmp_path: Path, monkeypatch, demo_h5):
    """--prior: the first fit continues from the checkpoint's weights; later ones from the last fit."""
    import train as train_script

    monkeypatch.chdir(tmp_path)  # train.py's runs/latest goes there, not into the checkout's runs/
    run = tmp_path / "prior"
    train_script.main(["--data", str(demo_h5), "--model", "gin", "--epochs", "2", "--quiet", "--out", str(run)])
    calls = []
    monkeypatch.setattr(model, "refit", lambda net, *a, **k: calls.append(net))
    args, _ = search.parse_args(
        ["--budget", "12", "--data-root", "x", "--model", "gin", "--prior", str(run / "checkpoint.pt")]
    )
    fit = search.predictor_trainer(args, "cpu", threads=1)
    y = np.zeros(3)
    fit(None, y, 0)
    fit(None, y, 1, start=SimpleNamespace(net="the last fit"))
    prior, last = calls
    assert isinstance(prior, torch.nn.Module) and prior.name == "gin" and last == "the last fit"
    saved = torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all((prior.state_dict()[k].cpu() == v).all() for k, v in saved.items())


def test_a_trainer_that_writes_much_to_stderr_never_stalls(tmp_path: Path):
    """Progress bars of a long trial fill any pipe; the trial still ends, and its error line is found."""
    from lib.search.trials import run_trial

    noisy = tmp_path / "noisy.py"
    noisy.write_text(
        "import sys\nfor i in range(20000):\n    print(f'epoch 1/1 {i} ' + '█' * 40, file=sys.stderr)\n"
        "print('trainer.py: error: out of memory', file=sys.stderr)\nsys.exit(2)\n"
    )
    trial = run_trial([sys.executable, str(noisy)], ([[0, 1], [0, 0]], ["input", "output"]), tmp_path / "run")
    assert trial["status"] == "failed" and trial["error"] == "out of memory"
