"""Every wrong input of trainer.py, --resume's included: a parametrised table, and hypothesis for cells.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CELL,
    CLASSES,
    OTHER_CELL,
    SWEEP,
    TINY,
    command,
    corrupt,
    final_accuracies,
    image_tree,
    other_test_classes,
    refused,
    setup,
    tree,
    write_batches,
    write_h5,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lib.nb101.cell import OPS
from lib.training import images


def mixed_sizes(root: Path) -> Path:
    """A tree of 32x32 images with one 41x40 image in train/ and one 40x30 image in test/."""
    image_tree(root, CLASSES)
    Image.fromarray(np.zeros((40, 41, 3), np.uint8)).save(root / "train" / "bird" / "wide.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "test" / "cat" / "short.png")
    return root


def sizes_apart(root: Path) -> Path:
    """train/ of 40x40 images, test/ of 32x32 ones: each split of one size, the tree of two."""
    image_tree(root, CLASSES, size=(40, 40), test=False)
    (image_tree(root.with_name("apart"), CLASSES) / "test").rename(root / "test")
    shutil.rmtree(root.with_name("apart"))
    return root


def empty_test_folder(root: Path) -> Path:
    image_tree(root, CLASSES, test=False)
    (root / "test").mkdir()
    return root


def a_file_for_test(root: Path) -> Path:
    image_tree(root, CLASSES, test=False)
    (root / "test").write_text("mine\n")
    return root


def a_batch_missing(root: Path) -> Path:
    write_batches(root)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    return root


# ----------------------------------------------------------------------------- trainer.py


TRAINER = {  # id: (argv, data tree or None (--data-root cifar), what the message says); --out o unless given
    **{f"--epochs {v}": (["--epochs", v], None, "argument --epochs") for v in ("0", "-1")},
    **{f"--batch-size {v}": (["--batch-size", v], None, "argument --batch-size") for v in ("0", "-1")},
    **{f"--device {v}": (["--device", v], None, f"--device {v}: ") for v in ("cuda:7", "foo", "meta")},
    **{f"--lr {v}": (["--lr", v], None, "argument --lr") for v in ("-1", "nan", "0")},
    **{f"{f} {v}": ([f, v], None, f"argument {f}") for f, v in (
        ("--momentum", "-0.5"), ("--momentum", "1.5"), ("--rms-decay", "2"), ("--rms-eps", "0"), ("--rms-eps", "-1"),
        ("--weight-decay", "-1"), ("--bn-momentum", "-1"), ("--bn-momentum", "2"), ("--stem-channels", "0"),
        ("--num-stacks", "0"), ("--cells-per-stack", "0"), ("--train-images", "-1"), ("--eval-images", "-1"),
        ("--eval-batch-size", "-1"), ("--stop-after", "-1"), ("--stop-after", "0"), ("--ddp-timeout", "0"),
        ("--seed", "-1"), ("--compile", "fast"), ("--dtype", "fp16"))},
    "--train-images beyond the data": (["--train-images", "100000"], None, "--train-images 100000: the data holds 256"),
    "--eval-images beyond the data": (["--eval-images", "100000"], None, "--eval-images 100000: the data holds 64"),
    "--eval-images beyond valid, no test/": (["--eval-images", "11"], tree(CLASSES, test=False),
                                              "--eval-images 11: the data holds 10 valid images (0 takes them all)"),
    "one class": ([], tree(["cat"]), "one class folder (cat); a classifier needs at least 2"),
    "too few images to hold out": ([], tree(CLASSES, per_class=3), "train: no valid images"),
    "an empty class folder": ([], tree(CLASSES, empty="zebra"), "zebra: no images in this class folder"),
    "no class folders": ([], tree([]), "no class folders"),
    "train/ and test/ differ": ([], other_test_classes, "different class folders (cat in one only)"),
    "a zero-byte JPEG": ([], corrupt("empty"), "train/cat/bad.jpg: not a readable image"),
    "a corrupt JPEG": ([], corrupt("junk"), "train/cat/bad.jpg: not a readable image"),
    "a JPEG cut short": ([], corrupt("cut"), "train/cat/bad.jpg: not a readable image"),
    "an empty test/": ([], empty_test_folder, "test: no class folders (expected "),
    "test a file": ([], a_file_for_test, "test: no class folders (expected "),
    "a batch missing": ([], a_batch_missing, "cannot read CIFAR-10's batches (FileNotFoundError: "),
    "images of mixed sizes": ([], mixed_sizes, "images of 3 sizes (32x32 "),
    "train/ and test/ of two sizes": ([], sizes_apart, "images of 2 sizes (40x40 "),
    "images too small for the stacks": (["--num-stacks", "3"], tree(CLASSES, size=(3, 3)),
                                        "3x3 images are too small for --num-stacks 3 (each stack after the first "
                                        "halves them; 4x4 at least)"),
    "--data-root a file": (["--data-root", "f.txt"], None, "f.txt: a file, not a folder (give the folder that "
                                                           "holds train/<class>/* or cifar-10-batches-py/)"),
    "--data-root missing": (["--data-root", "nope"], None, "nope: no such folder"),
    "--data-root the train/ folder": (["--data-root", "tree/train"], tree(CLASSES), "tree/train: the train/ folder "
                                      "itself; give the folder above it (--data-root "),
    "--out a file": (["--out", "f.txt"], None, "--out f.txt: is a file, not a folder"),
    "--out under a file": (["--out", "f.txt/o"], None, "f.txt is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/o"], None, "cannot write in /proc"),
    "--out a folder of other files": (["--out", "notes"], None, "--out notes holds files of something else (todo.txt)"),
    "--out another run": (["--out", "run"], None, "--out run already holds a run; continue it with --resume run"),
    "--out the data folder": (["--out", "cifar"], None, "--out cifar: the folder of --data-root "),
    "--out among the class folders": (["--out", "tree/train/o"], tree(CLASSES), "--out tree/train/o: in train/ of "
                                      "--data-root"),
    "no cell": (["--adjacency", None, "--ops", None], None, "give exactly one of"),
    "--adjacency without --ops": (["--ops", None], None, "--adjacency needs --ops"),
    "an unknown op": (["--adjacency", "[[0,1],[0,0]]", "--ops", "input,conv5x5"], None, "unknown op"),
    "two cells": (["--hash", "ab"], None, "give exactly one of"),
    "adjacency not JSON": (["--adjacency", "[[0,1],[0"], None, "--adjacency is not JSON"),
    "8 vertices": (["--adjacency", json.dumps(np.eye(8, k=1, dtype=int).tolist()), "--ops",
                    ",".join(["input", *["conv3x3-bn-relu"] * 6, "output"])], None, "8 vertices"),
    "adjacency a number": (["--adjacency", "5"], None, "not square"),
    "adjacency of strings": (["--adjacency", '[["a","b"],["c","d"]]', "--ops", "input,output"], None, "only 0 and 1"),
    "adjacency of 0.5": (["--adjacency", "[[0,0.5],[0,0]]", "--ops", "input,output"], None, "only 0 and 1"),
    "4 ops for 2 vertices": (["--adjacency", "[[0,1],[0,0]]"], None, "4 ops for a 2×2 adjacency matrix"),
    "--hash without --data": (["--adjacency", None, "--ops", None, "--hash", "0" * 32], None, "--hash needs --data"),
    "--arch a folder": (["--adjacency", None, "--ops", None, "--arch", "."], None, "cannot read JSON"),
    "--arch a list": (["--adjacency", None, "--ops", None, "--arch", "a.json"], None, "expected a JSON object"),
    "--arch missing": (["--adjacency", None, "--ops", None, "--arch", "none.json"], None,
                       "--arch none.json: cannot read JSON"),
    "--arch not JSON": (["--adjacency", None, "--ops", None, "--arch", "bad.json"], None,
                        "--arch bad.json: cannot read JSON"),
    "--arch without ops": (["--adjacency", None, "--ops", None, "--arch", "keys.json"], None,
                           "expected a JSON object with keys adjacency, ops"),
    "--arch ops a number": (["--adjacency", None, "--ops", None, "--arch", "types.json"], None, "invalid cell"),
    "--arch lower triangular": (["--adjacency", None, "--ops", None, "--arch", "lower.json"], None,
                                "upper triangular"),
    "--arch of another hash": (["--adjacency", None, "--ops", None, "--arch", "hash.json"], None, "does not match"),
    "--data a TFRecord": (["--data", "x.tfrecord"], None, "--input x.tfrecord --output x.hdf5"),
    "--data missing": (["--data", "none.hdf5"], None, "--data: none.hdf5: no such file"),
    "--data not HDF5": (["--data", "junk.hdf5"], None, "not an NB101 HDF5"),
    "--hash not in --data": (["--adjacency", None, "--ops", None, "--hash", "0123", "--data", "nb.hdf5"], None,
                             "--hash: hash 0123 is not in"),
    "--download offline": (["--download", "--data-root", "fresh"], None, "--download: cannot fetch CIFAR-10"),
}  # fmt: skip


AFTER_READING = ("--eval-images beyond valid, no test/", "images too small for the stacks")  # refused on reading
ARCH_FILES = {  # --arch files the cases name
    "keys": {"matrix": [[0, 1], [0, 0]]},
    "types": {"adjacency": [[0, 1], [0, 0]], "ops": 5},
    "lower": {"adjacency": [[0, 0], [1, 0]], "ops": ["input", "output"]},
    "hash": {"adjacency": [[0, 1], [0, 0]], "ops": ["input", "output"], "hash": "f00"},
}


@pytest.mark.parametrize("case", TRAINER)
def test_trainer_refuses(case, here, cifar, trainer_runs, capsys, monkeypatch):
    argv, data, says = TRAINER[case]
    setup(here, [("file", "f.txt"), ("file", "notes/todo.txt"), ("file", "a.json", "[1, 2]"), ("file", "x.tfrecord")])
    setup(here, [("copy", trainer_runs["run"], "run"), ("copy", cifar, "cifar"), ("file", "junk.hdf5", "not hdf5")])
    setup(here, [("file", f"{name}.json", json.dumps(spec)) for name, spec in ARCH_FILES.items()])
    (here / "bad.json").write_text("{not json")
    write_h5(here / "nb.hdf5", final_accuracies([0.9]))
    root = data(here / "tree") if data else here / "cifar"
    if case in AFTER_READING:
        images.load_images(root)  # the image cache that reading writes, there before
    if case == "--download offline":
        offline = urllib.error.URLError("[Errno -2] Name or service not known")
        monkeypatch.setattr(images, "fetch_cifar10", lambda root: (_ for _ in ()).throw(offline))
    base = [*CELL, "--data-root", str(root), "--out", "o", *TINY]
    assert says in refused("trainer", command(base, argv), here, capsys)


RESUME = {  # run/: a resumable run (epoch 1 of 2), other/: a run of another cell
    "--arch of another cell": (
        ["--arch", "other.json"],
        "--arch other.json: cell 043721b9c7fe... differs from the checkpoint's 5498ba534c25...",
    ),
    "--adjacency of another cell": (OTHER_CELL, "--adjacency [[0,1],[0,0]]: cell"),
    "--epochs": (["--epochs", "36"], "--epochs 36 differs from the checkpoint's 2"),
    "--lr": (["--lr", "0.05"], "--lr 0.05 differs from the checkpoint's 0.2"),
    "two flags": (["--seed", "3", "--no-channels-last"], "--seed 3 differs from the checkpoint's 0; --channels-last"),
    "--out elsewhere": (["--out", "elsewhere"], "--out elsewhere differs from the checkpoint's run"),
    "--data": (["--data", "nb.hdf5"], "--data nb.hdf5 differs from the checkpoint's None"),
    "another run's ckpt.pt": ([], "ckpt.pt holds cell"),
    "train.py's checkpoint": ([], "ckpt.pt is not a trainer.py checkpoint (it has no optimizer, epoch, config"),
    "a cut ckpt.pt": ([], "ckpt.pt cannot be read (RuntimeError: PytorchStreamReader failed"),
    "no ckpt.pt": ([], "--resume run: no ckpt.pt there"),
    "a ckpt.pt without the data": ([], "ckpt.pt is not a trainer.py checkpoint (it has no data)"),
    "a ckpt.pt without the normalisation": ([], "ckpt.pt cannot be continued (no normalization of the data); start a"),
    "a ckpt.pt with --compile as a bool": ([], "ckpt.pt cannot be continued (compile True is not a mode of torch"),
    "a ckpt.pt of another network's weights": ([], "ckpt.pt's weights do not fit the run's network"),
    "data of other classes": (
        ["--data-root", "tree"],
        "11 classes, 44 / 11 / 55 train / valid / test images of 32x32, the checkpoint's run had 10 classes",
    ),
}


@pytest.mark.parametrize("case", RESUME)
def test_resume_refuses(case, here, trainer_runs, predictor, cifar, capsys):
    argv, says = RESUME[case]
    setup(here, [("copy", trainer_runs["run"], "run"), ("copy", cifar, "cifar")])
    (here / "other.json").write_text(json.dumps({"adjacency": [[0, 1], [0, 0]], "ops": ["input", "output"]}))
    ckpt = here / "run" / "ckpt.pt"
    if case == "another run's ckpt.pt":
        shutil.copy(trainer_runs["other"] / "ckpt.pt", ckpt)
    elif case == "train.py's checkpoint":
        shutil.copy(predictor / "checkpoint.pt", ckpt)
    elif case == "a cut ckpt.pt":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif case == "no ckpt.pt":
        ckpt.unlink()
    elif case == "data of other classes":
        images.load_images(image_tree(here / "tree", [*CLASSES, "zebra"], per_class=5))  # decoded: cached before
    elif case.startswith("a ckpt.pt "):
        saved = torch.load(ckpt, weights_only=False)
        if case == "a ckpt.pt without the data":
            del saved["data"]
        elif case == "a ckpt.pt without the normalisation":
            del saved["data"]["normalization"]
        elif case == "a ckpt.pt with --compile as a bool":
            saved["config"]["compile"] = True
        else:
            saved["model"] = torch.load(trainer_runs["other"] / "ckpt.pt", weights_only=False)["model"]
        torch.save(saved, ckpt)
    assert says in refused("trainer", command(["--resume", "run", "--data-root", "cifar"], argv), here, capsys)


@SWEEP
@given(
    adjacency=st.one_of(
        st.text(max_size=40),
        st.lists(st.lists(st.integers(-1, 2), min_size=0, max_size=8), min_size=0, max_size=8).map(json.dumps),
        st.lists(st.lists(st.sampled_from([0, 1]), min_size=2, max_size=8), min_size=2, max_size=8).map(json.dumps),
    ),
    ops=st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from([*OPS, "conv5x5", ""]), min_size=0, max_size=9).map(",".join),
    ),
)
def test_trainer_refuses_any_adjacency_and_ops(adjacency, ops, tmp_path, capsys):
    """Any --adjacency / --ops strings: one line, exit 2; the valid cells among them meet the missing data."""
    work = tmp_path / "hyp"
    work.mkdir(exist_ok=True)
    argv = [f"--adjacency={adjacency}", f"--ops={ops}", "--data-root", str(work / "none"), "--out", str(work / "o")]
    refused("trainer", argv, work, capsys)
