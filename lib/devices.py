"""Where torch runs: the device choice and the CPU thread settings every stage shares.

from lib.devices import pick_device, cpu_math
device = pick_device("auto")              # cuda, then mps, then cpu
with cpu_math(device, threads=1): ...     # denormals flushed, `threads` intra-op threads
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is cuda, then mps, then cpu; anything else is passed to torch.device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_device(name: str) -> torch.device:
    """pick_device, with a one-line ValueError for an unknown or absent device."""
    try:
        device = pick_device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.type)
    if available and not available():
        raise ValueError(f"--device {name}: no {device.type} device on this machine")
    return device


@contextmanager
def cpu_math(device: torch.device, threads: int | None = None):
    """On a CPU: flush denormals to zero and optionally use `threads` intra-op threads; restored after.

    Denormal floats (|x| < 1.2e-38, e.g. in weights and Adam states that weight decay drives toward
    zero) cost x86 CPUs 10-100x per operation: without this the seed's MLP trains 4x slower after
    ~100 epochs. Flushing them changes results by less than float32 rounding."""
    if device.type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(threads or saved)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)  # the default; torch has no getter for the current mode
        torch.set_num_threads(saved)


def free_cores() -> int:
    """Cores not busy with other work, by the 1-minute load average (which counts this process).

    Intra-op threads beyond these wait at every op for peers the OS has descheduled: on the shared
    2-core dev machine 2 threads made GCN inference 4.5x slower than 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, round(cores + 1 - os.getloadavg()[0])))
