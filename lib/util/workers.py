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
  and on Ctrl-C or when the caller stops iterating, every worker is terminated and joined: none is
  left running, and none is waited on.
- A worker ignores Ctrl-C (the caller's to handle) and dies with the caller (PR_SET_PDEATHSIG).

Plain processes and two queues, not concurrent.futures: on Python 3.11 its pool cannot be stopped
while tasks run (terminate_workers() is 3.14's), and terminating its workers from outside can leave it
spawning a replacement that its shutdown then waits on for ever.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import pickle
import queue
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

POLL_S = 0.2  # how often a wait for results looks for dead workers


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
    todo, results = context.Queue(), context.Queue()
    procs = [
        context.Process(target=_serve, args=(fn, init, init_args, todo, results), daemon=True) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    pending = enumerate(tasks)
    sent = received = 0
    exhausted = False
    done: dict[int, Any] = {}  # results that arrived before an earlier task's (ordered)
    following = 0  # the next index to yield (ordered)
    try:
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
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        for q in (todo, results):
            q.cancel_join_thread()  # what is left in them is dropped, not flushed to a dead reader
            q.close()


def _serve(fn, init, init_args, todo, results) -> None:
    """A worker: init, then fn of every task until its stop (None); the first error ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    i = None
    try:
        if init is not None:
            init(*init_args)
        while (item := todo.get()) is not None:
            i, task = item
            results.put((i, fn(task), None, None))
    except Exception as error:
        results.put((i, None, _portable(error), traceback.format_exc()))


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
