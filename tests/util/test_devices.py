"""lib/util/devices.py: the device choice and the CPU thread settings."""

import os

import pytest
import torch

from lib.util.devices import available_device, cpu_math, free_cores, pick_device
from lib.util.errors import UserError


@pytest.fixture
def machine(monkeypatch):
    """Pretend this machine has the given accelerators: machine(cuda=True, mps=False)."""

    def have(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return have


@pytest.mark.parametrize(
    ("cuda", "mps", "chosen"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda: bool, mps: bool, chosen: str):
    machine(cuda=cuda, mps=mps)
    assert pick_device("auto") == pick_device() == torch.device(chosen)


def test_a_named_device_is_taken_as_named(machine):
    machine(cuda=True, mps=True)
    assert pick_device("cpu") == torch.device("cpu")
    machine(cuda=False, mps=False)
    assert pick_device("cuda:1") == torch.device("cuda", 1)  # pick_device does not check; available_device does


def test_available_device_rejects_unknown_and_absent_devices(machine):
    machine(cuda=False, mps=False)
    assert available_device("auto") == available_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="^--device tpu: not a device; use auto, cpu, cuda, cuda:N or mps$"):
        available_device("tpu")
    with pytest.raises(UserError, match="^--device cuda: no cuda device on this machine$"):
        available_device("cuda")
    with pytest.raises(UserError, match="^--device mps: no mps device on this machine$"):
        available_device("mps")
    machine(cuda=True, mps=False)
    assert available_device("cuda") == torch.device("cuda")
    with pytest.raises(UserError, match="^--device meta: not a device; use auto, cpu, cuda, cuda:N or mps$"):
        available_device("meta")  # a torch device, but not one to train or score on


def test_available_device_rejects_a_gpu_index_beyond_the_machines(machine, monkeypatch):
    machine(cuda=True, mps=False)
    for count, have in ((1, "one cuda device, cuda:0"), (2, "2 cuda devices, cuda:0 to cuda:1")):
        monkeypatch.setattr(torch.cuda, "device_count", lambda count=count: count)
        assert available_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
        with pytest.raises(UserError, match=f"^--device cuda:{count}: this machine has {have}$"):
            available_device(f"cuda:{count}")


def test_cpu_math_sets_threads_and_flushes_denormals_inside_only():
    threads, tiny = torch.get_num_threads(), torch.tensor([1e-38])  # / 100: a denormal float32
    outside = (tiny / 100).item()
    with cpu_math(torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
        inside = (tiny / 100).item()
    assert torch.get_num_threads() == threads and (tiny / 100).item() == outside != 0
    if torch.set_flush_denormal(False):  # the CPU can flush denormals (x86 with SSE3)
        assert inside == 0


def test_cpu_math_leaves_other_devices_alone():
    threads = torch.get_num_threads()
    with cpu_math(torch.device("cuda"), threads=1):
        assert torch.get_num_threads() == threads


@pytest.mark.parametrize(("load", "free"), [(0.0, "all"), (1.0, "all"), (1.6, "all - 1"), (99.0, 1)])
def test_free_cores_counts_cores_the_load_leaves(monkeypatch, load: float, free):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    want = {"all": cores, "all - 1": max(1, cores - 1)}.get(free, free)
    assert free_cores() == want
