"""Every wrong input of search.py, and the command lines of a budgeted search, which it names.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import pytest
from conftest import command, refused, setup

BUDGETED = "for a search with a budget of queries or trials use budgeted_search.py: python budgeted_search.py"

SEARCH = {  # ck/: the predictor's run (checkpoint.pt, and an earlier search.json to keep); o/ an old output
    **{f"--top-k {v}": (["--top-k", v], [], "--top-k") for v in ("0", "-1", "x")},
    **{f"--eval-batch-size {v}": (["--eval-batch-size", v], [], "--eval-batch-size") for v in ("0", "-1")},
    "--threads 0": (["--threads", "0"], [], "argument --threads: must be at least 1 (got 0)"),
    **{f"--device {v}": (["--device", v], [], f"--device {v}: ") for v in ("cuda:7", "foo", "meta")},
    "--checkpoint missing": (["--checkpoint", "nope.pt"], [], "nope.pt: no such checkpoint"),
    "no checkpoint yet": (["--checkpoint", None], [], "--checkpoint runs/latest/checkpoint.pt: no such checkpoint; "
                          "train one with `python train.py`"),
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
    "--budget": (["--budget", "150"], [], f"--budget: search.py ranks the cells with a trained predictor; {BUDGETED} "
                 "--checkpoint ck/checkpoint.pt --data d.hdf5 --out o --budget 150"),
    "--budget-time=S": (["--budget-time=5e5", "--strategy", "re"], [], f"--budget-time: search.py ranks the cells "
                        f"with a trained predictor; {BUDGETED} --checkpoint ck/checkpoint.pt --data d.hdf5 --out o "
                        "--budget-time=5e5 --strategy re"),
    "--data-root": (["--data-root", "cifar", "--budget", "8", "--train", "--", "--epochs", "1"], [],
                    f"--data-root: search.py ranks the cells with a trained predictor; {BUDGETED} --checkpoint "
                    "ck/checkpoint.pt --data d.hdf5 --out o --data-root cifar --budget 8 --train -- --epochs 1"),
    "--resume": (["--resume", "runs/search-1"], [], f"--resume: search.py ranks the cells with a trained predictor; "
                 f"{BUDGETED} --checkpoint ck/checkpoint.pt --data d.hdf5 --out o --resume runs/search-1"),
}  # fmt: skip


@pytest.mark.parametrize("case", SEARCH)
def test_search_refuses(case, here, demo_h5, predictor, trainer_runs, capsys):
    argv, steps, says = SEARCH[case]
    setup(here, [("copy", demo_h5, "d.hdf5"), ("copy", predictor, "ck"), ("file", "ck/search.json", "previous")])
    setup(here, [("copy", trainer_runs["run"], "t")] if "trainer" in steps else [s for s in steps if s != "trainer"])
    base = ["--checkpoint", "ck/checkpoint.pt", "--data", "d.hdf5", "--out", "o"]
    argv = [*argv, "--out", None] if case.startswith("default out") else argv
    assert says in refused("search", command(base, argv), here, capsys)
