"""Scoring + ranking speed over the whole NB101 space (423,624 cells), vs the seed's one-cell loop.

    python bench/search_speed.py                                  # mlp and gcn, random weights, a few minutes
    python bench/search_speed.py --checkpoint runs/latest/checkpoint.pt --repeats 5

Timed (loading the space and the model excluded): what `search.py --space all` does between the
two, i.e. lib.fitting.predict_cells (model inputs built with array ops + batched predict, its default
batch) and lib.metrics.top_k (full argsort), best of --repeats. The speed does not depend on the weights,
so by default the models run with seeded random weights.

Baseline, in the same run on --sample random cells: the seed's search.py loop, a DataLoader with
batch_size=1 over a Dataset whose __getitem__ builds the one-hot ops and the mask in Python
(chanyoungP/Simple_MLP_Predictor_NAS dataset.py), then one forward per cell, keeping the maximum
(its per-cell print left out). The ratio is its extrapolation to the whole space over our time.
Both run on --threads (default 1, search.py's default; the seed's loop was first measured on 1 thread).
The machine is shared: load averages and CPU seconds are recorded beside the wall times.
Writes bench/results/search_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.common import RESULTS, machine
from lib.fitting import predict_cells
from lib.metrics import top_k
from lib.nb101_space import enumerate_space
from lib.outputs import write_atomic
from model import build_model, load_checkpoint

TARGET_S = 3.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "gcn"], help="registered models, random weights")
    p.add_argument("--checkpoint", help="time this trained predictor instead of --models")
    p.add_argument("--repeats", type=int, default=3, help="timed full-space runs per model (best is reported)")
    p.add_argument("--sample", type=int, default=300, help="cells for the seed's one-at-a-time loop")
    p.add_argument("--eval-batch-size", type=int, help="as search.py --eval-batch-size (default: predict's choice)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, as search.py --threads")
    p.add_argument("--out", default=str(RESULTS / "search_speed.json"))
    return p.parse_args()


class SeedDataset(Dataset):
    """The seed's Nb101Dataset.__getitem__ (inputs part): one-hot ops and mask built in Python."""

    def __init__(self, space: dict[str, np.ndarray], rows: np.ndarray):
        self.space, self.rows = space, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        i = self.rows[index]
        n = self.space["num_vertices"][i]
        ops_onehot = np.array([[k == op + 2 for k in range(5)] for op in self.space["operations"][i]], dtype=np.float32)
        if n < 7:
            ops_onehot[n:] = 0.0
        mask = np.array([k < n for k in range(7)], dtype=np.float32)
        return {"num_vertices": n, "adjacency": self.space["adjacency"][i], "operations": ops_onehot, "mask": mask}


@torch.no_grad()
def seed_loop(model: torch.nn.Module, space: dict[str, np.ndarray], rows: np.ndarray) -> float:
    """The seed's search loop over `rows`; returns seconds per cell."""
    model.eval()
    loader = DataLoader(SeedDataset(space, rows), batch_size=1)
    best, t = -np.inf, time.perf_counter()
    for arch in loader:
        x = {k: v.to(torch.float32) for k, v in arch.items()}
        pred = model(x).cpu().numpy()
        if best < pred:
            best = pred
    return (time.perf_counter() - t) / len(rows)


def time_full(model: torch.nn.Module, space: dict[str, np.ndarray], batch_size: int | None, repeats: int) -> dict:
    """Best-of-`repeats` wall and CPU seconds of predict_cells + top_k over the whole space."""
    device = next(model.parameters()).device
    runs = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        pred = predict_cells(model, space, batch_size, device)
        t_score = time.perf_counter()
        pick = top_k(pred, 10)
        runs.append(
            {
                "total": time.perf_counter() - t,
                "score": t_score - t,
                "rank": time.perf_counter() - t_score,
                "cpu": time.process_time() - c,
                "top1": int(pick[0]),
            }
        )
    best = min(runs, key=lambda r: r["total"])
    assert all(r["top1"] == best["top1"] for r in runs), "the ranking changed between repeats"
    return {**best, "all_totals": [r["total"] for r in runs]}


def main() -> None:
    args = parse_args()
    space = enumerate_space()  # loading: excluded from the timings
    n = len(space["hash"])
    rows = np.random.default_rng(0).choice(n, args.sample, replace=False)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
        models = {model.name: model}
    else:
        models = {}
        for name in args.models:
            torch.manual_seed(0)
            models[name] = build_model(name).eval()
    torch.set_num_threads(args.threads)
    result = {
        "machine": machine(),
        "load_before": os.getloadavg(),
        "n_cells": n,
        "sample": args.sample,
        "batch_size": args.eval_batch_size,
        "target_s": TARGET_S,
        "models": {},
    }
    print(
        f"{n:,} cells, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} (a shared machine: wall times "
        "vary with it)"
    )
    print(
        f"{'model':<6} {'ours s':>7} {'(score':>7} {'rank)':>6} {'cpu s':>6} {'seed us/cell':>13} "
        f"{'seed full s':>11} {'speed-up':>9} {'<= 3 s':>7}"
    )
    for name, model in models.items():
        predict_cells(model, {k: v[:4096] for k, v in space.items()}, args.eval_batch_size)  # warm-up
        full = time_full(model, space, args.eval_batch_size, args.repeats)
        seed_loop(model, space, rows[:20])  # warm-up
        per_cell = seed_loop(model, space, rows)
        r = {
            **full,
            "seed_us_per_cell": 1e6 * per_cell,
            "seed_full_s": per_cell * n,
            "speedup": per_cell * n / full["total"],
            "meets_target": full["total"] <= TARGET_S,
        }
        result["models"][name] = r
        print(
            f"{name:<6} {r['total']:>7.2f} {r['score']:>7.2f} {r['rank']:>6.3f} {r['cpu']:>6.1f} "
            f"{r['seed_us_per_cell']:>13.0f} {r['seed_full_s']:>11.0f} {r['speedup']:>8.0f}x "
            f"{'yes' if r['meets_target'] else 'no':>7}"
        )
    result["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda f: json.dump(result, f, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
