"""How a training run starts and stops: DDP start-up that cannot hang, and SIGINT / SIGTERM as a clean stop.

    from lib.training.run_control import Interrupted, stop_on_signals, deferred_signals, start_ddp, agree
    with stop_on_signals():                         # SIGINT / SIGTERM raise Interrupted in the main thread
        start_ddp("gloo", 600, rank, world)         # DDPError if a rank does not join within 600 s
        agree(error_or_none, world)                 # every rank raises DDPError if any rank failed to start
        with deferred_signals(): save()             # a signal here waits until the checkpoint is whole

Under torchrun a rank that dies takes the others down with it; launched any other way (or on several
machines), a rank that never joins or fails while the others wait is what these guard against.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from datetime import timedelta

import torch.distributed as dist

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which (the exit status is 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class DDPError(Exception):
    """A DDP rank did not join in time, or failed at start-up; the message names it."""


_state = {"defer": 0, "pending": None}


def _on_signal(signum, frame) -> None:
    if _state["defer"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise Interrupted while inside; the previous handlers come back after.

    Outside the main thread (signals cannot be caught there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextmanager
def deferred_signals():
    """A signal arriving inside is raised on leaving, so what is written inside is written whole."""
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
        pending, _state["pending"] = _state["pending"], None
        if pending is not None and not _state["defer"]:
            raise Interrupted(pending)


def start_ddp(backend: str, timeout_s: float, rank: int, world: int) -> None:
    """init_process_group (env://, as torchrun sets it), bounded by timeout_s for the join and every collective."""
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, TimeoutError) as e:  # DistStoreError, DistNetworkError are RuntimeErrors
        reason = " ".join(str(e).split())[:300]
        raise DDPError(
            f"DDP start-up: rank {rank} of {world}: not all {world} processes joined within {timeout_s:g} s "
            f"(--ddp-timeout), or the rendezvous address is unreachable ({reason})"
        ) from None


def agree(error: str | None, world: int) -> None:
    """Every rank passes its start-up error (None if fine); all raise DDPError naming the failed ranks."""
    if world == 1:
        if error:
            raise DDPError(error)
        return
    errors: list[str | None] = [None] * world
    try:
        dist.all_gather_object(errors, error)
    except RuntimeError as e:  # a rank left (gloo) or the timeout ran out
        raise DDPError(f"DDP start-up: a rank left or stopped answering ({' '.join(str(e).split())[:300]})") from None
    failed = [f"rank {r}: {msg}" for r, msg in enumerate(errors) if msg]
    if failed:
        raise DDPError("; ".join(failed))
