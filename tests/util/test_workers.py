"""lib/util/workers.py: results in task order or as they finish, the same as in-process; an error in a
worker reaches the caller as itself, a dead worker as WorkerError; no worker outlives the call; the
tasks are read as results come back."""

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO
from worker_tasks import die_on_three, fail_on_three, kill_self_on_three, pid_and_init, remember, square, stubborn

from lib.util import workers
from lib.util.workers import WorkerError, WorkerTraceback, in_workers


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_in_task_order_and_equal_the_in_process_ones(workers):
    assert list(in_workers(square, range(20), workers=workers)) == [(i, i * i) for i in range(20)]


def test_unordered_results_are_every_task_once():
    got = dict(in_workers(square, range(20), workers=2, ordered=False))
    assert got == {i: i * i for i in range(20)}


def test_an_error_in_a_worker_reaches_the_caller_as_itself_with_its_traceback():
    before = set(multiprocessing.active_children())
    with pytest.raises(ValueError, match="no 3") as raised:
        list(in_workers(fail_on_three, range(10), workers=2))
    assert isinstance(raised.value.__cause__, WorkerTraceback)
    assert "in fail_on_three" in str(raised.value.__cause__)
    assert set(multiprocessing.active_children()) == before  # none left running


@pytest.mark.parametrize("fn, code", [(die_on_three, 7), (kill_self_on_three, -signal.SIGKILL)])
def test_a_worker_that_dies_is_a_worker_error_naming_its_exit_code(fn, code):
    before = set(multiprocessing.active_children())
    with pytest.raises(WorkerError, match=rf"a hashing worker process died \(exit code {code}\)"):
        list(in_workers(fn, range(10), workers=2, what="hashing"))
    assert set(multiprocessing.active_children()) == before


def test_stopping_early_stops_every_worker():
    before = set(multiprocessing.active_children())
    work = in_workers(square, range(1000), workers=2)
    assert next(work) == (0, 0)
    work.close()
    assert set(multiprocessing.active_children()) == before


def test_tasks_are_read_as_results_come_back():
    handed = []

    def tasks():
        for i in range(40):
            handed.append(i)
            yield i

    work = in_workers(square, tasks(), workers=2, in_flight=2)
    next(work)
    assert len(handed) <= 2 * 2 + 2  # at most in_flight per worker ahead of what came back
    assert [r for _, r in work] == [i * i for i in range(1, 40)] and len(handed) == 40


def test_init_runs_once_in_each_worker_before_its_tasks():
    results = [r for _, r in in_workers(pid_and_init, range(8), workers=2, init=remember, init_args=("w",))]
    for pid, seen in results:
        assert seen == [("w", pid)]  # its own init, once, in its own process
    assert len({pid for pid, _ in results}) <= 2 and os.getpid() not in {pid for pid, _ in results}


def test_a_worker_that_ignores_its_stop_is_killed(monkeypatch):
    monkeypatch.setattr(workers, "STOP_S", 0.5)
    before = set(multiprocessing.active_children())
    work = in_workers(stubborn, range(4), workers=2)
    assert next(work) == (0, 0)
    work.close()  # returns: nothing is waited on for ever
    assert set(multiprocessing.active_children()) == before


HOLDS_A_SEMAPHORE = """
import multiprocessing, sys, time
from lib.util.workers import in_workers

def lock_and_wait(x):
    global LOCK
    LOCK = multiprocessing.Lock()  # a named semaphore, registered with the resource tracker
    if x:
        time.sleep(600)
    return x

if __name__ == "__main__":
    work = in_workers(lock_and_wait, range(4), workers=2)
    next(work)
    work.close()  # the workers are terminated mid-task
    print(sorted(in_workers(lock_and_wait, [0, 0, 0], workers=2)))  # and a pool that ends by itself
"""


def test_workers_stopped_or_done_leave_the_resource_tracker_nothing_to_warn_of(tmp_path):
    script = tmp_path / "holds.py"
    script.write_text(HOLDS_A_SEMAPHORE)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == "[(0, 0), (1, 0), (2, 0)]\n", run.stderr
    assert run.stderr == ""  # not resource_tracker's "There appear to be 2 leaked semaphore objects"
