"""How far down a predictor's ranking the pool's best cells sit, however many labels it is fitted on.

    python -m bench.best_rank                              # 172, 1,000 and 5,000 labels, 2 draws each
    python -m bench.best_rank --sizes 172 1000 --draws 3

Protocol: the real 20k pool (nb101_real_20k.tfrecord, converted once to data/real20k.hdf5), label the
one-repeat 108-epoch validation accuracy. The pool's best 20 cells are left out of every fit; draw d
fits --model (default `pgin`, its DEFAULTS, training seed d) on the first N of
RandomState(d).permutation(the other cells), ranks every cell it was not fitted on, and reports where
the pool's best 5 cells land (1 = first). The baseline of the same run ranks the cells by their
trainable parameters, which needs no label; the ratio is the best cell's rank under the predictor over
its rank under the parameters. A search that must meet the pool's best cell within a few dozen
queries needs it near the top of such a ranking.

Writes --out (default bench/results/best_rank.json: every draw, the machine) and prints the table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import RESULTS, machine, real_hdf5
from dataset import load_nb101
from lib.predictors.features import cell_features
from lib.predictors.inference import predict
from lib.util.devices import free_cores
from lib.util.outputs import write_json
from model import hyperparams, train_model

LEFT_OUT = 20  # the pool's best cells, never fitted on
SHOWN = 5  # the best cells whose ranks are reported


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[172, 1000, 5000], help="labels per fit")
    p.add_argument("--draws", type=int, default=2, help="random draws of the labelled cells per size")
    p.add_argument("--model", default="pgin")
    p.add_argument("--threads", type=int, help="CPU threads (default: the free cores)")
    p.add_argument("--data", help="an NB101 HDF5 (default: the real 20k pool)")
    p.add_argument("--out", default=str(RESULTS / "best_rank.json"))
    return p.parse_args()


def ranks_of(scores: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> list[int]:
    """1-based rank of each target row among `rows` ordered by `scores` (higher first)."""
    order = rows[np.argsort(-scores, kind="stable")]
    where = {int(r): i + 1 for i, r in enumerate(order)}
    return [where[int(t)] for t in targets]


def main() -> None:
    args = parse_args()
    threads = args.threads or free_cores()
    data = load_nb101(args.data or real_hdf5())
    y = data.labels("val", 108, 0)
    cells = [data.adjacency, data.operations, data.num_vertices]
    best = np.argsort(-y, kind="stable")[:LEFT_OUT]
    others = np.setdiff1d(np.arange(len(y)), best)
    params = data.trainable_parameters.astype(float)
    load, t0 = os.getloadavg(), time.perf_counter()
    draws = []
    for n in args.sizes:
        for d in range(args.draws):
            t = time.perf_counter()
            fitted = np.random.RandomState(d).permutation(others)[:n]
            x = cell_features(*(c[fitted] for c in cells))
            hp = hyperparams(args.model)
            hp["batch_size"] = min(hp["batch_size"], n)
            net, _ = train_model(args.model, x, y[fitted], hp, seed=d, threads=threads, quiet=True)
            rest = np.setdiff1d(np.arange(len(y)), fitted)
            pred = predict(net, cell_features(*(c[rest] for c in cells)), threads=threads)
            row = {"labels": n, "draw": d, "ranks": ranks_of(pred, rest, best[:SHOWN])}
            row |= {"params_ranks": ranks_of(params[rest], rest, best[:SHOWN]), "seconds": time.perf_counter() - t}
            draws.append(row)
            print(f"{n} labels, draw {d}: the best 5 ranked {row['ranks']} ({row['seconds']:.0f} s)", flush=True)
    result = {
        "config": {"data": str(data.path), "model": args.model, "sizes": args.sizes, "draws": args.draws},
        "left_out": LEFT_OUT,
        "pool": {"cells": len(y), "best_val": [float(v) for v in y[best[:SHOWN]]]},
        "draws": draws,
        "bench": {"machine": machine("cpu"), "load_before": load, "load_after": os.getloadavg()},
    }
    result["bench"]["seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    write_json(out, result)
    vals = " / ".join(f"{100 * v:.2f}" for v in result["pool"]["best_val"])
    print(f"\nthe pool's best {SHOWN} cells ({vals} %), ranked among the cells a fit did not see (1 = first)")
    print(f"{'labels':>7} {'draw':>4}  {'ranks, best first':<28} {'by parameters':<28} {'ratio':>6}")
    for r in draws:
        ratio = r["ranks"][0] / r["params_ranks"][0]
        print(f"{r['labels']:>7} {r['draw']:>4}  {str(r['ranks']):<28} {str(r['params_ranks']):<28} {ratio:>6.2f}")
    print(f"saved {out} ({result['bench']['seconds']:.0f} s)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
