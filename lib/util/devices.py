"""Where torch runs: the device choice, the CPU thread settings and bf16 support every stage shares.

from lib.util.devices import pick_device, available_device, cpu_math, free_cores, native_bf16
device = pick_device("auto")              # cuda, then mps, then cpu
device = available_device("cuda")         # UserError unless this machine has one
with cpu_math(device, threads=1): ...     # denormals flushed, `threads` intra-op threads
free_cores()                              # cores the load average leaves free
native_bf16(device)                       # bf16 matmuls in hardware (AMX / AVX512-BF16 on a CPU)
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from lib.util.errors import UserError


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
    """pick_device, with a one-line UserError for an unknown or absent device."""
    try:
        device = pick_device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps")
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.type)
    if available and not available():
        raise UserError(f"--device {name}: no {device.type} device on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        have = "one cuda device, cuda:0" if count == 1 else f"{count} cuda devices, cuda:0 to cuda:{count - 1}"
        raise UserError(f"--device {name}: this machine has {have}")
    return device


@contextmanager
def cpu_math(device: torch.device, threads: int | None = None):
    """On a CPU: flush denormals to zero and optionally use `threads` intra-op threads; restored after.

    Denormal floats (|x| < 1.2e-38, e.g. in weights and Adam states that weight decay drives toward
    zero) cost x86 CPUs 10-100x per operation: without this the MLP of chanyoungP/Simple_MLP_Predictor_NAS
    trains 4x slower after ~100 epochs. Flushing them changes results by less than float32 rounding."""
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


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_cores() -> int:
    """Cores not busy with other work, by the 1-minute load average (which counts this process).

    Intra-op threads beyond these wait at every op for peers the OS has descheduled: on 2 cores that
    other jobs kept busy, 2 threads made GCN inference 4.5x slower than 1."""
    cores = usable_cores()
    return max(1, min(cores, round(cores + 1 - os.getloadavg()[0])))


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether `device` multiplies bf16 matrices in hardware: on a CPU, AMX or AVX512-BF16 (Linux's
    /proc/cpuinfo flags; CPUs without them emulate bf16, slower than fp32); on CUDA, torch's own check."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
