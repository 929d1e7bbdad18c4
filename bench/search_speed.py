"""Scoring + ranking speed over the whole NB101 space (423,624 cells), vs the one-cell loop of the original
project (chanyoungP/Simple_MLP_Predictor_NAS); and
`search.py --space all` as a whole command, with the predictions a checkpoint stores and without.

    python -m bench.search_speed                                  # mlp, gcn, gin, pgin: random weights, minutes
    python -m bench.search_speed --models gin --threads 1 2 --precisions fp32 bf16 --repeats 3

In-process (loading the space and the model excluded): what `search.py --space all` does between the
two, i.e. lib.predictors.inference.predict_cells (each batch's inputs built by the worker that scores it) and
lib.predictors.metrics.top_k, best of --repeats, for each model x precision x threads. The speed does not
depend on the weights, so the models run with seeded random weights (pgin's encoders pretrained).
For gin, the row "members looped" runs the same weights as K separate FlowGIN modules one after the
other (the ensemble before its members were batched), fp32, 1 thread.

Baseline, in the same run on --sample random cells: the original project's search.py loop, a DataLoader with
batch_size=1 over a Dataset whose __getitem__ builds the one-hot ops and the mask in Python
(chanyoungP/Simple_MLP_Predictor_NAS dataset.py), then one forward per cell, keeping the maximum
(its per-cell print left out), on 1 thread. Ratio: its extrapolation to the whole space over ours.

Whole command (--command, default on): `python search.py --space all --top-k 10` in a subprocess on a
pgin checkpoint (random head weights) whose checkpoint holds the space's predictions, as train.py stores
them: once reusing them, once with --recompute (default threads and precision); wall seconds from
start-up to exit, best of --repeats. Target: <= 5 s.

The machine is shared: load averages and CPU seconds are recorded beside the wall times.
Writes bench/results/search_speed.json.
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

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.common import REPO, RESULTS, machine
from lib.nb101.space import enumerate_space, space_fingerprint
from lib.predictors.inference import PRECISIONS, predict_cells, stored_predictions
from lib.predictors.metrics import top_k
from lib.util.devices import native_bf16
from lib.util.outputs import write_json
from model import MODELS, Predictor, build_model, masked_inputs, save_checkpoint

TARGET_S = 5.0  # search.py --space all, whole command


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", nargs="+", default=["mlp", "gcn", "gin", "pgin"], choices=list(MODELS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS[1:])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="worker threads to time")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (best is reported)")
    p.add_argument("--sample", type=int, default=300, help="cells for the original one-at-a-time loop")
    p.add_argument("--no-command", dest="command", action="store_false", help="skip the whole-command timings")
    p.add_argument("--out", default=str(RESULTS / "search_speed.json"))
    return p.parse_args()


class SeedDataset(Dataset):
    """The original project's Nb101Dataset.__getitem__ (inputs part): one-hot ops and mask built in Python."""

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
    """The original project's search loop over `rows`, on 1 thread; returns seconds per cell."""
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loader = DataLoader(SeedDataset(space, rows), batch_size=1)
    best, t = -np.inf, time.perf_counter()
    for arch in loader:
        x = {k: v.to(torch.float32) for k, v in arch.items()}
        pred = model(x).cpu().numpy()
        if best < pred:
            best = pred
    torch.set_num_threads(threads)
    return (time.perf_counter() - t) / len(rows)


class LoopedMembers(Predictor):
    """gin's members as K separate FlowGIN modules, evaluated in a Python loop (same weights)."""

    name = "gin-looped"

    def __init__(self, gin: Predictor):
        super().__init__()
        self.members = torch.nn.ModuleList(gin.members.member(i) for i in range(gin.members.k))
        self.set_label_norm(gin.label_mean.item(), gin.label_std.item())

    def forward(self, x):
        adj, ops, mask = masked_inputs(x)
        return torch.stack([m(adj, ops, mask) for m in self.members], 1).mean(1)


def time_full(model, space, threads: int, precision: str, repeats: int) -> dict:
    """Best-of-`repeats` wall and CPU seconds of predict_cells + top_k over the whole space."""
    runs = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        pred = predict_cells(model, space, threads=threads, precision=precision)
        t_score = time.perf_counter()
        pick = top_k(pred, 10)
        runs.append(
            {
                "total": time.perf_counter() - t,
                "score": t_score - t,
                "rank": time.perf_counter() - t_score,
                "cpu": time.process_time() - c,
                "top1": int(pick[0]),
                "load": os.getloadavg()[0],
            }
        )
    best = min(runs, key=lambda r: r["total"])
    return {**best, "all_totals": [r["total"] for r in runs]}


def random_model(name: str) -> Predictor:
    """Model `name` with seeded random weights, prepared (pgin: pretrained encoders), in eval mode."""
    torch.manual_seed(0)
    model = build_model(name)
    model.prepare(quiet=True)
    return model.eval()


def whole_command(space: dict, repeats: int) -> dict:
    """`search.py --space all` on a pgin checkpoint that stores the space's predictions: reused, recomputed."""
    model = random_model("pgin")
    model.fit_target(np.linspace(0.8, 0.95, 172))  # a score -> accuracy map, as training leaves one
    pred = predict_cells(model, space)
    stored = {"space": stored_predictions(pred, space_fingerprint(space), "bf16" if native_bf16() else "fp32")}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp) / "pgin.pt", model, predictions=stored)
        for label, extra in (("reused", []), ("recomputed", ["--recompute"])):
            cmd = [sys.executable, str(REPO / "search.py"), "--checkpoint", "pgin.pt", "--space", "all", *extra]
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if done.returncode:
                    sys.exit(f"search.py failed: {done.stderr.strip()}")
                scoring = json.loads((Path(tmp) / "search.json").read_text())["scoring"]
                runs.append({"wall_s": wall, "load": os.getloadavg()[0], "scoring": scoring})
            best = min(runs, key=lambda r: r["wall_s"])
            out[label] = {**best, "all_walls": [r["wall_s"] for r in runs], "meets_target": best["wall_s"] <= TARGET_S}
    return out


def main() -> None:
    args = parse_args()
    space = enumerate_space(hashes=False)  # loading: excluded from the timings
    n = len(space["num_vertices"])
    rows = np.random.default_rng(0).choice(n, args.sample, replace=False)
    result = {"machine": machine(), "load_before": os.getloadavg(), "n_cells": n, "sample": args.sample, "rows": []}
    print(f"{n:,} cells; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared: wall times vary)")
    head = ("model", "prec", "thr", "wall s", "cpu s", "load", "seed full s", "speed-up")
    print("{:<11} {:<5} {:>3} {:>7} {:>6} {:>5} {:>11} {:>9}".format(*head))
    for name in args.models:
        model = random_model(name)
        predict_cells(model, {k: v[:4096] for k, v in space.items()})  # warm-up
        seed_loop(model, space, rows[:20])  # warm-up
        seed_s = seed_loop(model, space, rows) * n
        configs = [(model, name, p, t) for p in args.precisions for t in args.threads]
        if name == "gin":
            configs.append((LoopedMembers(model).eval(), "gin looped", "fp32", 1))
        for net, label, precision, threads in configs:
            if precision == "bf16" and not native_bf16():
                continue  # emulated bf16: slower than fp32, nothing to measure
            r = {
                "model": label,
                "precision": precision,
                "threads": threads,
                **time_full(net, space, threads, precision, args.repeats),
            }
            r.update(seed_full_s=seed_s, speedup=seed_s / r["total"])
            result["rows"].append(r)
            print(
                f"{label:<11} {precision:<5} {threads:>3} {r['total']:>7.2f} {r['cpu']:>6.1f} {r['load']:>5.1f} "
                f"{seed_s:>11.0f} {r['speedup']:>8.0f}x"
            )
    if args.command:
        result["command"] = whole_command(space, args.repeats)
        for label, r in result["command"].items():
            s = r["scoring"]
            how = "stored predictions" if s["reused"] else f"{s['precision']}, {s['threads']} thread(s)"
            verdict = "meets" if r["meets_target"] else "MISSES"
            print(
                f"search.py --space all, {label} ({how}): {r['wall_s']:.2f} s wall, load {r['load']:.1f}; "
                f"{verdict} the {TARGET_S:.0f} s target"
            )
    result["load_after"] = os.getloadavg()
    out = Path(args.out)
    write_json(out, result)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
