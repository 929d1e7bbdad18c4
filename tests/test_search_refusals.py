"""Every wrong input of search.py: ranking, and search with real training.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import json

import pytest
from conftest import (
    CLASSES,
    command,
    corrupt,
    refused,
    setup,
    tree,
)

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
