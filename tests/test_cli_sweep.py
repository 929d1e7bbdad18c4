"""Every wrong input of every CLI: one parametrised table of bad values per script, and hypothesis where
random values find more than a list would.

Each case runs the script's main in this process, as `python SCRIPT ARGS` runs it (lib.util.errors.exit_on_user_error),
from a folder that holds its inputs and an existing output, and asserts: exit status 2, exactly one line
on stderr, `SCRIPT: error: ...` naming what is wrong, no file or temp file left behind, and every file
that was there byte-identical. A few go through the real command line (tests marked slow).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, REPO, write_batches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import search
import train
import trainer
from lib.nb101.cell import OPS
from lib.training import images as cifar10
from lib.util.errors import USAGE_ERROR, exit_on_user_error
from tools import make_demo_data, nasbench_tfrecord_converter

SWEEP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PROGS = {
    "converter": ("nasbench_tfrecord_converter.py", nasbench_tfrecord_converter.main),
    "demo": ("make_demo_data.py", make_demo_data.main),
    "train": ("train.py", train.main),
    "search": ("search.py", search.main),
    "trainer": ("trainer.py", trainer.main),
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (links not followed) with a file's bytes, None for a folder or link."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def refused(script: str, argv: list[str], folder: Path, capsys) -> str:
    """Run SCRIPT's main on argv in `folder`; assert the one-line refusal that changes nothing; its message."""
    prog, main = PROGS[script]
    before = snapshot(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        exit_on_user_error(prog, main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == USAGE_ERROR, err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert snapshot(folder) == before  # nothing new (no temp file either), nothing changed or gone
    return err[len(prog) + 9 : -1]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working folder, the current directory of the case."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


LONE = {"--download", "--no-channels-last", "--recompute", "--frobnicate", "--quiet", "--space-all"}


def command(base: list[str], argv: list) -> list[str]:
    """`base` with the case's flags replacing its own (a None value drops one) and the others after them;
    what follows `--` is passed as it is."""
    cut = argv.index("--") if "--" in argv else len(argv)
    argv, tail = argv[:cut], argv[cut:]

    def pairs(a: list) -> list[tuple]:
        out, i = [], 0
        while i < len(a):
            lone = a[i] in LONE or i + 1 == len(a)
            out.append((a[i],) if lone else (a[i], a[i + 1]))
            i += 1 if lone else 2
        return out

    given = pairs(argv)
    mine = {p[0]: p for p in given}
    kept = [mine.pop(p[0], p) for p in pairs(base)]
    rest = [p for p in given if p[0] in mine]
    return [str(a) for p in kept + rest if p[-1] is not None for a in p] + [str(a) for a in tail]


def setup(folder: Path, steps) -> None:
    """Make what a case needs in `folder`: ("file", name[, text]), ("dir", name), ("copy", src, name),
    ("link", target, name)."""
    for step in steps:
        kind, *a = step
        if kind == "file":
            (folder / a[0]).parent.mkdir(parents=True, exist_ok=True)
            (folder / a[0]).write_text(a[1] if len(a) > 1 else "mine\n")
        elif kind == "dir":
            (folder / a[0]).mkdir(parents=True, exist_ok=True)
        elif kind == "copy":
            (shutil.copytree if Path(a[0]).is_dir() else shutil.copy)(a[0], folder / a[1])
        elif kind == "link":
            os.symlink(a[0], folder / a[1])


# ----------------------------------------------------------------------------- fixtures: inputs the cases misuse


@pytest.fixture(scope="session")
def tfrecord(cells, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "demo.tfrecord"
    make_demo_data.write_demo(path, {k: v[:30] for k, v in cells.items()}, epochs=(108,))
    return path


@pytest.fixture(scope="session")
def predictor(demo_h5, tmp_path_factory) -> Path:
    """A train.py run (mlp, 2 epochs) on demo_h5: its folder."""
    run = tmp_path_factory.mktemp("sweep") / "run"
    with contextlib.chdir(run.parent):  # its runs/latest goes there, not into the checkout's runs/
        train.main(["--data", str(demo_h5), "--model", "mlp", "--epochs", "2", "--quiet", "--out", str(run)])
    return run


@pytest.fixture(scope="session")
def cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_batches(root)
    return root


CELL = ["--adjacency", "[[0,1,1,0],[0,0,1,1],[0,0,0,1],[0,0,0,0]]", "--ops", "input,conv3x3-bn-relu,maxpool3x3,output"]
OTHER_CELL = ["--adjacency", "[[0,1],[0,0]]", "--ops", "input,output"]
TINY = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1", "--batch-size", "64", "--epochs", "2"]


@pytest.fixture(scope="session")
def trainer_runs(cifar, tmp_path_factory) -> dict[str, Path]:
    """Two trainer.py runs stopped after epoch 1 of 2 (resumable), of two different cells."""
    root = tmp_path_factory.mktemp("trainer_runs")
    for name, cell in (("run", CELL), ("other", OTHER_CELL)):
        trainer.main([*cell, *TINY, "--stop-after", "1", "--data-root", str(cifar), "--out", str(root / name)])
    return {"run": root / "run", "other": root / "other"}


def image_tree(root: Path, classes: list[str], per_class: int = 5, empty: str | None = None) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png (+ an empty class folder in both)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
        if empty:
            (root / split / empty).mkdir()
    return root


# ----------------------------------------------------------------------------- the converter

CONVERTER = {  # id: (flags over --input in.tfrecord --output old.hdf5, setup, what the message says)
    "output is the input": (["--output", "in.tfrecord"], [], "--output in.tfrecord is the input in.tfrecord"),
    "the input, spelt otherwise": (["--output", "sub/../in.tfrecord"], [("dir", "sub")], "is the input"),
    "a link to the input": (["--output", "ln.hdf5"], [("link", "in.tfrecord", "ln.hdf5")], "is the input"),
    "--workers 0": (["--workers", "0"], [], "argument --workers: must be 1 to"),
    "--workers -3": (["--workers", "-3"], [], "argument --workers: must be 1 to"),
    "--workers abc": (["--workers", "abc"], [], "argument --workers: 'abc' is not an integer"),
    "--workers 100000": (["--workers", "100000"], [], "argument --workers: must be 1 to"),
    "--chunk-bytes 0": (["--chunk-bytes", "0"], [], "argument --chunk-bytes: must be at least 1"),
    "output a folder": (["--output", "d"], [("dir", "d")], "--output d: is a folder"),
    "output under a file": (["--output", "f.txt/o.hdf5"], [("file", "f.txt")], "f.txt is a file, not a folder"),
    "output unwritable": (["--output", "/proc/nope/o.hdf5"], [], "cannot write in /proc"),
    "output empty": (["--output", ""], [], "--output: empty path"),
    "input a folder": (["--input", "."], [], "cannot open: Is a directory"),
    "input an HDF5": (["--input", "old.hdf5", "--output", "o.hdf5"], [], "record 0 at byte 0: length CRC mismatch"),
    "input missing": (["--input", "nope.tfrecord"], [], "cannot open: No such file"),
    "input a text file": (["--input", "f.txt"], [("file", "f.txt", "not a record\n")], "record 0 at byte 0"),
    "unknown flag": (["--frobnicate"], [], "unrecognized arguments: --frobnicate"),
}


@pytest.mark.parametrize("case", CONVERTER)
def test_converter_refuses(case, here, tfrecord, demo_h5, capsys):
    argv, steps, says = CONVERTER[case]
    setup(here, [("copy", tfrecord, "in.tfrecord"), ("copy", demo_h5, "old.hdf5"), *steps])
    assert says in refused("converter", command(["--input", "in.tfrecord", "--output", "old.hdf5"], argv), here, capsys)


# ----------------------------------------------------------------------------- make_demo_data.py

DEMO = {  # old.tfrecord: an existing output
    **{f"--cells {v!r}": (["--cells", v], "--cells") for v in ("0", "-5", "abc", "423625", "", "1e3", "²", "all ")},
    **{f"--epochs {v!r}": (["--epochs", v], "--epochs") for v in ("5", "", "108,108", "4,,108", "x", "³")},
    **{f"--repeats {v}": (["--repeats", v], "argument --repeats") for v in ("0", "4", "x")},
    **{f"--absent-prob {v}": (["--absent-prob", v], "--absent-prob") for v in ("-0.1", "1.5", "nan", "inf", "x")},
    **{f"--seed {v}": (["--seed", v], "argument --seed") for v in ("-1", "abc", str(2**32))},
    "output a folder": (["--output", "d"], "--output d: is a folder"),
    "output under a file": (["--output", "f.txt/o.tfrecord"], "f.txt is a file, not a folder"),
    "output unwritable": (["--output", "/proc/nope/o.tfrecord"], "cannot write in /proc"),
    "output empty": (["--output", ""], "--output: empty path"),
    "unknown flag": (["--frobnicate"], "unrecognized arguments: --frobnicate"),
}


@pytest.mark.parametrize("case", DEMO)
def test_make_demo_data_refuses(case, here, capsys):
    argv, says = DEMO[case]
    setup(here, [("dir", "d"), ("file", "f.txt"), ("file", "old.tfrecord", "previous")])
    output = [] if "--output" in argv else ["--output", "old.tfrecord"]
    assert says in refused("demo", ["--cells", "10", *output, *argv], here, capsys)


@SWEEP
@given(cells=st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=423625).map(str), st.text()))
def test_make_demo_data_refuses_any_bad_cell_count(cells, tmp_path, capsys):
    if cells == "all" or cells.isdecimal() and 0 < int(cells) <= 423624:
        return  # a good count: not this test's
    work = tmp_path / "hyp"
    work.mkdir(exist_ok=True)
    refused("demo", [f"--cells={cells}", "--output", str(work / "o.tfrecord")], work, capsys)


# ----------------------------------------------------------------------------- train.py

Q = ["--model", "mlp", "--epochs", "2", "--quiet"]
TRAIN = {  # d.hdf5: demo_h5 (400 cells); prev: an earlier run (--out prev unless the case says otherwise)
    "--split 860 of 400 cells": (["--split", "860"], [], "--split 860 draws 860 cells, more than the 400"),
    "--split all covers eval": (["--split", "all"], [], "covers every cell of --eval-split all"),
    "train = eval": (["--split", "172", "--eval-split", "172"], [], "covers every cell of --eval-split 172"),
    "--eval-split 860 of 400": (["--eval-split", "860"], [], "--eval-split 860 draws 860 cells"),
    **{f"--epochs {v}": (["--epochs", v], [], "argument --epochs") for v in ("0", "-1", "x")},
    **{f"--batch-size {v}": (["--batch-size", v], [], "argument --batch-size") for v in ("0", "-4")},
    **{f"--lr {v}": (["--lr", v], [], "argument --lr") for v in ("-1", "0", "nan", "inf", "abc")},
    **{f"--wd {v}": (["--wd", v], [], "argument --wd") for v in ("-1", "nan")},
    **{f"--device {v}": (["--device", v], [], f"--device {v}: ") for v in ("cuda:7", "foo", "meta", "mps")},
    **{f"--threads {v}": (["--threads", v], [], "argument --threads") for v in ("0", "-2")},
    **{f"--eval-batch-size {v}": (["--eval-batch-size", v], [], "argument --eval-batch-size") for v in ("0", "-1")},
    **{f"--split-seed {v}": (["--split-seed", v], [], "argument --split-seed") for v in ("-1", str(2**32))},
    "--seed -1": (["--seed", "-1"], [], "argument --seed"),
    "--data a TFRecord": (["--data", "x.tfrecord"], [("file", "x.tfrecord")], "--input x.tfrecord --output x.hdf5"),
    "--data a folder": (["--data", "sub"], [("dir", "sub")], "sub: is a folder"),
    "--data a text file": (["--data", "f.txt"], [("file", "f.txt")], "f.txt: not an NB101 HDF5 file"),
    "--data missing": (["--data", "nope.hdf5"], [], "nope.hdf5: no such file"),
    "--out a file": (["--out", "f.txt"], [("file", "f.txt")], "--out f.txt exists and is not a train.py run folder"),
    "--out under a file": (["--out", "f.txt/r"], [("file", "f.txt")], "f.txt is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/r"], [], "cannot write in /proc"),
    "--out the data file": (["--out", "d.hdf5"], [], "--out d.hdf5 exists and is not a train.py run folder"),
    "--out a folder of notes": (["--out", "notes"], [("file", "notes/todo.txt")], "not a train.py run folder"),
    "runs/ a file": ([], [("file", "runs")], "runs: is a file, not a folder"),
    "runs/latest not a link": ([], [("file", "runs/latest")], "runs/latest is not the link train.py keeps"),
    "--label-epochs 4: no labels": (["--label-epochs", "4"], [], "has no val accuracy at 4 epochs"),
    "--label-epochs 5": (["--label-epochs", "5"], [], "argument --label-epochs: invalid choice"),
    "--target train": (["--target", "train"], [], "argument --target: invalid choice"),
    "unknown flag": (["--frobnicate"], [], "unrecognized arguments: --frobnicate"),
}  # fmt: skip


@pytest.mark.parametrize("case", TRAIN)
def test_train_refuses(case, here, demo_h5, predictor, capsys):
    argv, steps, says = TRAIN[case]
    setup(here, [("copy", demo_h5, "d.hdf5"), ("copy", predictor, "prev"), *steps])
    argv = [*argv, "--out", None] if case.startswith("runs/") else argv
    assert says in refused("train", command(["--data", "d.hdf5", *Q, "--out", "prev"], argv), here, capsys)


@SWEEP
@given(
    flag=st.sampled_from(["--epochs", "--batch-size", "--threads", "--eval-batch-size"]),
    value=st.one_of(st.integers(max_value=0).map(str), st.text()),
)
def test_train_refuses_any_bad_count(flag, value, here, demo_h5, capsys):
    try:
        if int(value) >= 1:
            return  # a good count after all (text that parses as one)
    except ValueError:
        pass
    refused("train", ["--data", str(demo_h5), *Q, f"{flag}={value}"], here, capsys)


@SWEEP
@given(
    flag=st.sampled_from(["--lr", "--wd"]),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (np.isfinite(x) and x > 0)), st.text()
    ),
)
def test_train_refuses_any_bad_rate(flag, value, here, demo_h5, capsys):
    text = repr(value) if isinstance(value, float) else value
    try:
        if np.isfinite(float(text)) and (float(text) > 0 or flag == "--wd" and float(text) == 0):
            return  # a good value after all (text that parses as one)
    except ValueError:
        pass
    refused("train", ["--data", str(demo_h5), *Q, f"{flag}={text}"], here, capsys)


# ----------------------------------------------------------------------------- search.py (ranking mode)

SEARCH = {  # ck/: the predictor's run (checkpoint.pt, and an earlier search.json to keep); o/ an old output
    **{f"--top-k {v}": (["--top-k", v], [], "--top-k") for v in ("0", "-1", "x")},
    **{f"--eval-batch-size {v}": (["--eval-batch-size", v], [], "--eval-batch-size") for v in ("0", "-1")},
    "--threads 0": (["--threads", "0"], [], "argument --threads: must be at least 1 (got 0)"),
    **{f"--device {v}": (["--device", v], [], f"--device {v}: ") for v in ("cuda:7", "foo", "meta")},
    "--checkpoint missing": (["--checkpoint", "nope.pt"], [], "nope.pt: no such checkpoint"),
    "--checkpoint a text file": (["--checkpoint", "f.txt"], [("file", "f.txt")], "not a train.py checkpoint"),
    "--checkpoint an HDF5": (["--checkpoint", "d.hdf5"], [], "not a train.py checkpoint"),
    "--checkpoint trainer.py's": (["--checkpoint", "t/ckpt.pt"], ["trainer"], "not a train.py checkpoint (it holds"),
    "--checkpoint a folder": (["--checkpoint", "ck"], [], "--checkpoint ck: is a folder"),
    "--out a file": (["--out", "f.txt"], [("file", "f.txt")], "--out f.txt: is a file, not a folder"),
    "--out under a file": (["--out", "f.txt/o"], [("file", "f.txt")], "f.txt is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/o"], [], "cannot write in /proc"),
    "--out the data file": (["--out", "d.hdf5"], [], "--out d.hdf5: is a file, not a folder"),
    "default out unwritable": (["--checkpoint", "/proc/self/checkpoint.pt"], [], "no such checkpoint"),
    "--data a TFRecord": (["--data", "x.tfrecord"], [("file", "x.tfrecord")], "--output x.hdf5"),
    "--data missing": (["--data", "nope.hdf5"], [], "nope.hdf5: no such file"),
    "--space all, --data missing": (["--space", "all", "--data", "nope.hdf5"], [], "nope.hdf5: no such file"),
    "--space some": (["--space", "some"], [], "argument --space: invalid choice"),
    "--precision fp8": (["--precision", "fp8"], [], "argument --precision: invalid choice"),
    "args for trainer.py without --train": (["--", "--epochs", "1"], [], "need --train"),
}  # fmt: skip


@pytest.mark.parametrize("case", SEARCH)
def test_search_refuses(case, here, demo_h5, predictor, trainer_runs, capsys):
    argv, steps, says = SEARCH[case]
    setup(here, [("copy", demo_h5, "d.hdf5"), ("copy", predictor, "ck"), ("file", "ck/search.json", "previous")])
    setup(here, [("copy", trainer_runs["run"], "t")] if "trainer" in steps else [s for s in steps if s != "trainer"])
    base = ["--checkpoint", "ck/checkpoint.pt", "--data", "d.hdf5", "--out", "o"]
    argv = [*argv, "--out", None] if case.startswith("default out") else argv
    assert says in refused("search", command(base, argv), here, capsys)


# ----------------------------------------------------------------------------- trainer.py


def corrupt(kind: str):
    """An image-folder tree of 10 classes with one damaged image of `kind`."""

    def make(root: Path) -> Path:
        image_tree(root, CLASSES)
        bad = root / "train" / "cat" / "bad.jpg"
        bad.write_bytes(b"" if kind == "empty" else b"\xff\xd8\xff\xe0 not a jpeg" * 10)
        return root

    return make


def tree(classes, **kw):
    return lambda root: image_tree(root, classes, **kw)


def other_test_classes(root: Path) -> Path:
    image_tree(root, CLASSES)
    shutil.rmtree(root / "test" / "cat")
    return root


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
    "one class": ([], tree(["cat"]), "one class folder (cat); a classifier needs at least 2"),
    "too few images to hold out": ([], tree(CLASSES, per_class=3), "train: no valid images"),
    "an empty class folder": ([], tree(CLASSES, empty="zebra"), "zebra: no images in this class folder"),
    "no class folders": ([], tree([]), "no class folders"),
    "train/ and test/ differ": ([], other_test_classes, "different class folders (cat in one only)"),
    "a zero-byte JPEG": ([], corrupt("empty"), "train/cat/bad.jpg: not a readable image"),
    "a corrupt JPEG": ([], corrupt("junk"), "train/cat/bad.jpg: not a readable image"),
    "--data-root a file": (["--data-root", "f.txt"], None, "no CIFAR-10 under --data-root"),
    "--data-root missing": (["--data-root", "nope"], None, "no CIFAR-10 under --data-root"),
    "--out a file": (["--out", "f.txt"], None, "--out f.txt: is a file, not a folder"),
    "--out under a file": (["--out", "f.txt/o"], None, "f.txt is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/o"], None, "cannot write in /proc"),
    "--out a folder of other files": (["--out", "notes"], None, "--out notes holds files of something else (todo.txt)"),
    "--out another run": (["--out", "run"], None, "--out run already holds a run; continue it with --resume run"),
    "--out the data folder": (["--out", "cifar"], None, "holds files of something else (cifar-10-batches-py)"),
    "no cell": (["--adjacency", None, "--ops", None], None, "give exactly one of"),
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
    "--data a TFRecord": (["--data", "x.tfrecord"], None, "--input x.tfrecord --output x.hdf5"),
    "--download offline": (["--download", "--data-root", "fresh"], None, "--download: cannot fetch CIFAR-10"),
}  # fmt: skip


@pytest.mark.parametrize("case", TRAINER)
def test_trainer_refuses(case, here, cifar, trainer_runs, capsys, monkeypatch):
    argv, data, says = TRAINER[case]
    setup(here, [("file", "f.txt"), ("file", "notes/todo.txt"), ("file", "a.json", "[1, 2]"), ("file", "x.tfrecord")])
    setup(here, [("copy", trainer_runs["run"], "run"), ("copy", cifar, "cifar")])
    root = data(here / "tree") if data else here / "cifar"
    if case == "--download offline":
        offline = urllib.error.URLError("[Errno -2] Name or service not known")
        monkeypatch.setattr(cifar10, "CIFAR10", lambda *a, **k: (_ for _ in ()).throw(offline))
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
        cifar10.load_images(image_tree(here / "tree", [*CLASSES, "zebra"], per_class=5))  # decoded: cached before
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


# ----------------------------------------------------------------------------- search.py with real training

SAVED_SEARCH = json.dumps({"argv": {"budget": 8, "data_root": "cifar"}})
REAL = {  # id: (argv over --budget 8 --data-root cifar --strategy re --out o, data tree or None, the message)
    "no --budget": (["--budget", None], None, "--data-root searches with real training: give --budget TRIALS"),
    "--budget-time": (["--budget-time", "100"], None, "with --data-root give --budget TRIALS"),
    "--jobs": (["--jobs", "2"], None, "--jobs runs searches of a table side by side"),
    "--budget 0": (["--budget", "0"], None, "argument --budget: must be at least 1"),
    "no class folders": ([], tree([]), "no class folders"),
    "one class": ([], tree(["cat"]), "one class folder (cat); a classifier needs at least 2"),
    "an empty class folder": ([], tree(CLASSES, empty="zebra"), "zebra: no images in this class folder"),
    "a corrupt JPEG": ([], corrupt("junk"), "train/cat/bad.jpg: not a readable image"),
    "--data-root missing": (["--data-root", "nope"], None, "no CIFAR-10 under --data-root"),
    "a budget within the random start": (["--strategy", "guided", "--budget", "10"], None,
                                         "--budget 10: guided trains --n0 10 random cells before its first predictor"),
    "--trial-eval-images beyond the data": (["--trial-eval-images", "100000"], None,
                                            "--trial-eval-images 100000: the data holds 64 such images"),
    "--trial-epochs 0": (["--trial-epochs", "0"], None, "argument --trial-epochs: must be at least 1"),
    "--engine spark": (["--engine", "spark"], None, "argument --engine: invalid choice"),
    "--scheduler hyperopt": (["--scheduler", "hyperopt"], None, "argument --scheduler: invalid choice"),
    "--out a file": (["--out", "f.txt"], None, "--out f.txt: is a file, not a folder"),
    "--out holds a search": (["--out", "prev"], None, "--out prev holds a search already; continue it with --resume"),
    "--resume of no search": (["--resume", "notes"], None, "--resume notes: no search_config.json of a search"),
    "--resume changing a flag": (["--resume", "prev", "--budget", None, "--data-root", None, "--out", None,
                                  "--strategy", None, "--trial-epochs", "2"], None, "--trial-epochs cannot change"),
    "--resume with a smaller budget": (["--resume", "prev", "--budget", "4", "--data-root", None, "--out", None,
                                       "--strategy", None], None, "--budget 4: prev was searched with --budget 8"),
    "--prior missing": (["--prior", "nope.pt", "--strategy", "guided", "--budget", "12"], None,
                        "--prior nope.pt: no such checkpoint"),
    "--prior a folder": (["--prior", "ck", "--strategy", "guided", "--budget", "12"], None, "--prior ck: is a folder"),
    "--prior of another model": (["--prior", "ck/checkpoint.pt", "--strategy", "guided", "--budget", "12"], None,
                                 "--prior ck/checkpoint.pt: a mlp predictor, but --model is pgin (give --model mlp)"),
    "--scheduler asha on the local engine": (["--scheduler", "asha"], None, "--scheduler asha: for --engine ray"),
    "--address on the local engine": (["--address", "h:1"], None, "--address: for --engine ray"),
    "--address where no cluster answers": (["--engine", "ray", "--address", "127.0.0.1:9"], None,
                                           "--address 127.0.0.1:9: no Ray cluster there"),
    "--train args without --train": (["--", "--epochs", "1"], None, "need --train"),
}  # fmt: skip


@pytest.mark.parametrize("case", REAL)
def test_search_with_real_training_refuses(case, here, cifar, predictor, capsys):
    argv, data, says = REAL[case]
    setup(here, [("file", "f.txt"), ("file", "notes/todo.txt"), ("file", "prev/search_config.json", SAVED_SEARCH)])
    setup(here, [("copy", cifar, "cifar"), ("copy", predictor, "ck")])
    root = data(here / "tree") if data else "cifar"
    base = ["--budget", "8", "--data-root", str(root), "--strategy", "re", "--out", "o"]
    assert says in refused("search", command(base, argv), here, capsys)


# ----------------------------------------------------------------------------- the real command lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "argv", "says"),
    [
        ("tools/nasbench_tfrecord_converter.py", ["--input", "in.tfrecord", "--output", "in.tfrecord"], "is the input"),
        ("tools/make_demo_data.py", ["--seed", "-1", "--output", "o.tfrecord"], "argument --seed: must be 0 to"),
        ("train.py", ["--data", "in.tfrecord", "--epochs", "0"], "argument --epochs: must be at least 1 (got 0)"),
        ("search.py", ["--top-k", "0"], "argument --top-k: must be at least 1 (got 0)"),
        ("trainer.py", [*CELL, "--device", "foo"], "--device foo: not a device"),
    ],
)
def test_real_command_lines_refuse_in_one_line(script, argv, says, tmp_path, tfrecord):
    shutil.copy(tfrecord, tmp_path / "in.tfrecord")
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, str(REPO / script), *argv], cwd=tmp_path, capture_output=True, text=True)
    name = Path(script).name
    assert r.returncode == USAGE_ERROR and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"{name}: error: ") and says in r.stderr, r.stderr
    assert snapshot(tmp_path) == before
