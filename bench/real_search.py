"""Search with real training (budgeted_search.py --data-root): guided against random, and trials per hour
of the local engine against Ray Tune.

    python -m bench.real_search                       # both parts, on data/cifar10-jpeg
    python -m bench.real_search --part guided --seeds 3 --budget 20
    python -m bench.real_search --part throughput --trials 24

Every trial is a tiny real training on the CIFAR-10 JPEGs (data/cifar10-jpeg, unpacked from
cifar10-jpeg.tar.gz): a reduced network (stem 16, 1 stack of 1 cell), 3 epochs on a fixed 2,000 training
images, validation accuracy on 1,000 held-out images, batch 32; about 10 s on one core.
- guided: `budgeted_search.py --strategy guided,random --seeds S --budget B` (guided: --n0 8 random trials, then
  a pgin fit every 4); the incumbent's validation accuracy against trials, mean and spread over seeds.
- prior: guided (--n0 4, a fit every 4) on data that is not CIFAR-10 (five of its classes, in
  grayscale), with and without --prior: pgin trained by train.py on 860 real NB101 cells.
- throughput: the same `random` search of N trials with --engine local (one trial at a time on every
  free core) and with --engine ray --concurrent 2 (two trials side by side, one thread each); trials
  per hour of wall-clock time, and their ratio.
Writes bench/results/real_search.json (+ the curve plots beside it) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, machine
from lib.util.outputs import write_json


def trial_flags(train_images: int = 2000, eval_images: int = 1000) -> list[str]:
    """budgeted_search.py's flags for the tiny trials (image subsets: 0 takes them all)."""
    net = ["--trial-epochs", "3", "--trial-stem-channels", "16", "--trial-stacks", "1", "--trial-cells-per-stack", "1"]
    images = ["--trial-train-images", str(train_images), "--trial-eval-images", str(eval_images)]
    return net + images + ["--trial-args", "--batch-size 32 --bn-momentum 0.1"]


TRIAL = trial_flags()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", default="all", choices=("all", "guided", "throughput", "prior"))
    p.add_argument("--data-root", default=str(REPO / "data" / "cifar10-jpeg"), help="CIFAR-10 as JPEG folders")
    p.add_argument("--seeds", type=int, default=3, help="searches per strategy (guided part)")
    p.add_argument("--budget", type=int, default=20, help="trials per search (guided part)")
    p.add_argument("--trials", type=int, default=24, help="trials per engine (throughput part)")
    p.add_argument("--prior-budget", type=int, default=12, help="trials per search (prior part)")
    p.add_argument("--out", default=str(RESULTS / "real_search.json"))
    return p.parse_args()


def search(argv: list[str], out: Path) -> tuple[dict, float]:
    """budgeted_search.py with real training into `out`; its budget.json and the wall seconds it took."""
    t0 = time.perf_counter()
    cmd = [sys.executable, str(REPO / "budgeted_search.py"), *argv, "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads((out / "budget.json").read_text()), time.perf_counter() - t0


def guided_part(args: argparse.Namespace, work: Path) -> dict:
    argv = ["--budget", str(args.budget), "--data-root", args.data_root, "--strategy", "guided,random"]
    argv += ["--seeds", str(args.seeds), "--n0", "8", "--per-round", "4", "--threads", "1", *TRIAL]
    result, seconds = search(argv, work / "guided")
    for name in ("curves_queries.png", "curves_time.png"):
        shutil.copy(work / "guided" / name, RESULTS / f"real_search_{name}")
    marks = [q for q in (5, 10, 15, 20, 30, 50) if q <= args.budget]
    print(f"\nbest validation accuracy found (%), mean +- std over {args.seeds} seeds, after t trials")
    print(f"{'strategy':<8} " + " ".join(f"{'t ' + str(q):>13}" for q in marks))
    for name, s in result["strategies"].items():
        m, sd = np.array(s["curve_val_mean"]), np.array(s["curve_val_std"])
        print(f"{name:<8} " + " ".join(f"{100 * m[q - 1]:>6.2f} +- {100 * sd[q - 1]:.2f}" for q in marks))
    return {"budget_json": result, "seconds": seconds, "marks": marks}


def throughput_part(args: argparse.Namespace, work: Path) -> dict:
    base = ["--budget", str(args.trials), "--data-root", args.data_root, "--strategy", "random", *TRIAL]
    rows = {}
    for name, engine in (("local", ["--engine", "local"]), ("ray x2", ["--engine", "ray", "--concurrent", "2"])):
        load = os.getloadavg()
        result, seconds = search([*base, *engine], work / name.replace(" ", ""))
        trials = len(result["strategies"]["random"]["runs"][0]["queried"])
        rows[name] = {"trials": trials, "seconds": seconds, "per_hour": 3600 * trials / seconds, "load_before": load}
    ratio = rows["ray x2"]["per_hour"] / rows["local"]["per_hour"]
    print(f"\n{'engine':<8} {'trials':>6} {'wall s':>7} {'trials / h':>10} {'load before':>12}")
    for name, r in rows.items():
        print(f"{name:<8} {r['trials']:>6} {r['seconds']:>7.0f} {r['per_hour']:>10.0f} {r['load_before'][0]:>12.2f}")
    print(f"ray x2 / local: {ratio:.2f}x trials per hour")
    return {"engines": rows, "ratio": ratio}


PRIOR_CLASSES = ("bird", "cat", "deer", "dog", "frog")  # CIFAR-10's animals but two: a harder, other task


def grayscale_subset(root: Path, out: Path, per_class: int = 600, test_per_class: int = 100) -> Path:
    """Data that is not CIFAR-10: five of its classes, in grayscale, made once from the JPEG folders."""
    from PIL import Image

    if (out / "test").is_dir():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c in PRIOR_CLASSES:
            (tmp / split / c).mkdir(parents=True)
            for src in sorted((root / split / c).iterdir())[:n]:
                Image.open(src).convert("L").save(tmp / split / c / (src.stem + ".png"))
    tmp.rename(out)
    return out


def prior_checkpoint(out: Path, work: Path) -> Path:
    """pgin trained by train.py on 860 real NB101 cells' CIFAR-10 labels (made once)."""
    from bench.common import real_hdf5

    if not (out / "checkpoint.pt").exists():
        cmd = [sys.executable, str(REPO / "train.py"), "--data", str(real_hdf5()), "--split", "860", "--model", "pgin"]
        subprocess.run([*cmd, "--quiet", "--out", str(out)], check=True, cwd=work)  # its runs/latest: in work
    return out / "checkpoint.pt"


def prior_part(args: argparse.Namespace, work: Path) -> dict:
    data = grayscale_subset(Path(args.data_root), REPO / "data" / "bench-gray5")
    prior = prior_checkpoint(REPO / "runs" / "bench-prior-pgin", work)
    trial = trial_flags(0, 0)  # all 2,400 / 600 images of the subset
    argv = ["--budget", str(args.prior_budget), "--data-root", str(data), "--strategy", "guided", "--n0", "4"]
    argv += ["--per-round", "4", "--seeds", str(args.seeds), "--threads", "1", *trial]
    runs = {}
    for name, extra in (("no prior", []), ("prior", ["--prior", str(prior)])):
        result, seconds = search([*argv, *extra], work / name.replace(" ", "-"))
        s = result["strategies"]["guided"]
        runs[name] = {"curve_val_mean": s["curve_val_mean"], "curve_val_std": s["curve_val_std"], "seconds": seconds}
        runs[name]["final"] = [r["best_val"] for r in s["runs"]]
    marks = [q for q in (4, 6, 8, 12, 16, 24) if q <= args.prior_budget]
    print(f"\nguided on 5 grayscale CIFAR-10 classes: best val % after t trials, mean +- std over {args.seeds} seeds")
    print(f"{'predictor':<10} " + " ".join(f"{'t ' + str(q):>13}" for q in marks))
    for name, r in runs.items():
        m, sd = np.array(r["curve_val_mean"]), np.array(r["curve_val_std"])
        print(f"{name:<10} " + " ".join(f"{100 * m[q - 1]:>6.2f} +- {100 * sd[q - 1]:.2f}" for q in marks))
    return {"data": str(data), "classes": PRIOR_CLASSES, "prior": str(prior), "runs": runs, "marks": marks}


def main() -> None:
    args = parse_args()
    if not (Path(args.data_root) / "train").is_dir():
        sys.exit(f"error: {args.data_root}/train is absent (tar -xzf cifar10-jpeg.tar.gz -C data/)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"config": {k: v for k, v in vars(args).items() if k != "out"} | {"trial": TRIAL}}
    result["bench"] = {"machine": machine(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=REPO / "runs") as work:
        if args.part in ("all", "guided"):
            result["guided"] = guided_part(args, Path(work))
        if args.part in ("all", "throughput"):
            result["throughput"] = throughput_part(args, Path(work))
        if args.part in ("all", "prior"):
            result["prior"] = prior_part(args, Path(work))
    result["bench"]["load_after"] = os.getloadavg()
    write_json(Path(args.out), result)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
