"""Tests for trainer.py end to end: what a run writes, data of any size and classes, exact resume (fp32 and
bf16), the speed settings on the CPU (bf16, memory layout, --compile), failed and interrupted runs, DDP,
NB101's record beside a run, and real CIFAR-10 JPEGs.

    .venv/bin/python -m pytest tests/test_trainer.py -q                   # all, CI included
    .venv/bin/python -m pytest tests/test_trainer.py -q -m "not slow"     # without DDP, --compile, real data

Every refusal of trainer.py is in tests/test_trainer_refusals.py; the data, protocol, checkpoint and report
pieces are tested on their own in tests/training/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CELL, REPO, TINY, final_accuracies, image_tree, run_main, write_h5

import trainer
from lib.nb101.cell import make_cell
from lib.training.images import CIFAR10_CLASSES, FOLDER_SPLIT

THE_CELL = make_cell([[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], CELL[3].split(","))  # CELL's
METRICS_KEYS = (
    "status cell hash params network data config levers checkpoint_epoch device world_size device_name torch nb101 "
    "nb101_labels epochs final summary"
).split()
EPOCH_KEYS = (
    "epoch step lr train_loss train_acc valid_loss test_loss valid_acc test_acc epoch_time_s train_time_s "
    "wall_time_s images_per_s"
).split()
CKPT_KEYS = "model optimizer epoch config cell data history train_time wall_time rng".split()


def run(*argv) -> dict:
    return trainer.main([str(a) for a in argv])


def ckpt_of(out: Path) -> dict:
    return torch.load(out / "ckpt.pt", weights_only=False)


def quiet_env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **extra}


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


# ----------------------------------------------------------------------------- runs


def test_run_writes_metrics_and_checkpoint(cifar: Path, tmp_path: Path):
    """metrics.json, ckpt.pt and curves.png, with the keys (in order) that readers and --resume rely on."""
    out = tmp_path / "run"
    m = run(*CELL, *TINY, "--data-root", cifar, "--out", out)
    saved = json.loads((out / "metrics.json").read_text())
    assert "commit" in saved.pop("provenance")
    assert saved == json.loads(json.dumps(m)) and list(saved) == METRICS_KEYS
    assert saved["status"] == "done" and saved["checkpoint_epoch"] == 2 and saved["final"] == saved["epochs"][-1]
    assert [list(e) for e in saved["epochs"]] == [EPOCH_KEYS] * 2 and saved["nb101"] is None
    assert all(np.isfinite(v) for e in saved["epochs"] for v in e.values())
    assert [e["step"] for e in saved["epochs"]] == [4, 8]  # 256 images, batch 64
    assert saved["params"] > 0 and saved["hash"] == saved["cell"]["hash"] == THE_CELL.hash
    assert saved["summary"].startswith("after 2 epochs: valid ") and (out / "curves.png").exists()
    # the settings as resolved: the folder, the evaluation batch of the device
    config = saved["config"]
    assert config["out"] == str(out) and config["data_root"] == str(cifar) and config["resume"] is None
    assert config["eval_batch_size"] == saved["levers"]["eval_batch_size"] == 500 and config["stop_after"] is None
    ckpt = ckpt_of(out)
    assert list(ckpt) == CKPT_KEYS and ckpt["epoch"] == 2 and ckpt["history"] == saved["epochs"]
    assert ckpt["config"] == config and ckpt["data"] == saved["data"] and ckpt["cell"] == saved["cell"]
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("size", [(28, 28), (64, 48)], ids=["28x28 JPEG", "64x48 PNG"])
def test_any_image_size_and_classes_train_and_are_recorded(tmp_path: Path, size: tuple[int, int]):
    """An image-folder tree of 3 classes: a network with 3 outputs, the data's size, split and normalisation
    recorded; 2 stacks, so a downsampling max-pool in between."""
    classes = ["ant", "bee", "cow"]
    root = image_tree(tmp_path / "d", classes, per_class=10, size=size, ext="jpg" if size == (28, 28) else "png")
    out = tmp_path / "run"
    m = run(*CELL, *TINY, "--batch-size", "8", "--epochs", "1", "--num-stacks", "2", "--data-root", root, "--out", out)
    (w, h), data = size, m["data"]
    assert m["status"] == "done" and m["network"]["num_classes"] == 3
    assert data["classes"] == classes and data["image_size"] == [h, w]
    assert data["images"] == {"train": 24, "valid": 6, "test": 30}  # valid: 10 // 5 of each class
    assert data["valid_split"] == FOLDER_SPLIT and data["normalization"]["of"] == "the training images"
    assert all(np.isfinite(v) for v in (m["final"]["valid_acc"], m["final"]["test_acc"]))
    ckpt = ckpt_of(out)
    assert ckpt["data"] == data and ckpt["model"]["classifier.weight"].shape[0] == 3


def test_no_test_folder_reports_no_test_accuracy(tmp_path: Path, capsys):
    root = image_tree(tmp_path / "d", ["ant", "bee", "cow"], per_class=10, size=(40, 40), test=False)
    out = tmp_path / "run"
    argv = [*CELL, *TINY, "--batch-size", "8", "--stop-after", "1", "--eval-images", "3"]
    m = run(*argv, "--data-root", root, "--out", out)
    printed = capsys.readouterr().out
    assert "/ no test images of 3 classes, 40x40" in printed and "| test - |" in printed
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    saved = json.loads(text)
    assert saved["status"] == "stopped" and saved["data"]["images"] == {"train": 24, "valid": 6, "test": 0}
    epoch = saved["epochs"][0]
    assert epoch["test_loss"] is None and epoch["test_acc"] is None and 0 <= epoch["valid_acc"] <= 1
    assert saved["summary"] == f"after 1 epochs: valid {100 * epoch['valid_acc']:.2f}% test -"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --resume continues it the same way: the checkpoint's data (no test) is the data again
    resumed = run("--resume", out)
    assert resumed["status"] == "done" and [e["test_acc"] for e in resumed["epochs"]] == [None, None]
    assert capsys.readouterr().out.splitlines()[-1].endswith("test -")
    assert m["data"] == resumed["data"]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_resume_is_exact(cifar: Path, tmp_path: Path, dtype: str):
    """A run stopped after epoch 1 and resumed ends bitwise where the same run without a stop ends."""
    args = [*CELL, *TINY, "--data-root", cifar, "--seed", "3", "--dtype", dtype]
    full = run(*args, "--out", tmp_path / "full")
    cut = run(*args, "--out", tmp_path / "cut", "--stop-after", "1")
    assert cut["status"] == "stopped" and cut["levers"]["dtype"] == dtype and ckpt_of(tmp_path / "cut")["epoch"] == 1
    resumed = run("--resume", tmp_path / "cut")
    assert resumed["status"] == "done" and resumed["levers"]["dtype"] == dtype
    assert resumed["config"] | {"resume": None, "out": None} == full["config"] | {"out": None}
    a, b = ckpt_of(tmp_path / "full"), ckpt_of(tmp_path / "cut")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k  # bitwise: same data, LR and optimiser state
    for i, st in a["optimizer"]["state"].items():
        assert all(torch.equal(st[k], b["optimizer"]["state"][i][k]) for k in st)
    for ha, hb in zip(full["epochs"], resumed["epochs"], strict=True):
        assert ha["train_loss"] == hb["train_loss"] and ha["valid_acc"] == hb["valid_acc"]


# ----------------------------------------------------------------------------- speed settings on the CPU

EPOCH_1_OF_4 = [*CELL, *TINY, "--epochs", "4", "--stop-after", "1"]


@pytest.fixture(scope="module")
def eager_run(cifar: Path, tmp_path_factory) -> tuple[dict, Path]:
    """Epoch 1 of 4 of CELL, eager, fp32, channels_last: what the other speed settings are held against."""
    out = tmp_path_factory.mktemp("eager") / "run"
    return run(*EPOCH_1_OF_4, "--data-root", cifar, "--out", out), out


def conv_weights_channels_last(out: Path) -> set[bool]:
    """Whether the checkpoint's conv kernels (wider than 1x1: those whose two layouts differ) are NHWC."""
    kernels = [v for v in ckpt_of(out)["model"].values() if v.dim() == 4 and v.shape[2] > 1]
    return {w.is_contiguous(memory_format=torch.channels_last) for w in kernels}


def test_speed_settings_reach_the_steps(eager_run, cifar: Path, tmp_path: Path):
    """bf16 autocast and the NCHW layout on the CPU (the GPU's code paths): the same network trains, rounded
    visibly but slightly by bf16, its weights in the layout asked for."""
    (eager, eager_out), out = eager_run, tmp_path / "run"
    other = run(*EPOCH_1_OF_4, "--data-root", cifar, "--out", out, "--dtype", "bf16", "--no-channels-last")
    assert (eager["levers"]["dtype"], eager["levers"]["channels_last"]) == ("fp32", True)
    assert other["levers"] == eager["levers"] | {"dtype": "bf16", "channels_last": False}
    assert conv_weights_channels_last(eager_out) == {True} and conv_weights_channels_last(out) == {False}
    for k in ("train_loss", "valid_loss", "test_loss"):
        a, b = eager["final"][k], other["final"][k]
        assert b != a and b == pytest.approx(a, rel=0.05), k


@pytest.mark.slow
def test_compile_on_the_cpu(eager_run, cifar: Path, tmp_path: Path):
    """--compile with inductor on the CPU (C++ kernels; seconds to minutes to compile, by the cache) matches eager."""
    eager, _ = eager_run
    compiled = run(*EPOCH_1_OF_4, "--data-root", cifar, "--out", tmp_path / "run", "--compile")
    assert compiled["levers"] == eager["levers"] | {"compile": "default", "cuda_graphs": False}
    for k in ("train_loss", "train_acc", "valid_loss", "test_loss"):
        assert compiled["final"][k] == pytest.approx(eager["final"][k], rel=1e-3, abs=1e-4), k


# ----------------------------------------------------------------------------- failed and interrupted runs


def test_nan_loss_stops_and_keeps_last_good_checkpoint(cifar: Path, tmp_path: Path, monkeypatch):
    lr_at = trainer.lr_at
    monkeypatch.setattr(trainer, "lr_at", lambda s, total, base: 1e30 if s >= 4 else lr_at(s, total, base))
    out = tmp_path / "nan"
    with pytest.raises(trainer.TrainerError, match="NaN.*epoch 2.*Last good checkpoint.*epoch 1"):
        run(*CELL, *TINY, "--epochs", "3", "--data-root", cifar, "--out", out)
    assert ckpt_of(out)["epoch"] == 1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "failed" and len(saved["epochs"]) == 1 and saved["checkpoint_epoch"] == 1
    assert saved["error"].startswith("loss became NaN/inf in epoch 2") and (out / "curves.png").exists()


def test_unexpected_error_marks_the_run_failed(cifar: Path, tmp_path: Path, monkeypatch):
    calls, eval_sums = [], trainer.eval_sums

    def failing(*a, **k):
        calls.append(1)
        if len(calls) > 2:  # epoch 2's evaluation
            raise RuntimeError("device lost\nsecond line")
        return eval_sums(*a, **k)

    monkeypatch.setattr(trainer, "eval_sums", failing)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="device lost"):
        run(*CELL, *TINY, "--data-root", cifar, "--out", out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == "RuntimeError: device lost second line"
    assert saved["checkpoint_epoch"] == 1 == ckpt_of(out)["epoch"] and (out / "curves.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_cleanly_and_resume_continues(cifar: Path, tmp_path: Path, monkeypatch, capsys, sig):
    """A signal that arrives while epoch 1 is being recorded waits until its checkpoint is whole, then stops
    the run: metrics.json says interrupted, stderr says how to continue, and --resume does."""
    print_epoch = trainer.print_epoch

    def signalled(h: dict) -> None:
        print_epoch(h)
        os.kill(os.getpid(), sig)  # delivered here, in the main thread, while the epoch is being saved

    monkeypatch.setattr(trainer, "print_epoch", signalled)
    out = tmp_path / "run"
    capsys.readouterr()
    assert (
        run_main("trainer.py", trainer.main, *CELL, *TINY, "--epochs", 3, "--data-root", cifar, "--out", out)
        == 128 + sig
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "interrupted" and saved["signal"] == signal.Signals(sig).name
    assert saved["checkpoint_epoch"] == ckpt_of(out)["epoch"] == len(saved["epochs"]) == 1
    name = signal.Signals(sig).name
    hint = f"`python trainer.py --resume {out}` continues from epoch 1"
    assert capsys.readouterr().err == f"trainer.py: error: interrupted by {name}; {hint}\n"
    monkeypatch.undo()
    resumed = run("--resume", out, "--stop-after", "1")
    assert resumed["status"] == "stopped" and [h["epoch"] for h in resumed["epochs"]] == [1, 2]


@pytest.mark.slow
def test_the_command_ends_with_128_plus_the_signal(cifar: Path, tmp_path: Path):
    """SIGTERM from outside (how a search or a scheduler stops it): exit status 143, the run saved as interrupted."""
    out = tmp_path / "run"
    cmd = [sys.executable, "trainer.py", *CELL, *TINY, "--epochs", "100", "--data-root", str(cifar), "--out", str(out)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "ckpt.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no epoch finished"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "interrupted" and saved["signal"] == "SIGTERM" and saved["checkpoint_epoch"] >= 1
    assert err.splitlines()[-1].startswith("trainer.py: error: interrupted by SIGTERM; `python trainer.py --resume")


# ----------------------------------------------------------------------------- DDP (gloo): rank 0 here, rank 1 apart


def ddp_env(monkeypatch, port: str) -> dict:
    """This process as rank 0 of 2; the environment of rank 1."""
    common = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    for k, v in (common | {"RANK": "0", "LOCAL_RANK": "0"}).items():
        monkeypatch.setenv(k, v)
    return quiet_env(**common, RANK="1", LOCAL_RANK="1")


def rank_1(argv: list, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "trainer.py", *map(str, argv)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ddp_rank_that_never_joins_is_a_clear_error(cifar: Path, tmp_path: Path):
    """A process of its own: a failed start-up leaves torch's count of process groups behind, which would set
    this process apart from the ranks of a later in-process DDP test."""
    env = quiet_env(RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())
    cmd = [sys.executable, "trainer.py", *CELL, *TINY, "--data-root", str(cifar), "--out", str(tmp_path / "o")]
    r = subprocess.run([*cmd, "--ddp-timeout", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith(
        "trainer.py: error: DDP start-up: rank 0 of 2: not all 2 processes joined within 1 s (--ddp-timeout)"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ddp_start_up_failure_reaches_every_rank(cifar: Path, tmp_path: Path, monkeypatch):
    """Rank 1 cannot read its data: both ranks stop, both naming rank 1's error."""
    argv = [*CELL, *TINY, "--out", tmp_path / "o", "--ddp-timeout", "120"]
    other = rank_1([*argv, "--data-root", tmp_path / "missing"], ddp_env(monkeypatch, free_port()))
    try:
        with pytest.raises(trainer.TrainerError, match="^rank 1: --data-root .*/missing: no such folder"):
            run(*argv, "--data-root", cifar)
        _, err = other.communicate(timeout=120)
    finally:
        other.kill()
    assert other.returncode == 2 and err.splitlines()[-1].startswith("trainer.py: error: rank 1: --data-root ")
    assert not (tmp_path / "o" / "metrics.json").exists()  # the run never started


@pytest.mark.slow
def test_ddp_two_ranks_agree_with_one(cifar: Path, tmp_path: Path, monkeypatch):
    """The same global batches split in two: only BatchNorm's per-rank batch statistics differ."""
    argv = [*CELL, *TINY, "--data-root", cifar, "--device", "cpu", "--ddp-timeout", "120"]
    single = run(*argv, "--out", tmp_path / "one")
    other = rank_1([*argv, "--out", tmp_path / "two"], ddp_env(monkeypatch, free_port()))
    try:
        ddp = run(*argv, "--out", tmp_path / "two")
        _, err = other.communicate(timeout=120)
    finally:
        other.kill()
    assert other.returncode == 0, err[-2000:]
    assert ddp["world_size"] == 2 and ddp["status"] == "done"
    for a, b in zip(single["epochs"], ddp["epochs"], strict=True):
        assert a["step"] == b["step"]
        assert abs(a["train_loss"] - b["train_loss"]) < 0.1 * a["train_loss"]
        assert abs(a["valid_loss"] - b["valid_loss"]) < 0.15 * a["valid_loss"]
    wa, wb = ckpt_of(tmp_path / "one")["model"], ckpt_of(tmp_path / "two")["model"]
    w1 = torch.cat([v.flatten().float() for k, v in wa.items() if "conv" in k or "classifier" in k])
    w2 = torch.cat([v.flatten().float() for k, v in wb.items() if "conv" in k or "classifier" in k])
    assert (w1 - w2).norm() < 0.1 * w1.norm()


# ----------------------------------------------------------------------------- NB101's record


def nb101_file(path: Path, synthetic: bool = False) -> Path:
    """An NB101 HDF5 of two cells, the second THE_CELL: 108-epoch validation accuracies 0.9 and 0.8 (three
    repeats), and THE_CELL's 4-epoch validation / test accuracies 0.5 / 0.25 (its first repeat only)."""
    cells = [make_cell([[0, 1], [0, 0]], ["input", "output"]), THE_CELL]
    adjacency, operations = map(np.stack, zip(*[c.padded() for c in cells]))
    rows = {"adjacency": adjacency, "operations": operations, "hash": np.array([c.hash for c in cells])}
    rows["num_vertices"] = np.array([c.num_vertices for c in cells], np.int8)
    metrics = final_accuracies([0.9, 0.8])
    metrics[1, 0, 0, 1, 2:] = 0.5, 0.25
    return write_h5(path, metrics, rows, synthetic=synthetic)


def test_the_cell_and_its_record_from_the_nb101_file(tmp_path: Path):
    data = ["--data", str(nb101_file(tmp_path / "nb.hdf5"))]

    def select(*argv: str):
        return trainer.select_cell(trainer.parse_args([*argv, *data]))

    cell, record = select("--hash", THE_CELL.hash)
    assert cell == THE_CELL and record["row"] == 1 and not record["synthetic"]
    assert record["4"]["val"] == [0.5, None, None] and record["108"]["val"] == [pytest.approx(0.8)] * 3
    (tmp_path / "top1.json").write_text(json.dumps(THE_CELL.to_json()))
    assert select("--arch", str(tmp_path / "top1.json")) == (THE_CELL, record)
    other = make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    assert select("--adjacency", "[[0,1,0],[0,0,1],[0,0,0]]", "--ops", "input,maxpool3x3,output") == (other, None)


@pytest.mark.parametrize("synthetic", [False, True], ids=["recorded", "synthetic"])
def test_run_beside_nb101_record(cifar: Path, tmp_path: Path, capsys, synthetic: bool):
    """The printed summary, metrics.json and curves.png put the run beside NB101's record of its budget, and
    say SYNTHETIC for demo data; the parameter line gives the reduced network's own count only."""
    nb = nb101_file(tmp_path / "nb.hdf5", synthetic=synthetic)
    out = tmp_path / "run"
    m = run(*CELL, *TINY, "--epochs", "4", "--train-images", "64", "--data", nb, "--data-root", cifar, "--out", out)
    printed = capsys.readouterr().out
    assert f"params {m['params']:,} (this reduced network)" in printed and "trainable_parameters" not in printed
    tag, final = ", SYNTHETIC labels" if synthetic else "", m["final"]
    want = (
        f"after 4 epochs: valid {100 * final['valid_acc']:.2f}% test {100 * final['test_acc']:.2f}% "
        f"(NB101 at 4 epochs{tag}: valid 50.00% test 25.00%)"
    )
    assert printed.splitlines()[-1] == want == m["summary"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["nb101_labels"] == ("SYNTHETIC (demo data)" if synthetic else "recorded")
    assert saved["nb101"]["synthetic"] is synthetic and saved["nb101"]["row"] == 1 and saved["summary"] == want
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nb101_record_is_not_shown_beside_other_data(tmp_path: Path, capsys):
    """NB101's record is CIFAR-10's: beside a run on other classes it is left out, with a note."""
    root = image_tree(tmp_path / "d", ["ant", "bee", "cow"], per_class=10)
    nb = nb101_file(tmp_path / "nb.hdf5")
    m = run(
        *CELL, *TINY, "--batch-size", "8", "--epochs", "1", "--data", nb, "--data-root", root, "--out", tmp_path / "o"
    )
    assert m["nb101"] is None and m["nb101_labels"] is None and "NB101" not in m["summary"]
    assert "note: NB101's record is CIFAR-10's; not shown beside a run on 3 classes of 32x32 images" in (
        capsys.readouterr().out
    )


# ----------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_learns_real_cifar10_jpegs(cifar_jpegs: Path, tmp_path: Path):
    """A reduced NB101 network (stem 16, 2 stacks of 1 cell) on 300 real CIFAR-10 JPEGs of the tarball, in its
    own layout, on the CPU: well above chance (0.10) on the 160 held-out images (valid and test), where
    chance would get 16 +- 4 right.

    Batch 32 and BN momentum 0.1 instead of NB101's 256 and 0.003: 240 training images are not one batch
    of 256, and with decay 0.997 the running statistics used at evaluation would after these 90 steps
    still be mostly their initial values.
    """
    adjacency, ops = "[[0,1,1,1],[0,0,1,0],[0,0,0,1],[0,0,0,0]]", "input,conv3x3-bn-relu,conv3x3-bn-relu,output"
    net = "--stem-channels 16 --num-stacks 2 --cells-per-stack 1 --bn-momentum 0.1".split()
    budget = "--epochs 12 --batch-size 32 --device cpu".split()
    m = run(
        "--adjacency", adjacency, "--ops", ops, *net, *budget, "--data-root", cifar_jpegs, "--out", tmp_path / "run"
    )
    data, final = m["data"], m["final"]
    assert data["classes"] == list(CIFAR10_CLASSES) and data["normalization"]["of"] == "NB101's CIFAR-10 values"
    n = data["images"]
    held_out = (final["valid_acc"] * n["valid"] + final["test_acc"] * n["test"]) / (n["valid"] + n["test"])
    print(f"real JPEG CIFAR-10, {n}: valid {final['valid_acc']:.3f} test {final['test_acc']:.3f}")
    assert n == {"train": 240, "valid": 60, "test": 100} and held_out > 0.2
