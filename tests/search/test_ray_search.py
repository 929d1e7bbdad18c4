"""lib/search/ray_search.py and its searcher (lib/search/ray_searcher.py) on a real local Ray cluster
(conftest's ray_address, 2 CPUs, joined by address; one test's driver starts Ray of its own): tiny
trainer.py trials on a few hundred real CIFAR-10 JPEGs (conftest's cifar_jpegs), side by side, with a
worker killed mid-trial, the driver killed mid-search, ASHA stopping poor trials, and an --address where
no cluster answers. The trials log their starts through a small wrapper command (WRAPPER), which can
also kill the Ray worker running them once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO

from lib.search.trials import read_metrics
from lib.util.errors import UserError

NET = ["--stem-channels", "4", "--num-stacks", "1", "--cells-per-stack", "1", "--bn-momentum", "0.1"]
BUDGET = ["--train-images", "200", "--eval-images", "50", "--batch-size", "50", "--seed", "0", "--device", "cpu"]

# The trainer command's first words: logs each start (its run folder, the time, a resume or not) to
# argv[1]; for the run folder named argv[2] (a prefix, "-": none), the first time only, it waits for
# the first epoch, then SIGKILLs its parent, the Ray worker (the trainer, forked with PR_SET_PDEATHSIG,
# dies with it). Otherwise it becomes the trainer (exec).
WRAPPER = textwrap.dedent(
    """
    import ctypes, json, os, signal, sys, time
    log, kill, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    run_dir = cmd[cmd.index("--out") + 1] if "--out" in cmd else cmd[cmd.index("--resume") + 1]
    with open(log, "a") as f:
        f.write(json.dumps({"run_dir": run_dir, "start": time.time(), "resume": "--resume" in cmd}) + "\\n")
    marker = log + ".killed"
    if os.path.basename(run_dir).startswith(kill) and not os.path.exists(marker):
        if os.fork() == 0:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
            os.execv(cmd[0], cmd)
        while not (os.path.exists(run_dir + "/metrics.json") and json.load(open(run_dir + "/metrics.json"))["epochs"]):
            time.sleep(0.02)
        open(marker, "w").close()
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)
    os.execv(cmd[0], cmd)
    """
)


@pytest.fixture(scope="module")
def pool():
    from lib.nb101.space import enumerate_space
    from lib.search.ask_tell import Pool

    return Pool(enumerate_space(hashes=False))


def trainer(cifar: Path, log: Path, kill: str = "-") -> list[str]:
    wrapper = log.parent / "wrapper.py"
    wrapper.write_text(WRAPPER)
    cmd = [sys.executable, str(REPO / "trainer.py"), "--data-root", str(cifar), *NET, *BUDGET]
    return [sys.executable, str(wrapper), str(log), kill, *cmd]


def make_search(pool, out: Path, cmd: list[str], trials: int, epochs: int, strategy=None):
    from lib.search.strategies import STRATEGIES
    from lib.search.trial_search import TrialSearch

    strategy = strategy or STRATEGIES["random"](pool, 0)
    return TrialSearch(strategy.name or "fixed", 0, strategy, trials, cmd, out, epochs)


def starts(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_complete(out: Path, trials: int, epochs: int) -> list[dict]:
    """Each index once in the journal, every trial folder done with each epoch once."""
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(trials))
    for r in records:
        m = read_metrics(Path(r["run_dir"]))
        assert r["status"] == m["status"] == "done", r
        assert [e["epoch"] for e in m["epochs"]] == list(range(1, epochs + 1)), r["run_dir"]
        assert r["val"] == m["final"]["valid_acc"]
    return records


def descendants(pid: int) -> list[int]:
    """Every process below pid (from /proc), the search's Ray processes and trainers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def trainers_of(folder: Path) -> list[int]:
    """Running processes whose command line names `folder` (trainers of its trials)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if str(folder) in cmdline and "trainer.py" in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_trial_resources_ask_a_gpu_only_where_there_are_gpus():
    from lib.search.ray_search import trial_resources

    assert trial_resources(2, 1, None) == {"cpu": 1, "gpu": 1}
    assert trial_resources(0, 1, None) == {"cpu": 1, "gpu": 0}
    assert trial_resources(0, 2, 0.5) == {"cpu": 2, "gpu": 0.5}  # asked for: as asked
    assert trial_resources(4, 1, 0) == {"cpu": 1, "gpu": 0}


def test_unreachable_address_is_one_line_within_seconds(tmp_path: Path):
    import socket

    from lib.search.ray_search import search_on_ray

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        search_on_ray(None, address=f"127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 10
    message = str(e.value)
    assert message.startswith(f"--address 127.0.0.1:{port}: no Ray cluster there (") and "\n" not in message


@pytest.mark.slow
def test_four_trials_two_at_once_one_worker_killed(cifar_jpegs, pool, tmp_path: Path, ray_address, one_ray_at_a_time):
    """4 trials of 5 epochs, 2 at a time; the worker of trial 2 is SIGKILLed after its first epoch:
    Tune retries it, and it continues from its checkpoint."""
    from lib.search.ray_search import search_on_ray

    log = tmp_path / "starts.jsonl"
    # 5 short epochs: the kill after the first lands before the last, even on a loaded machine
    search = make_search(pool, tmp_path / "out", trainer(cifar_jpegs, log, kill="0002-"), trials=4, epochs=5)
    records = search_on_ray(search, address=ray_address, concurrent=2, max_failures=2, quiet=True)

    assert [r["index"] for r in records] == [r["index"] for r in search.records] and len(records) == 4
    journal = assert_complete(tmp_path / "out", 4, 5)
    assert len({r["row"] for r in journal}) == 4  # no cell handed to two trials
    assert Path(str(log) + ".killed").exists()
    retried = [s for s in starts(log) if Path(s["run_dir"]).name.startswith("0002-")]
    assert [s["resume"] for s in retried] == [False, True]  # killed once, then continued from its checkpoint
    others = [s for s in starts(log) if not Path(s["run_dir"]).name.startswith("0002-")]
    assert len(others) == 3 and not any(s["resume"] for s in others)
    # side by side: some two trials ran at the same time (start .. last write of metrics.json)
    spans = [(s["start"], (Path(s["run_dir"]) / "metrics.json").stat().st_mtime) for s in others]
    overlap = max(min(a[1], b[1]) - max(a[0], b[0]) for i, a in enumerate(spans) for b in spans[i + 1 :])
    assert overlap > 1.0
    assert not trainers_of(tmp_path / "out")


DRIVER = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}, {here!r}]
from pathlib import Path
from lib.nb101.space import enumerate_space
from lib.search.ask_tell import Pool
from lib.search.ray_search import search_on_ray
from test_ray_search import make_search
search = make_search(Pool(enumerate_space(hashes=False)), Path({out!r}), {cmd!r}, trials={trials}, epochs={epochs})
search_on_ray(search, concurrent=2, quiet=True)  # a Ray of its own, which dies with it
"""


def cut_short(out: Path) -> set[str]:
    """Trial folders with a checkpoint (an epoch or more) whose trial is not journaled."""
    journal = out / "trials.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    journaled = {json.loads(line)["run_dir"] for line in lines}
    found = {str(p.parent) for p in (out / "trials").glob("*/*/ckpt.pt")} - journaled
    return {d for d in found if (read_metrics(Path(d)) or {}).get("status") == "running"}


@pytest.mark.slow
def test_driver_killed_then_resumed(cifar_jpegs, pool, tmp_path: Path, ray_address, one_ray_at_a_time):
    """The driver, on a Ray it started, SIGKILLed once a trial is journaled and another has a checkpoint;
    a new call (on the session's cluster) continues: each index once, no trial trained twice (a folder done
    before the kill never starts again; the one cut short resumes from its checkpoint, each epoch trained
    once)."""
    from lib.search.ray_search import search_on_ray

    out, log, trials, epochs = tmp_path / "out", tmp_path / "starts.jsonl", 3, 4
    cmd = trainer(cifar_jpegs, log)
    script = DRIVER.format(
        repo=str(REPO),
        tests=str(REPO / "tests"),
        here=str(Path(__file__).parent),
        out=str(out),
        cmd=cmd,
        trials=trials,
        epochs=epochs,
    )
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.DEVNULL)
    journal = out / "trials.jsonl"
    try:
        deadline = time.monotonic() + 150
        while not (journal.exists() and journal.read_text().strip() and cut_short(out)):
            assert driver.poll() is None and time.monotonic() < deadline, "no trial journaled and one cut short"
            time.sleep(0.05)
        below = descendants(driver.pid)
        driver.kill()
        for pid in below:  # the driver's Ray processes with it (a worker may outlive it by seconds)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        cut = cut_short(out)
    finally:
        driver.kill()
        driver.wait()
    time.sleep(1)
    assert not trainers_of(out)  # PR_SET_PDEATHSIG: the trainers died with their workers
    before = {json.loads(line)["run_dir"] for line in journal.read_text().splitlines()}
    count_before = len(starts(log))

    search = make_search(pool, out, cmd, trials=trials, epochs=epochs)
    records = search_on_ray(search, address=ray_address, concurrent=2, quiet=True)

    assert len(records) == trials
    assert_complete(out, trials, epochs)  # each epoch of each folder once: none trained again from its start
    later = starts(log)[count_before:]
    assert cut and not {s["run_dir"] for s in later} & before  # journaled before the kill: never started again
    assert all(s["resume"] for s in later if s["run_dir"] in cut)  # cut short: continued from its checkpoint
    assert cut <= {s["run_dir"] for s in later}
    folders = sorted(p.name for p in (out / "trials" / "random-s0").iterdir())
    assert [f[:4] for f in folders] == [f"{i:04d}" for i in range(trials)]  # no index taken twice


def fixed_order(pool, rows: list[int]):
    """A strategy asking for `rows` in turn, at 108 epochs (lib.search.ask_tell.Strategy underneath)."""
    from lib.search.ask_tell import Strategy

    class Fixed(Strategy):
        name = "fixed"

        def ask(self):
            return [(rows.pop(0), 108)] if rows else []

    return Fixed(pool, 0)


@pytest.mark.slow
def test_asha_stops_poor_trials_and_a_lost_trial_is_journaled(
    cifar_jpegs, pool, tmp_path, ray_address, one_ray_at_a_time
):
    """ASHA over 3-epoch trials: two better cells first, then two poor ones, whose accuracy at the rung
    of epoch 1 is below the best quarter: they stop there, and their trainers end. The accuracies are
    those of the seeded trainer on these cells and cifar_jpegs (measured: rows 4, 1 reach 0.14, 0.12
    after epoch 1; rows 2, 3 0.06, 0.08, on 50 validation images). The worker of trial 1 is killed,
    with no retry allowed: it is journaled as failed with its one-line error, and the search goes on."""
    from lib.search.ray_search import search_on_ray

    log = tmp_path / "starts.jsonl"
    cmd = trainer(cifar_jpegs, log, kill="0001-")
    search = make_search(pool, tmp_path / "out", cmd, 4, 3, strategy=fixed_order(pool, [4, 1, 2, 3]))
    records = search_on_ray(search, address=ray_address, concurrent=2, scheduler="asha", max_failures=0, quiet=True)

    by_index = {r["index"]: r for r in records}
    assert sorted(by_index) == [0, 1, 2, 3] and len(records) == 4
    assert by_index[0]["status"] == "done" and by_index[0]["epochs"] == 3
    lost = by_index[1]
    assert lost["status"] == "failed" and lost["val"] is None
    assert lost["error"].startswith("ActorDiedError: ") and "\n" not in lost["error"]
    for r in (by_index[2], by_index[3]):  # the poor ones
        assert r["status"] == "stopped" and r["epochs"] == 1 and 0 <= r["val"] < by_index[0]["val"]
        # journaled with the accuracy of the epoch it was stopped at, as its own folder has it (how far
        # the trainer got before the stop reached it, and the state it ended in, depend on the load)
        assert read_metrics(Path(r["run_dir"]))["epochs"][0]["valid_acc"] == r["val"]
    journal = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in journal) == [0, 1, 2, 3]
    assert not trainers_of(tmp_path / "out")
