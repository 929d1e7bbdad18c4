"""Speed of the default train.py run: 300 epochs on 172 cells, then evaluation of all 423,624 cells.

    python bench/train_speed.py                                # data/nasbench.hdf5 if full-size, else fallback
    python bench/train_speed.py --data data/demo_full.hdf5     # any full-size HDF5 (e.g. `make_demo_data --cells all`)
    python bench/train_speed.py --model mlp --repeats 3

With a full-size HDF5 (>= 423,624 cells) it runs `train.py --data FILE --split 172 --model M --quiet`
end to end in a subprocess (in a temporary folder, so runs/latest is left alone) and reports the
wall time: Python start, loading, training, prediction on every cell, metrics, plot and saving,
with train.py's own breakdown from metrics.json.
Without one it times the same steps in-process: training on split 172 of --train-data (default
data/real20k.hdf5), prediction on the 423,624 cells of nb101_space.enumerate_space(), and the
metrics against a stand-in label (no file loading, plot or saving; the "fallback" mode).

Target: <= 30 s wall on the 2-core development CPU, which other people share: the load
average is recorded beside the times. Writes bench/results/train_speed.json (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench.common import REAL_HDF5, REPO, RESULTS, machine, real_hdf5
from dataset import cell_features, load_nb101
from lib.fitting import hyperparams, predict, train_model
from lib.metrics import prediction_metrics
from lib.nb101_space import NUM_CELLS, enumerate_space
from lib.outputs import write_atomic
from model import MODELS

TARGET_S = 30.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=str(REPO / "data" / "nasbench.hdf5"), help="a full-size HDF5, if there is one")
    p.add_argument("--train-data", default=str(REAL_HDF5), help="training cells in fallback mode (made if absent)")
    p.add_argument("--model", default="gcn", choices=list(MODELS))
    p.add_argument("--repeats", type=int, default=1, help="time it this many times (report each, and the best)")
    p.add_argument("--out", default=str(RESULTS / "train_speed.json"))
    return p.parse_args()


def full_size(path: Path) -> bool:
    if not path.exists():
        return False
    with h5py.File(path, "r") as f:
        return len(f["hash"]) >= NUM_CELLS


def end_to_end(data: Path, model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(REPO / "train.py"),
            "--data",
            str(data.resolve()),
            "--model",
            model,
            "--quiet",
            "--split",
            "172",
            "--out",
            "run",
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, check=True)
        wall = time.perf_counter() - t0
        m = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    return {
        "wall_s": wall,
        "train_py_seconds": m["seconds"],
        "timing": m["timing"],
        "n_eval": m["n_eval"],
        "kendall_tau": m["kendall_tau"],
    }


def in_process(train_data: Path, model: str, x_all: dict) -> dict:
    data = load_nb101(train_data)
    y = data.labels("val")
    idx = data.split("172")
    t0 = time.perf_counter()
    net, _ = train_model(model, data.features(idx), y[idx], hyperparams(model), quiet=True)
    t1 = time.perf_counter()
    pred = predict(net, x_all)
    t2 = time.perf_counter()
    stand_in = pred + np.random.default_rng(0).normal(0, 0.01, len(pred))  # the enumeration has no labels
    prediction_metrics(pred, stand_in)
    t3 = time.perf_counter()
    return {
        "wall_s": t3 - t0,
        "timing": {"train": t1 - t0, "predict": t2 - t1, "metrics": t3 - t2},
        "n_eval": len(pred),
    }


def main() -> dict:
    args = parse_args()
    data = Path(args.data)
    mode = "end-to-end" if full_size(data) else "fallback"
    x_all = train_data = None
    if mode == "fallback":
        print(f"{data} is not a full-size HDF5: timing in-process on the enumerated space (see --help)")
        train_data = real_hdf5(Path(args.train_data))
        space = enumerate_space()
        x_all = cell_features(space["adjacency"], space["operations"], space["num_vertices"])
    load_start = os.getloadavg()
    runs = []
    for i in range(args.repeats):
        r = end_to_end(data, args.model) if mode == "end-to-end" else in_process(train_data, args.model, x_all)
        runs.append(r)
        steps = ", ".join(f"{k} {v:.1f}" for k, v in r["timing"].items())
        print(
            f"run {i}: {r['wall_s']:.1f} s wall ({steps}) on {r['n_eval']:,} cells; load avg {os.getloadavg()[0]:.1f}"
        )
    best = min(r["wall_s"] for r in runs)
    result = {
        "mode": mode,
        "model": args.model,
        "data": str(data if mode == "end-to-end" else args.train_data),
        "hp": hyperparams(args.model),
        "runs": runs,
        "best_wall_s": best,
        "target_s": TARGET_S,
        "meets_target": best <= TARGET_S,
        "machine": machine(),
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda f: json.dump(result, f, indent=2))
    verdict = "meets" if best <= TARGET_S else "MISSES"
    print(f"best {best:.1f} s: {verdict} the {TARGET_S:.0f} s target ({mode}); wrote {out}")
    return result


if __name__ == "__main__":
    main()
