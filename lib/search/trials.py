"""Real training as a search's oracle: a trial trains one cell with trainer.py, in a process of its
own, into a run folder of its own (metrics.json, curves.png, ckpt.pt), and returns the validation
accuracy of its last epoch. A folder is a trial's identity: a trial whose folder says it is done (or
failed) is read, never trained again; one cut short continues from its checkpoint (trainer --resume).

    from lib.search.trials import run_trial, Journal
    trial = run_trial(trainer + trial_flags, cell, run_dir, threads=1)      # a dict, see finished()
    Journal(out / "trials.jsonl").append(trial | {"strategy": "guided", "seed": 0, "index": 3})

train_pick runs trainer.py on a search's pick, in the foreground. The trainer's command comes from the
caller (search.py, budgeted_search.py): lib/ knows no script.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lib.util.errors import UserError, first_line

POLL_S = 0.25  # how often a running trial's metrics.json is read for new epochs
TAIL = 4000  # bytes of a failed trial's stderr kept to find its error line
STOP_WAIT_S = 10  # how long a trainer told to stop may take before it is killed


class StopTrial(Exception):
    """Raised by an on_epoch callback (e.g. an early-stopping scheduler) to end a trial after an epoch."""


def cell_args(adjacency: list[list[int]], ops: list[str]) -> list[str]:
    return ["--adjacency", json.dumps(adjacency, separators=(",", ":")), "--ops", ",".join(ops)]


def run_trial(
    trainer: list[str],
    cell: tuple[list[list[int]], list[str]],
    run_dir: Path,
    *,
    threads: int = 1,
    on_epoch: Callable[[dict], None] | None = None,
    env: dict | None = None,
) -> dict:
    """Train `cell` (adjacency, ops) with the command `trainer` (python trainer.py and the trial flags)
    into run_dir, or read the trial there if it has ended. on_epoch(epoch record) is called for every
    new epoch of metrics.json while it runs; raising StopTrial from it interrupts the trainer there,
    and the trial ends as "stopped" with that epoch's accuracy. Returns finished()'s record."""
    run_dir = Path(run_dir)
    old = read_metrics(run_dir)
    if old and old["status"] in ("done", "failed"):
        return finished(old, run_dir, seconds=None)
    if (run_dir / "ckpt.pt").exists():
        cmd = trainer + ["--resume", str(run_dir)]  # the checkpoint holds the cell and the budget
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # killed before its first checkpoint: start it again
        cmd = trainer + cell_args(*cell) + ["--out", str(run_dir)]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # stderr (progress bars, the error line) into an unnamed file: a pipe left unread would fill and stall it
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=trial_env(threads, env),
            preexec_fn=die_with_parent,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the search, which ends its trials itself
        )
        stopped = False
        try:
            stopped = follow(proc, run_dir, on_epoch)
        finally:
            stop_trainer(proc)  # the caller is being stopped or failed: leave no trainer behind
        stderr = tail(log)
    seconds = time.perf_counter() - t0
    metrics = read_metrics(run_dir)
    if stopped and metrics and metrics.get("epochs"):
        return finished(metrics, run_dir, seconds, status="stopped")
    if proc.returncode == 0 and metrics and metrics["status"] in ("done", "stopped"):
        return finished(metrics, run_dir, seconds)
    return failure(proc.returncode, stderr, metrics, run_dir, seconds)


def train_pick(trainer: list[str]) -> None:
    """Train a search's pick with `trainer` (python trainer.py --arch top1.json and its flags) here, in
    the foreground, its output the user's; a failure ends the search with one line below its own error.
    Interrupted, the trainer is stopped as a signal stops it (its checkpoint saved), and waited for."""
    print("running", " ".join(trainer))
    proc = subprocess.Popen(trainer)
    try:
        returncode = proc.wait()
    finally:
        stop_trainer(proc)  # SIGINT / SIGTERM here
    if returncode < 0:
        raise UserError(f"trainer.py was killed by signal {-returncode} ({signal.Signals(-returncode).name})")
    if returncode:
        raise UserError(f"trainer.py exited with status {returncode} (its error is above)")


def stop_trainer(proc: subprocess.Popen) -> None:
    """End a trainer still running as a signal ends it (SIGTERM: it saves its state, metrics.json says
    interrupted), killed if it takes more than STOP_WAIT_S; return once it has ended."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def run_job(job: dict, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """run_trial on a job (lib.search.trial_search.TrialSearch.job: trainer, cell, run_dir, threads)."""
    cell = (job["cell"][0], job["cell"][1])
    return run_trial(job["trainer"], cell, Path(job["run_dir"]), threads=job["threads"], on_epoch=on_epoch)


def follow(proc: subprocess.Popen, run_dir: Path, on_epoch: Callable[[dict], None] | None) -> bool:
    """Wait for the trainer, passing each new epoch to on_epoch; True when on_epoch stopped it."""
    seen = len((read_metrics(run_dir) or {}).get("epochs") or [])
    while True:
        ended = proc.poll() is not None
        if on_epoch is not None:
            epochs = (read_metrics(run_dir) or {}).get("epochs") or []
            for record in epochs[seen:]:
                seen += 1
                try:
                    on_epoch(record)
                except StopTrial:
                    if not ended:
                        proc.send_signal(signal.SIGTERM)  # the trainer saves and ends cleanly
                        proc.wait()
                    return True
        if ended:
            return False
        time.sleep(POLL_S)


def finished(metrics: dict, run_dir: Path, seconds: float | None, status: str | None = None) -> dict:
    """A trial's record: status (done, stopped, failed), its last epoch's validation (and test)
    accuracy, the epochs trained, its seconds (of this call, trainer start-up included; None: a trial
    read back, the trainer's own clock), the error line."""
    last = metrics.get("final") or {}
    status = status or ("done" if metrics["status"] == "done" else "stopped" if last else "failed")
    return {
        "status": status,
        "val": last.get("valid_acc") if status != "failed" else None,
        "test": last.get("test_acc") if status != "failed" else None,
        "epochs": last.get("epoch", 0),
        "seconds": last.get("wall_time_s", 0.0) if seconds is None else seconds,
        "error": metrics.get("error") if status == "failed" else None,
        "run_dir": str(run_dir),
    }


def failure(returncode: int, stderr: str, metrics: dict | None, run_dir: Path, seconds: float) -> dict:
    """A failed trial's record, with the trainer's one-line error (metrics.json's, else its stderr's)."""
    metrics = metrics or {}
    error = metrics.get("error") if metrics.get("status") == "failed" else None
    epochs = len(metrics.get("epochs") or [])
    return {"status": "failed", "val": None, "test": None, "epochs": epochs, "seconds": seconds} | {
        "error": error or error_line(returncode, stderr),
        "run_dir": str(run_dir),
    }


def error_line(returncode: int, stderr: str) -> str:
    """trainer.py's `trainer.py: error: ...` line, a traceback's last line, or the signal that killed it."""
    if returncode < 0:
        return f"trainer.py was killed by signal {signal.Signals(-returncode).name}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("trainer.py: error:")]
    if said:
        return said[-1].removeprefix("trainer.py: error:").strip()
    return first_line(lines[-1]) if lines else f"trainer.py exited with status {returncode}"


def tail(log) -> str:
    """The end of what was written to the open binary file `log` (TAIL bytes), as text."""
    end = log.seek(0, os.SEEK_END)
    log.seek(max(0, end - TAIL))
    return log.read().decode(errors="replace")


def read_metrics(run_dir: Path) -> dict | None:
    """run_dir/metrics.json (written atomically by the trainer), or None where there is none yet."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def trial_env(threads: int, env: dict | None = None) -> dict:
    """The trainer's environment: its CPU threads capped (trials side by side must not oversubscribe)."""
    out = dict(os.environ if env is None else env)
    out |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    return out


def die_with_parent() -> None:
    """In the child, before exec: on Linux, SIGKILL it when the process that started it dies, so a
    killed search (or Ray worker) leaves no trainer running."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Journal:
    """Finished trials, one JSON line each, appended and flushed to disk as they end: what --resume
    replays. A line cut short by a kill is ignored (that trial is simply run again)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as f:
            end = f.seek(0, os.SEEK_END)
            torn = False
            if end:  # a kill may have cut the last line short: never glue the next one to it
                f.seek(end - 1)
                torn = f.read(1) != "\n"
            f.write(("\n" if torn else "") + json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
