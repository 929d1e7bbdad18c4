"""lib/devices.py: the device choice and the CPU thread settings."""

import os

import pytest
import torch

from lib.devices import available_device, cpu_math, free_cores, pick_device


def test_cpu_math_restores_threads_and_free_cores_is_in_range():
    threads = torch.get_num_threads()
    with cpu_math(torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    assert 1 <= free_cores() <= (os.cpu_count() or 1)


def test_pick_device_auto_and_named():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto").type == expected


def test_available_device_rejects_unknown_and_absent_devices():
    assert available_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device"):
        available_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no cuda device"):
            available_device("cuda")
