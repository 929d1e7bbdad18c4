"""Every wrong input of budgeted_search.py: a search of NB101's table, and a search with real training.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import json

import pytest
from conftest import CLASSES, command, corrupt, refused, setup, tree

REAL_TRAINING = "for a search with real training (--data-root DIR)"
TABLE = {  # id: (argv over --budget 10 --data d.hdf5 --strategy re --out o, the message); d.hdf5: 400 cells, 108 epochs
    "no budget": (["--budget", None], "give a budget: --budget QUERIES or --budget-time SECONDS"),
    "--budget 0": (["--budget", "0"], "argument --budget: must be at least 1 (got 0)"),
    "--budget-time -5": (["--budget", None, "--budget-time", "-5"], "argument --budget-time: must be > 0"),
    "--budget beyond the cells": (["--budget", "401"], "--budget 401: more queries than the 400 labelled cells"),
    "--strategy bogus": (["--strategy", "re,bogus"], "--strategy bogus: choose from random,re,ls,bananas"),
    "--strategy none": (["--strategy", ","], "--strategy (none): choose from"),
    "--strategy sh without fewer epochs": (["--strategy", "re,sh"], "--strategy sh queries each of NB101's epochs, "
                                           "but the file has no label at 4/12/36 epochs for some cells"),
    "--target train": (["--target", "train"], "argument --target: invalid choice"),
    "--data missing": (["--data", "nope.hdf5"], "nope.hdf5: no such file"),
    "no --data, no data/nasbench.hdf5": (["--data", None], "data/nasbench.hdf5: no such file; make one with"),
    "--data a TFRecord": (["--data", "x.tfrecord"], "--output x.hdf5"),
    "--out the data file": (["--out", "d.hdf5"], "--out d.hdf5: is a file, not a folder"),
    "--out under a file": (["--out", "d.hdf5/o"], "d.hdf5 is a file, not a folder"),
    "--data and --data-root": (["--data-root", "cifar"], "argument --data-root: not allowed with argument --data"),
    "--engine ray": (["--engine", "ray"], f"--engine: {REAL_TRAINING}"),
    "--trial-*": (["--trial-epochs", "2", "--trial-args", "x"], f"--trial-args, --trial-epochs: {REAL_TRAINING}"),
    "--train": (["--train"], f"--train: {REAL_TRAINING}"),
    "--prior missing": (["--prior", "nope.pt", "--strategy", "guided"], "--prior nope.pt: no such checkpoint"),
    "--prior of another model": (["--prior", "ck/checkpoint.pt", "--strategy", "guided"],
                                 "--prior ck/checkpoint.pt: a mlp predictor, but --model is pgin (give --model mlp)"),
    "--model transformer": (["--model", "transformer"], "argument --model: invalid choice"),
}  # fmt: skip


@pytest.mark.parametrize("case", TABLE)
def test_a_table_search_refuses(case, here, demo_h5, predictor, capsys):
    argv, says = TABLE[case]
    setup(here, [("copy", demo_h5, "d.hdf5"), ("file", "x.tfrecord"), ("copy", predictor, "ck")])
    base = ["--budget", "10", "--data", "d.hdf5", "--strategy", "re", "--out", "o"]
    assert says in refused("budgeted_search", command(base, argv), here, capsys)


SAVED_SEARCH = json.dumps({"argv": {"budget": 8, "data_root": "cifar"}})
TABLE_ONLY = "for a search of NB101's table (--data FILE); with --data-root each query is a training"
REAL = {  # id: (argv over --budget 8 --data-root cifar --strategy re --out o, data tree or None, the message)
    "no --budget": (["--budget", None], None, "give a budget: --budget QUERIES or --budget-time SECONDS (with "
                    "--data-root: --budget TRIALS)"),
    "--budget-time": (["--budget", None, "--budget-time", "100"], None, f"--budget-time: {TABLE_ONLY}"),
    "--jobs": (["--jobs", "2"], None, f"--jobs: {TABLE_ONLY}"),
    "--random-repeat": (["--random-repeat"], None, f"--random-repeat: {TABLE_ONLY}"),
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
def test_a_search_with_real_training_refuses(case, here, cifar, predictor, capsys):
    argv, data, says = REAL[case]
    setup(here, [("file", "f.txt"), ("file", "notes/todo.txt"), ("file", "prev/search_config.json", SAVED_SEARCH)])
    setup(here, [("copy", cifar, "cifar"), ("copy", predictor, "ck")])
    root = data(here / "tree") if data else "cifar"
    base = ["--budget", "8", "--data-root", str(root), "--strategy", "re", "--out", "o"]
    assert says in refused("budgeted_search", command(base, argv), here, capsys)
