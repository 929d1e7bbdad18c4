"""Every wrong input of the converter, make_demo_data.py and train.py: a parametrised table of bad values per
script, hypothesis where random values find more than a list would, and each script's real command line once.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    CELL,
    REPO,
    SWEEP,
    command,
    refused,
    setup,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

from lib.util.errors import USAGE_ERROR

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
    "no --data, no data/nasbench.hdf5": (["--data", None], [], "data/nasbench.hdf5: no such file; make one with"),
    "--out a file": (["--out", "f.txt"], [("file", "f.txt")], "--out f.txt exists and is not a train.py run folder"),
    "--out under a file": (["--out", "f.txt/r"], [("file", "f.txt")], "f.txt is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/r"], [], "cannot write in /proc"),
    "--out the data file": (["--out", "d.hdf5"], [], "--out d.hdf5 exists and is not a train.py run folder"),
    "--out a folder of notes": (["--out", "notes"], [("file", "notes/todo.txt")], "not a train.py run folder"),
    "runs/ a file": ([], [("file", "runs")], "runs: is a file, not a folder"),
    "runs/latest not a link": ([], [("file", "runs/latest")], "runs/latest is not the link train.py keeps"),
    "--label-epochs 4: no labels": (["--label-epochs", "4"], [], "has no val accuracy at 4 epochs"),
    "--label-epochs 5": (["--label-epochs", "5"], [], "argument --label-epochs: invalid choice"),
    "--target train": (["--target", "train"], [], "argument --target: invalid choice: 'train'"),
    "--split 999": (["--split", "999"], [], "argument --split: invalid choice: '999'"),
    "--model transformer": (["--model", "transformer"], [], "argument --model: invalid choice: 'transformer'"),
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


# ----------------------------------------------------------------------------- the real command lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "argv", "says"),
    [
        ("tools/nasbench_tfrecord_converter.py", ["--input", "in.tfrecord", "--output", "in.tfrecord"], "is the input"),
        ("tools/make_demo_data.py", ["--seed", "-1", "--output", "o.tfrecord"], "argument --seed: must be 0 to"),
        ("train.py", ["--data", "in.tfrecord", "--epochs", "0"], "argument --epochs: must be at least 1 (got 0)"),
        ("search.py", ["--top-k", "0"], "argument --top-k: must be at least 1 (got 0)"),
        ("budgeted_search.py", ["--budget", "0"], "argument --budget: must be at least 1 (got 0)"),
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
