"""Worker processes for work that splits into independent tasks: the one place that starts them, feeds
them, collects their results and stops them, whatever happens.

    from lib.util.workers import in_workers
    for i, result in in_workers(fn, tasks, workers=2, what="decoding"):   # (index, fn(task)), in task order
        ...

- workers <= 1: fn runs here, task by task, with the same results (no process is started).
- start: "spawn" (the default: safe beside the caller's threads, torch's and BLAS's among them, whose
  locks a fork would copy) or "fork" (starts at once and shares the caller's memory; only for callers
  without threads of their own).
- init(*init_args) runs once where the tasks run (in each worker, or here): per-worker state.
- At most `in_flight` tasks per worker are handed out at a time, so a long generator of tasks is read
  as results come back, in bounded memory. ordered=False yields results as they finish.
- An exception raised by fn reaches the caller as itself, the worker's traceback chained to it
  (WorkerTraceback). A worker that dies (killed, out of memory) raises WorkerError at once. Either way,
  and on Ctrl-C, SIGTERM or when the caller stops iterating, every worker is terminated (SIGTERM, then
  SIGKILL after STOP_S) and joined: none is left running, and none is waited on for ever.
- A worker ignores Ctrl-C from its start (the caller's to handle) and dies with the caller
  (PR_SET_PDEATHSIG); terminated, it ends through Python's exit, so the resource tracker finds nothing
  leaked. Workers given their stop end by themselves.

Plain processes and queues, not concurrent.futures: on Python 3.11 its pool cannot be stopped
while tasks run (terminate_workers() is 3.14's), and terminating its workers from outside can leave it
spawning a replacement that its shutdown then waits on for ever.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lib.util.errors import deferred_signals

POLL_S = 0.2  # how often a wait for results looks for dead workers
STOP_S = 5  # how long a worker that has its stop may take to end by itself before it is terminated


class WorkerError(RuntimeError):
    """A worker process died or ended before its tasks were done: the machine's doing, not the input's."""


class WorkerTraceback(Exception):
    """Where in a worker process an error was raised: its traceback, as text."""


def in_workers(
    fn: Callable[[Any], Any],
    tasks: Iterable,
    *,
    workers: int,
    what: str = "worker",
    start: str = "spawn",
    init: Callable | None = None,
    init_args: tuple = (),
    in_flight: int = 2,
    ordered: bool = True,
) -> Iterator[tuple[int, Any]]:
    """(task index, fn(task)) for every task; see the module docstring. `what` names the workers in
    errors ("a decoding worker process died")."""
    if workers <= 1:
        if init is not None:
            init(*init_args)
        for i, task in enumerate(tasks):
            yield i, fn(task)
        return
    context = multiprocessing.get_context(start)
    setup, todo, results = context.Queue(), context.Queue(), context.Queue()
    procs = [context.Process(target=_serve, args=(fn, init, setup, todo, results), daemon=True) for _ in range(workers)]
    pending = enumerate(tasks)
    sent = received = 0
    exhausted = False
    done: dict[int, Any] = {}  # results that arrived before an earlier task's (ordered)
    following = 0  # the next index to yield (ordered)
    finished = False
    try:
        _start(procs)
        for _ in procs:  # by queue, not in start()'s arguments: start() would wait while a spawned worker imports
            setup.put(init_args)
        while True:
            while not exhausted and sent - received < in_flight * workers:
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    for _ in procs:
                        todo.put(None)  # one stop for each worker
                else:
                    todo.put(item)
                    sent += 1
            if exhausted and received == sent:
                finished = True
                return
            i, result, error, where = _next_result(results, procs, what)
            received += 1
            if error is not None:
                raise error from WorkerTraceback(where)
            if not ordered:
                yield i, result
                continue
            done[i] = result
            while following in done:
                yield following, done.pop(following)
                following += 1
    finally:  # done, an error, Ctrl-C or the caller's close(): no worker outlives this
        with deferred_signals():  # a second Ctrl-C waits for the workers' end (bounded), rather than orphan them
            _stop(procs, finished)
            for q in (setup, todo, results):
                q.cancel_join_thread()  # what is left in them is dropped, not flushed to a dead reader
                q.close()


def _stop(procs: list, finished: bool) -> None:
    """End every worker, waiting a bounded time at each step: workers that have their stop (finished) may end
    by themselves (their exit releases what they made); then SIGTERM, which ends a worker through Python's
    exit; then SIGKILL, for one that cannot even do that (stuck on a lock a dead sibling held)."""
    procs = [p for p in procs if p.pid is not None]  # those started
    if finished:
        _join(procs, STOP_S)
    for p in procs:
        p.terminate()  # nothing, for one that has ended
    _join(procs, STOP_S)
    for p in procs:
        if p.exitcode is None:
            p.kill()
    for p in procs:
        p.join()


def _join(procs: list, seconds: float) -> None:
    """Wait until every process has ended, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))


def _start(procs: list) -> None:
    """Start the workers with Ctrl-C ignored from their first instant (a spawned worker imports the caller's
    main module before _serve runs): Ctrl-C is the caller's to handle, and prints no worker's traceback.
    A signal to the caller waits until every worker has started: cut short, a start leaves a spawned worker
    half its instructions, which it reads to the end and complains of in a traceback."""
    here = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if here else None
    try:
        with deferred_signals():
            for p in procs:
                p.start()
    finally:
        if here:
            signal.signal(signal.SIGINT, saved)


def _serve(fn, init, setup, todo, results) -> None:
    """A worker: init(*its setup), then fn of every task until its stop (None); the first error ends it. SIGTERM (the
    caller's terminate()) ends it through Python's exit, which releases what it registered (a semaphore
    of tqdm's lock, say) rather than leave the resource tracker to warn of leaks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, functools.partial(_exit_on_signal, (setup, todo, results)))
    _die_with_parent()
    i = None
    try:
        init_args = setup.get()
        if init is not None:
            init(*init_args)
        while (item := todo.get()) is not None:
            i, task = item
            results.put((i, fn(task), None, None))
    except Exception as error:
        results.put((i, None, _portable(error), traceback.format_exc()))


def _exit_on_signal(queues: tuple, signum, frame) -> None:
    """Exit through Python's exit, without flushing the queues: what a worker still sends goes nowhere (its
    reader is stopping), and a flush could wait for ever on a lock that a dead worker held."""
    for q in queues:
        q.cancel_join_thread()
    sys.exit(128 + signum)


def _next_result(results, procs: list, what: str) -> tuple:
    """The next result a worker sends; WorkerError as soon as a worker has died or all have ended."""
    while True:
        try:
            return results.get(timeout=POLL_S)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise WorkerError(f"a {what} worker process died (exit code {dead[0]})") from None
            if all(p.exitcode == 0 for p in procs):  # what they sent is in the pipe by now
                try:
                    return results.get(timeout=1.0)
                except queue.Empty:
                    raise WorkerError(f"the {what} worker processes ended before every task was done") from None


def _portable(error: Exception) -> Exception:
    """The error itself when it can travel between processes; else its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a worker whose parent is killed is killed too (Linux; elsewhere nothing)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
