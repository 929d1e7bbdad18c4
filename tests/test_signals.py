"""Ctrl-C (SIGINT) and SIGTERM, sent to a real process of every script and engine while it works: each ends
with exit status 128 + the signal's number, stderr ending in one line `script: error: interrupted by SIG...`
(no traceback above it), no process of its own left behind (worker processes, trainers, Ray's), and its
outputs whole or absent. trainer.py's own (its checkpoint, --resume) is in tests/test_trainer.py, the
converter's (a pool of worker processes) in tests/tfrecord/test_chunks.py.

    .venv/bin/python -m pytest tests/test_signals.py -q -n 2
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # each starts a real process and waits for it to be at work

TAG = "NB101_SIGNAL_TEST"  # in the environment of the process under test, and so of every process it starts
TRIALS = ["--trial-epochs", "12", "--trial-stem-channels", "4", "--trial-stacks", "1", "--trial-train-images", "200"]
TRIALS += ["--trial-eval-images", "50", "--trial-args", "--batch-size 50 --bn-momentum 0.1"]


@dataclass
class Ended:
    status: int
    out: str
    err: str
    children_at_work: int  # processes of its own besides it, when the signal was sent


def tagged(tag: str) -> list[int]:
    """The processes whose environment holds the tag."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"{TAG}={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # ended meanwhile, or not ours to read
            pass
    return found


def interrupt(script: str, argv: list, sig: signal.Signals, at_work, timeout: float = 240) -> Ended:
    """Start `python SCRIPT ARGV`, send `sig` once at_work(stdout, stderr, children) says it works, and let it
    end; no process it started may outlive it."""
    tag = uuid.uuid4().hex
    env = os.environ | {TAG: tag, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # its lines as they are said
    cmd = [sys.executable, str(REPO / script), *map(str, argv)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    said = {"out": b"", "err": b""}
    streams = {"out": proc.stdout, "err": proc.stderr}
    pumps = [threading.Thread(target=_pump, args=(f, said, k), daemon=True) for k, f in streams.items()]
    for t in pumps:
        t.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            children = [pid for pid in tagged(tag) if pid != proc.pid]
            out, err = (said[k].decode(errors="replace") for k in ("out", "err"))
            if at_work(out, err, children):
                break
            assert proc.poll() is None, f"{script} ended before it was at work:\n{err[-2000:]}"
            assert time.monotonic() < deadline, f"{script} never got to work:\n{err[-2000:]}"
            time.sleep(0.1)
        proc.send_signal(sig)
        status = proc.wait(timeout=120)
    finally:
        proc.kill()
    for t in pumps:
        t.join(timeout=10)
    assert tagged(tag) == [], f"processes of {script} outlived it"
    return Ended(status, said["out"].decode(errors="replace"), said["err"].decode(errors="replace"), len(children))


def _pump(f, said: dict, key: str) -> None:
    while chunk := f.read1(65536):
        said[key] += chunk


def assert_one_line(ended: Ended, prog: str, sig: signal.Signals, hint: str = "") -> None:
    """Status 128 + sig, and stderr's last line says so (and how to continue), with no traceback above it."""
    assert ended.status == 128 + sig, ended.err[-3000:]
    assert "Traceback" not in ended.err and "leaked" not in ended.err, ended.err[-3000:]
    last = re.split(r"[\r\n]", ended.err.rstrip("\n"))[-1]
    assert last == f"{prog}: error: interrupted by {sig.name}{hint}", ended.err[-3000:]


def said_in(text: str, where: str = "err"):
    return lambda out, err, children: text in (err if where == "err" else out)


# ----------------------------------------------------------------------------- budgeted_search.py


def test_a_table_search_with_worker_processes(tmp_path, demo_h5):
    """--jobs 2: the searches run in worker processes (lib.util.workers), which ignore Ctrl-C (the script's to
    handle) and are stopped with the script."""
    out = tmp_path / "search"
    argv = ["--budget", 60, "--data", demo_h5, "--strategy", "npenas,re,random", "--model", "mlp", "--seeds", 4]
    argv += ["--jobs", 2]
    at_work = lambda o, e, children: len(children) >= 2 and "search:" in e  # noqa: E731
    ended = interrupt("budgeted_search.py", [*argv, "--out", out], signal.SIGINT, at_work)
    assert ended.children_at_work >= 2  # the workers (and the resource tracker) were there, and are gone
    assert_one_line(ended, "budgeted_search.py", signal.SIGINT)
    assert not out.exists()  # its outputs are written at the end, all or none


def trial_at_work(out: Path):
    """A trial has saved its first epoch: a trainer.py process is at work."""
    return lambda o, e, children: children and any(out.glob("trials/*/*/ckpt.pt"))


def trial_statuses(out: Path) -> list[str]:
    """The status in each trial's metrics.json, every one whole (JSON that reads), and no temp file left."""
    assert not list(out.rglob("*.tmp"))
    return [json.loads(p.read_text())["status"] for p in out.glob("trials/*/*/metrics.json")]


def test_a_search_with_local_trials(tmp_path, cifar_jpegs):
    """The local engine: a trainer.py process at a time, stopped with the search (it saves its state)."""
    out = tmp_path / "search"
    argv = ["--budget", 20, "--data-root", cifar_jpegs, "--strategy", "re", *TRIALS, "--out", out]
    ended = interrupt("budgeted_search.py", argv, signal.SIGTERM, trial_at_work(out))
    hint = f"; `python budgeted_search.py --resume {out}` continues it"
    assert_one_line(ended, "budgeted_search.py", signal.SIGTERM, hint)
    assert trial_statuses(out) == ["interrupted"]  # the trainer was stopped as a signal stops it: saved


def test_a_search_with_trials_on_ray(tmp_path, cifar_jpegs, one_ray_at_a_time):
    """Ray Tune on a local cluster of the search's own: SIGTERM (which ray.init takes for itself) ends it like
    Ctrl-C, and Ray's processes (its head, raylet and workers, the trainers) end with it."""
    out = tmp_path / "search"
    argv = ["--budget", 20, "--data-root", cifar_jpegs, "--strategy", "re", "--engine", "ray", "--concurrent", 1]
    ended = interrupt("budgeted_search.py", [*argv, *TRIALS, "--out", out], signal.SIGTERM, trial_at_work(out))
    assert ended.children_at_work >= 3  # Ray's processes and the trainer were there
    hint = f"; `python budgeted_search.py --resume {out}` continues it"
    assert_one_line(ended, "budgeted_search.py", signal.SIGTERM, hint)
    assert len(trial_statuses(out)) == 1  # the trial at work, its checkpoint kept for --resume


# ----------------------------------------------------------------------------- the other scripts


def test_train_py(tmp_path, demo_h5):
    out = tmp_path / "run"
    argv = ["--data", demo_h5, "--model", "gcn", "--epochs", 5000, "--out", out]
    ended = interrupt("train.py", argv, signal.SIGINT, said_in("train gcn:"))
    assert_one_line(ended, "train.py", signal.SIGINT)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # the run folder appears whole or not at all


def test_search_py(tmp_path, predictor):
    out = tmp_path / "pick"
    argv = ["--checkpoint", predictor / "checkpoint.pt", "--space", "all", "--recompute", "--out", out]
    ended = interrupt("search.py", argv, signal.SIGTERM, said_in("predictions: computing", "out"))
    assert_one_line(ended, "search.py", signal.SIGTERM)
    assert not (out / "search.json").exists() and not (out / "top1.json").exists()


def test_make_demo_data(tmp_path):
    out = tmp_path / "demo.tfrecord"
    writing = lambda o, e, children: any(tmp_path.iterdir())  # noqa: E731 - its temp file, beside the output
    ended = interrupt("tools/make_demo_data.py", ["--cells", 40000, "--output", out], signal.SIGINT, writing)
    assert_one_line(ended, "make_demo_data.py", signal.SIGINT)
    assert list(tmp_path.iterdir()) == []
