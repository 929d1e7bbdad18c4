"""How a training run starts under DDP without hanging: a rank that never joins, or fails at start-up
while the others wait, stops them all with one line. (SIGINT / SIGTERM, every script's clean stop, are
lib.util.errors'.)

    from lib.training.run_control import DDPError, start_ddp, agree
    start_ddp("gloo", 600, rank, world)         # DDPError if a rank does not join within 600 s
    agree(error_or_none, world)                 # every rank raises DDPError if any rank failed to start

Under torchrun a rank that dies takes the others down with it; launched any other way (or on several
machines), a rank that never joins or fails while the others wait is what these guard against.
"""

from __future__ import annotations

from datetime import timedelta

import torch.distributed as dist


class DDPError(Exception):
    """A DDP rank did not join in time, or failed at start-up; the message names it."""


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
