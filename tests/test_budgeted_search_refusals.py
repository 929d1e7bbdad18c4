"""Every wrong input of budgeted_search.py: a search of NB101's table, and a search with real training, whose
dry run refuses before the first trial what trainer.py would refuse in every trial, or at the end.

The machinery of the sweep (refused, command, setup, the fixtures the cases misuse) is tests/conftest.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CLASSES, command, corrupt, refused, setup, tree

import budgeted_search
from lib.training import images

REAL_TRAINING = "for a search with real training (--data-root DIR)"
FITS = "for a predictor's fits (bananas, npenas, guided); --strategy re fits none"
TABLE = {  # id: (argv over --budget 10 --data d.hdf5 --strategy re --out o, the message); d.hdf5: 400 cells, 108 epochs
    "no budget": (["--budget", None], "give a budget: --budget QUERIES or --budget-time SECONDS"),
    "--budget 0": (["--budget", "0"], "argument --budget: must be at least 1 (got 0)"),
    "--budget-time -5": (["--budget", None, "--budget-time", "-5"], "argument --budget-time: must be > 0"),
    "--budget-time inf": (["--budget", None, "--budget-time", "inf"], "argument --budget-time: must be a finite"),
    "--budget beyond the cells": (["--budget", "401"], "--budget 401: more queries than the 400 labelled cells"),
    "--budget-time beyond the cells": (["--budget", None, "--budget-time", "1e12"], "--budget-time 1e+12: more "
                                       "simulated seconds than querying all 400 cells of d.hdf5 costs"),
    "--budget-time beyond them, random repeats": (["--budget", None, "--budget-time", "2e6", "--random-repeat"],
                                                  "more simulated seconds than querying all 400 cells"),
    "--budget-time within a query": (["--budget", None, "--budget-time", "1"],
                                     "--budget-time 1: less than the cheapest query of d.hdf5 costs"),
    "a budget within the random start": (["--strategy", "guided", "--budget", "10"],
                                         "--budget 10: guided trains --n0 10 random cells before its first predictor"),
    "--strategy bogus": (["--strategy", "re,bogus"], "--strategy bogus: choose from random,re,ls,bananas"),
    "--strategy none": (["--strategy", ","], "--strategy (none): choose from"),
    "--strategy twice": (["--strategy", "re,random,re", "--seeds", "2"], "re named twice"),
    "--strategy sh without fewer epochs": (["--strategy", "re,sh"], "--strategy sh queries each of NB101's epochs, "
                                           "but the file has no label at 4/12/36 epochs for some cells"),
    "--target train": (["--target", "train"], "argument --target: invalid choice"),
    "--data missing": (["--data", "nope.hdf5"], "nope.hdf5: no such file"),
    "no --data, no data/nasbench.hdf5": (["--data", None], "data/nasbench.hdf5: no such file; make one with"),
    "--data a TFRecord": (["--data", "x.tfrecord"], "--output x.hdf5"),
    "--out the data file": (["--out", "d.hdf5"], "--out d.hdf5: is a file, not a folder"),
    "--out under a file": (["--out", "d.hdf5/o"], "d.hdf5 is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/o"], "cannot write in /proc"),
    "--out holds a search": (["--out", "prev"], "--out prev holds a search already; choose another --out"),
    "--out holds a search with training": (["--out", "trials"], "--out trials holds a search already"),
    "--data and --data-root": (["--data-root", "cifar"], "argument --data-root: not allowed with argument --data"),
    "--engine ray": (["--engine", "ray"], f"--engine: {REAL_TRAINING}"),
    "--engine at its default": (["--engine", "local"], f"--engine: {REAL_TRAINING}"),
    "--trial-*": (["--trial-epochs", "2", "--trial-args", "x"], f"--trial-args, --trial-epochs: {REAL_TRAINING}"),
    "--trial-epochs at its default": (["--trial-epochs", "4"], f"--trial-epochs: {REAL_TRAINING}"),
    "--scheduler none": (["--scheduler", "none"], f"--scheduler: {REAL_TRAINING}"),
    "--resume": (["--resume", "prev"], "--resume prev: a search of a table (budget.json), which runs again in seconds"),
    "--resume of no search": (["--resume", "o"], "--resume o: no search_config.json of a search with --data-root"),
    "--train": (["--train"], f"--train: {REAL_TRAINING}"),
    "args for trainer.py": (["--", "--epochs", "1"], "are for trainer.py and need --train"),
    "--model without a predictor": (["--model", "mlp"], f"--model: {FITS}"),
    "--prior without a predictor": (["--prior", "ck/checkpoint.pt"], f"--prior: {FITS}"),
    "--n0 without a predictor": (["--n0", "5", "--lr", "0.1"], f"--lr, --n0: {FITS}"),
    "--device without a predictor": (["--device", "cpu"], f"--device: {FITS}"),
    "--threads without a predictor": (["--threads", "1"], f"--threads: {FITS}"),
    "--prior missing": (["--prior", "nope.pt", "--strategy", "guided", "--budget", "12"],
                        "--prior nope.pt: no such checkpoint"),
    "--prior of another model": (["--prior", "ck/checkpoint.pt", "--strategy", "guided", "--budget", "12"],
                                 "--prior ck/checkpoint.pt: a mlp predictor, but --model is pgin (give --model mlp)"),
    "--model transformer": (["--model", "transformer"], "argument --model: invalid choice"),
    "--jobs beyond the cores": (["--jobs", "10000"], "argument --jobs: must be 1 to "),
    "--seeds 0": (["--seeds", "0"], "argument --seeds: must be at least 1 (got 0)"),
    "--threads 0": (["--strategy", "guided", "--budget", "12", "--threads", "0"], "argument --threads: must be at "),
    "--device not a device": (["--strategy", "guided", "--budget", "12", "--device", "gpu"], "--device gpu: not a "),
    "--device this machine lacks": (["--strategy", "guided", "--budget", "12", "--device", "cuda:7"], "cuda:7: "),
}  # fmt: skip


@pytest.mark.parametrize("case", TABLE)
def test_a_table_search_refuses(case, here, demo_h5, predictor, capsys):
    argv, says = TABLE[case]
    setup(here, [("copy", demo_h5, "d.hdf5"), ("file", "x.tfrecord"), ("copy", predictor, "ck")])
    setup(here, [("file", "prev/budget.json", "{}"), ("file", "prev/curves_time.png"), ("file", "trials/trials.jsonl")])
    setup(here, [("file", "trials/search_config.json", "{}")])
    base = ["--budget", "10", "--data", "d.hdf5", "--strategy", "re", "--out", "o"]
    assert says in refused("budgeted_search", command(base, argv), here, capsys)


TABLE_ONLY = "for a search of NB101's table (--data FILE); with --data-root each query is a training"
RAY = "for --engine ray (trials side by side on Ray Tune)"
OWN = "is the search's own"
REAL = {  # id: (argv over --budget 8 --data-root cifar --strategy re --out o, data tree or None, the message)
    "no --budget": (["--budget", None], None, "give a budget: --budget QUERIES or --budget-time SECONDS (with "
                    "--data-root: --budget TRIALS)"),
    "--budget-time": (["--budget", None, "--budget-time", "100"], None, f"--budget-time: {TABLE_ONLY}"),
    "--jobs": (["--jobs", "2"], None, f"--jobs: {TABLE_ONLY}"),
    "--random-repeat": (["--random-repeat"], None, f"--random-repeat: {TABLE_ONLY}"),
    "--target at its default": (["--target", "val"], None, f"--target: {TABLE_ONLY}"),
    "--budget 0": (["--budget", "0"], None, "argument --budget: must be at least 1"),
    "--budget beyond the space": (["--budget", "500000"], None, "more trials than the 423,624 cells of the NB101"),
    "a budget within the random start": (["--strategy", "guided", "--budget", "10"], None,
                                         "--budget 10: guided trains --n0 10 random cells before its first predictor"),
    "--strategy twice": (["--strategy", "re,re"], None, "--strategy re,re: re named twice"),
    # the data: which case it is, and what to do
    "no class folders": ([], tree([]), "no class folders"),
    "one class": ([], tree(["cat"]), "one class folder (cat); a classifier needs at least 2"),
    "an empty class folder": ([], tree(CLASSES, empty="zebra"), "zebra: no images in this class folder"),
    "a corrupt JPEG": ([], corrupt("junk"), "train/cat/bad.jpg: not a readable image"),
    "--data-root missing": (["--data-root", "nope"], None, "--data-root nope: no such folder (give the folder that "
                            "holds train/<class>/* or cifar-10-batches-py/)"),
    "--data-root a file": (["--data-root", "f.txt"], None, "--data-root f.txt: a file, not a folder"),
    "--data-root an archive": (["--data-root", "c.tar.gz"], None, "--data-root c.tar.gz: an archive, not a folder "
                               "(unpack it: tar -xf c.tar.gz -C data/"),
    "--data-root empty": (["--data-root", "empty"], None, "--data-root empty: an empty folder (put train/<class>/* "
                          "or cifar-10-batches-py/ in it"),
    "--data-root without train/": (["--data-root", "notes"], None, "--data-root notes: no train/<class>/* or "
                                   "cifar-10-batches-py/ in it (it holds todo.txt)"),
    "--data-root the train/ folder": (["--data-root", "tree/train"], tree(CLASSES), "--data-root tree/train: the "
                                      "train/ folder itself; give the folder above it (--data-root tree)"),
    "--data-root a class folder": (["--data-root", "tree/train/cat"], tree(CLASSES), "--data-root tree/train/cat: a "
                                   "class folder of train/; give the folder above train/ (--data-root tree)"),
    "--data-root above the data": (["--data-root", "."], None, "--data-root .: no train/<class>/* or "
                                   "cifar-10-batches-py/ in it, but cifar has (--data-root cifar)"),
    "--data-root of class folders": (["--data-root", "flat"], None, "--data-root flat: class folders, but no train/ "
                                     "above them (the tree is flat/train/<class>/*)"),
    # the dry run of a trial's command line: trainer.py's parser, the search's own flags, the data
    "--trial-args a quote left open": (["--trial-args", "'--lr 0.1"], None, "--trial-args \"'--lr 0.1\": No closing "
                                       "quotation (give trainer.py's flags as one argument: --trial-args '--lr 0.1')"),
    "--trial-args unknown": (["--trial-args", "--frobnicate"], None, "--trial-args --frobnicate: trainer.py says: "
                             "unrecognized arguments: --frobnicate"),
    "--trial-args a bad value": (["--trial-args", "--lr -1"], None, "--trial-args '--lr -1': trainer.py says: "
                                 "argument --lr: must be > 0 (got -1)"),
    "--trial-args a bad choice": (["--trial-args", "--dtype=fp16"], None, "argument --dtype: invalid choice"),
    "--trial-args --help": (["--trial-args", "--help"], None, "unrecognized arguments: --help"),
    "--trial-args --data-root": (["--trial-args", "--data-root other"], None, f"--data-root {OWN} (--data-root)"),
    "--trial-args abbreviated": (["--trial-args", "--data-r other"], None, f"--data-root {OWN} (--data-root)"),
    "--trial-args --epochs": (["--trial-args", "--epochs=2"], None, f"--epochs {OWN} (--trial-epochs)"),
    "--trial-args --stop-after": (["--trial-args", "--stop-after 1"], None, f"--stop-after {OWN} (--trial-epochs)"),
    "--trial-args --seed": (["--trial-args", "--seed 3"], None, f"--seed {OWN} (--seeds: a trial's seed is its"),
    "--trial-args the network": (["--trial-args", "--num-stacks 1"], None, f"--num-stacks {OWN} (--trial-stacks)"),
    "--trial-args --out": (["--trial-args", "--out x"], None, f"--out {OWN} (--out: each trial's folder is under it)"),
    "--trial-args a cell": (["--trial-args", "--arch a.json"], None, f"--arch {OWN} (--strategy: a trial's cell"),
    "--trial-args --device": (["--trial-args", "--device cpu"], None, f"--device {OWN} (--device)"),
    "--trial-args --download": (["--trial-args", "--download"], None, f"--download {OWN}"),
    "images too small for --trial-stacks": (["--trial-stacks", "7"], None, "--data-root cifar: 32x32 images are too "
                                            "small for --trial-stacks 7 (each stack after the first halves them"),
    "a batch beyond --trial-train-images": (["--trial-train-images", "100"], None, "a batch of 256 is more than the "
                                            "100 training images (--trial-args '--batch-size N' sets it: at most 100)"),
    "a batch beyond the data": (["--trial-args", "--batch-size 300"], None, "a batch of 300 is more than the 256 "
                                "training images"),
    "--trial-eval-images beyond the data": (["--trial-eval-images", "100000"], None,
                                            "--trial-eval-images 100000: the data holds 64 valid/test images"),
    "--trial-epochs 0": (["--trial-epochs", "0"], None, "argument --trial-epochs: must be at least 1"),
    "--trial-stem-channels 0": (["--trial-stem-channels", "0"], None, "argument --trial-stem-channels: must be at "),
    "--seeds 0": (["--seeds", "0"], None, "argument --seeds: must be at least 1 (got 0)"),
    "--device this machine lacks": (["--device", "cuda:7"], None, "--device cuda:7: "),
    # where the outputs go
    "--out a file": (["--out", "f.txt"], None, "--out f.txt: is a file, not a folder"),
    "--out unwritable": (["--out", "/proc/nope/o"], None, "cannot write in /proc"),
    "--out holds a search": (["--out", "prev"], None, "--out prev holds a search already; continue it with --resume"),
    "--out holds a table's search": (["--out", "table"], None, "--out table holds a search already; choose another"),
    "--out the data": (["--out", "cifar"], None, "--out cifar: the folder of --data-root cifar (a folder "
                       "there would be read as data); choose a folder outside it"),
    "--out in the batches": (["--out", "cifar/cifar-10-batches-py/s"], None, "--out cifar/cifar-10-batches-py/s: in "
                             "cifar-10-batches-py/ of --data-root cifar"),
    "--out among the class folders": (["--out", "tree/train/search"], tree(CLASSES), "--out tree/train/search: in "
                                      "train/ of --data-root"),
    "--out as the test/ split": (["--out", "tree/test/s"], tree(CLASSES, test=False), "in test/ of --data-root"),
    # flags this search would ignore: given at any value, they are refused
    "--engine spark": (["--engine", "spark"], None, "argument --engine: invalid choice"),
    "--scheduler hyperopt": (["--scheduler", "hyperopt"], None, "argument --scheduler: invalid choice"),
    "--scheduler asha on the local engine": (["--scheduler", "asha"], None, f"--scheduler: {RAY}"),
    "--scheduler none on the local engine": (["--scheduler", "none"], None, f"--scheduler: {RAY}"),
    "--max-failures at its default": (["--max-failures", "2"], None, f"--max-failures: {RAY}"),
    "--address on the local engine": (["--address", "h:1"], None, f"--address: {RAY}"),
    "--concurrent on the local engine": (["--concurrent", "2"], None, f"--concurrent: {RAY}"),
    "--threads on Ray without a predictor": (["--engine", "ray", "--threads", "2"], None, f"--threads: {FITS}"),
    "--model without a predictor": (["--model", "mlp"], None, f"--model: {FITS}"),
    "--per-round without a predictor": (["--per-round", "10"], None, f"--per-round: {FITS}"),
    # --address, before anything is read
    "--address not a host": (["--engine", "ray", "--address", "not a host"], None, "--address not a host: not the "
                             "address of a Ray cluster (give host:port, ray://host:port or auto)"),
    "--address without a port": (["--engine", "ray", "--address", "localhost"], None, "not the address of a Ray"),
    "--address of another scheme": (["--engine", "ray", "--address", "http://h:80"], None, "not the address of"),
    "--address where no cluster answers": (["--engine", "ray", "--address", "127.0.0.1:9"], None,
                                           "--address 127.0.0.1:9: no Ray cluster there"),
    "--address ray:// where none answers": (["--engine", "ray", "--address", "ray://127.0.0.1:9"], None,
                                            "--address ray://127.0.0.1:9: no Ray cluster there"),
    # --train's command line, after `--`
    "--train args without --train": (["--", "--epochs", "1"], None, "need --train"),
    "--train -- --epochs 0": (["--train", "--", "--epochs", "0"], None, "--train -- --epochs 0: trainer.py says: "
                              "argument --epochs: must be at least 1 (got 0)"),
    "--train -- unknown": (["--train", "--", "--frobnicate"], None, "unrecognized arguments: --frobnicate"),
    "--train -- --data-root": (["--train", "--", "--data-root", "x"], None, f"--data-root {OWN} (the pick is"),
    "--train -- a cell": (["--train", "--", "--adjacency", "[[0,1],[0,0]]"], None, f"--adjacency {OWN}"),
    "--train -- --resume": (["--train", "--", "--resume", "x"], None, f"--resume {OWN}"),
    "--train -- --device": (["--train", "--", "--device", "cuda:7"], None, "--train: --device cuda:7: "),
    "--train -- --data missing": (["--train", "--", "--data", "nope.hdf5"], None, "--train -- --data: nope.hdf5: no"),
    "--train -- --out the search": (["--train", "--", "--out", "o"], None, "--out o holds the search itself"),
    "--train -- --out in the data": (["--train", "--", "--out", "tree/train/pick"], tree(CLASSES), "--train: --out "
                                     "tree/train/pick: in train/ of --data-root"),
    "--train -- --out another run": (["--train", "--", "--out", "run"], None, "--train -- --out run: run holds a run "
                                     "already; give the pick another folder (-- --out DIR), or continue that run"),
    "--train -- --out of notes": (["--train", "--", "--out", "notes"], None, "holds files of something else"),
    "--train -- images too small": (["--train", "--", "--num-stacks", "7"], None, "--train: --data-root cifar: 32x32 "
                                    "images are too small for --num-stacks 7"),
    "--train -- a batch beyond the data": (["--train", "--", "--train-images", "100"], None, "--train: a batch of "
                                           "256 is more than the 100 training images (--batch-size sets it"),
    "--train -- --train-images beyond": (["--train", "--", "--train-images", "100000"], None,
                                         "--train: --train-images 100000: the data holds 256 train images"),
    # --prior
    "--prior missing": (["--prior", "nope.pt", "--strategy", "guided", "--budget", "12"], None,
                        "--prior nope.pt: no such checkpoint"),
    "--prior a folder": (["--prior", "ck", "--strategy", "guided", "--budget", "12"], None, "--prior ck: is a folder"),
    "--prior of another model": (["--prior", "ck/checkpoint.pt", "--strategy", "guided", "--budget", "12"], None,
                                 "--prior ck/checkpoint.pt: a mlp predictor, but --model is pgin (give --model mlp)"),
}  # fmt: skip
RESUME = {  # id: (argv over --resume prev, data tree or None, the message); prev: a search of cifar, --strategy random
    "of no search": (["--resume", "notes"], None, "--resume notes: no search_config.json of a search"),
    "of a table's search": (["--resume", "table"], None, "--resume table: a search of a table (budget.json), which "
                            "runs again in seconds; only a search with --data-root is resumed"),
    "a flag that differs": (["--trial-epochs", "2"], None, "--trial-epochs 2 differs from its 1 (drop them"),
    "a flag at its default that differs": (["--trial-epochs", "4"], None, "--trial-epochs 4 differs from its 1"),
    "the default strategy": (["--strategy", "guided"], None, "--strategy guided differs from its random"),
    "two flags": (["--seeds", "2", "--trial-args", "--lr 0.1"], None, "--seeds 2 differs from its 1; --trial-args "
                  "'--lr 0.1' differs from its ''"),
    "--out elsewhere": (["--out", "o"], None, "--out o differs from its prev (drop them"),
    "a smaller budget": (["--budget", "4"], None, "--budget 4: prev was searched with --budget 8; a budget only grows"),
    "a table's flag": (["--jobs", "2"], None, f"--jobs: {TABLE_ONLY}"),
    "a table's --data": (["--data", "d.hdf5"], None, f"--data: {TABLE_ONLY}"),
    "other data": (["--data-root", "tree"], tree([*CLASSES, "zebra"]), "--data-root tree: 11 classes, 44 / 11 / 55 "
                   "train / valid / test images of 32x32, but the search in prev started on 10 classes"),
    "--train, the pick trained already": (["--train"], None, "--train: prev/top1 holds a run already; give the pick "
                                          "another folder (-- --out DIR), or continue that run: trainer.py --resume"),
}  # fmt: skip
READ_FIRST = ("other data",)  # cases refused after reading a tree: its image cache is there before


def previous_search(here: Path) -> str:
    """search_config.json of a search with real training of here/cifar, as budgeted_search.py writes it."""
    argv = ["--budget", "8", "--data-root", str(here / "cifar"), "--strategy", "random", "--trial-epochs", "1"]
    args, _ = budgeted_search.parse_args([*argv, "--out", str(here / "prev")])
    return json.dumps(budgeted_search.trials_config(args, images.data_info(images.load_images(here / "cifar"))))


def sweep(case, table: dict, base: list, here: Path, cifar, predictor, trainer_runs, capsys) -> str:
    argv, data, says = table[case]
    setup(here, [("file", "f.txt"), ("file", "notes/todo.txt"), ("file", "c.tar.gz"), ("dir", "empty")])
    setup(here, [("file", "flat/cat/0.png"), ("file", "flat/dog/0.png")])
    setup(here, [("copy", cifar, "cifar"), ("copy", predictor, "ck"), ("copy", trainer_runs["run"], "run")])
    setup(here, [("file", "prev/search_config.json", previous_search(here)), ("file", "prev/trials.jsonl", "")])
    setup(here, [("copy", trainer_runs["run"], "prev/top1")] if case.startswith("--train, the pick") else [])
    setup(here, [("file", "table/budget.json", "{}")])
    root = data(here / "tree") if data else "cifar"
    if case in READ_FIRST:
        images.load_images(Path(root))  # the image cache that reading writes, there before
    return refused("budgeted_search", command([str(a).replace("ROOT", str(root)) for a in base], argv), here, capsys)


@pytest.mark.parametrize("case", REAL)
def test_a_search_with_real_training_refuses(case, here, cifar, predictor, trainer_runs, capsys):
    base = ["--budget", "8", "--data-root", "ROOT", "--strategy", "re", "--out", "o"]
    assert REAL[case][2] in sweep(case, REAL, base, here, cifar, predictor, trainer_runs, capsys)


@pytest.mark.parametrize("case", RESUME)
def test_resume_refuses(case, here, cifar, predictor, trainer_runs, capsys):
    assert RESUME[case][2] in sweep(case, RESUME, ["--resume", "prev"], here, cifar, predictor, trainer_runs, capsys)
