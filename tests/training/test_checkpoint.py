"""Tests for lib/training/checkpoint.py: the config a resumed run continues with. Its refusals (unreadable or
foreign checkpoints, contradicting flags, other data) are in tests/test_trainer_refusals.py; that a resumed
run continues exactly is tests/test_trainer.py's."""

from __future__ import annotations

from pathlib import Path

from lib.training.checkpoint import resumed_config

DEFAULTS = {"epochs": 108, "lr": 0.2, "weight_decay": 1e-4, "device": "auto", "stop_after": None}
SAVED = {  # a run of 4 epochs, stopped after 1, on a GPU
    "epochs": 4, "lr": 0.05, "data": "nb.hdf5", "data_root": "/old/data", "device": "cuda", "download": False,
    "ddp_timeout": 600, "stop_after": 1, "resume": None, "out": "runs/a",
}  # fmt: skip


def test_the_checkpoints_config_with_what_may_change(tmp_path: Path, monkeypatch):
    """The checkpoint's settings win over today's defaults; the command line may repeat them (paths in any
    spelling), move the data, pick the device, and set this invocation's --stop-after."""
    monkeypatch.chdir(tmp_path)
    ckpt = {"config": SAVED, "cell": {"hash": "h"}}
    given = {"resume": "runs/a", "epochs": 4, "out": "./runs/a/", "data": "./nb.hdf5", "data_root": "/new/data"}
    assert resumed_config(ckpt, given | {"device": "cpu"}, DEFAULTS) == {
        "epochs": 4, "lr": 0.05, "weight_decay": 1e-4, "device": "cpu", "stop_after": None, "data": "nb.hdf5",
        "data_root": "/new/data", "download": False, "ddp_timeout": 600, "resume": "runs/a", "out": "runs/a",
    }  # fmt: skip
    again = resumed_config(ckpt, {"resume": "runs/a", "stop_after": 2}, DEFAULTS)
    assert (again["stop_after"], again["device"], again["data_root"]) == (2, "cuda", "/old/data")
