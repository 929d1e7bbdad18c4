"""Ablation of the flow-GIN predictors (model.py `gin`, `pgin`): each ingredient off in turn, 5 split seeds.

    python -m bench.ablation                                   # everything, data/real20k.hdf5
    python -m bench.ablation --only full no-ranking --seeds 0 1 --threads 2
    python -m bench.ablation --jobs 2                          # two worker processes, 1 thread each
    python -m bench.ablation --only pgin                       # one row; the table keeps every cached row

Protocol: train on RandomState(s).permutation(N)[:n] of the real 20,001-cell file (made once from
nb101_real_20k.tfrecord by bench.common.real_hdf5), label
= 108-epoch validation accuracy of repeat 0, Kendall tau on all N cells. Each run is cached in
bench/results/ablation_runs/<row>-n<n>-s<seed>.json, so the bench resumes and workers share (a
cached run whose hyper-parameters or model arguments differ from the row's is run again); the table
(every cached run) is bench/results/ablation.json + ablation.md. Regret: the best true accuracy in
the file minus the true accuracy of the predicted top-1, in percentage points. Seconds are wall time of
one training run (incl. nothing else; pgin's pretraining is built once and cached by lib.predictors.pretraining)
with --threads torch threads on a shared machine: noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch

from bench.common import RESULTS, real_hdf5
from dataset import DataFileError, load_nb101
from lib.predictors.inference import predict
from lib.predictors.metrics import kendall_tau
from lib.util.outputs import write_atomic, write_json
from model import build_model, hyperparams, train_model

# row -> (model, n_train cells, split seeds, train-hyper-parameter overrides, model-arg overrides);
# "full" rows are gin; pgin = gin + pretrained encoders + statistics in the head + rank-normal target
FIVE, CHECK = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
ROWS = {
    "full": ("gin", 172, FIVE, {}, {}),
    "no-ranking (mse)": ("gin", 172, FIVE, {"loss": "mse"}, {}),
    "ranking only (no mse)": ("gin", 172, FIVE, {"loss": "pairwise"}, {}),
    "no ensemble (1 member)": ("gin", 172, FIVE, {}, {"members": 1}),
    "no backward messages": ("gin", 172, FIVE, {}, {"backward": False}),
    "full, n=100": ("gin", 100, FIVE, {}, {}),
    "full, n=424": ("gin", 424, FIVE, {}, {}),
    "full, seeds 5-9": ("gin", 172, CHECK, {}, {}),
    "pgin": ("pgin", 172, FIVE, {}, {}),
    "pgin, gin's 300 epochs of 64": ("pgin", 172, FIVE, {"epochs": 300, "batch_size": 64}, {}),
    "pgin, 200 epochs of 64": ("pgin", 172, FIVE, {"batch_size": 64}, {}),
    "pgin, 300 epochs of 86": ("pgin", 172, FIVE, {"epochs": 300}, {}),
    "pgin, lr 3e-3": ("pgin", 172, FIVE, {"lr": 3e-3}, {}),
    "pgin, no weight decay": ("pgin", 172, FIVE, {"wd": 0.0}, {}),
    "pgin, weight decay 1e-3": ("pgin", 172, FIVE, {"wd": 1e-3}, {}),
    "pgin, pretraining 0.5 epoch": ("pgin", 172, FIVE, {}, {"pretrain_epochs": 0.5}),
    "pgin, pretraining 2 epochs": ("pgin", 172, FIVE, {}, {"pretrain_epochs": 2.0}),
    "pgin, 3 members": ("pgin", 172, FIVE, {}, {"members": 3}),
    "pgin, width 32": ("pgin", 172, FIVE, {}, {"hidden": 32}),
    "pgin, n=100": ("pgin", 100, FIVE, {}, {}),
    "pgin, n=424": ("pgin", 424, FIVE, {}, {}),
    "pgin, seeds 5-9": ("pgin", 172, CHECK, {}, {}),
}


def parse_args() -> argparse.Namespace:
    head, epilog = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(description=head, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.error = lambda msg: sys.exit(f"ablation.py: error: {msg}")
    p.add_argument("--data", help="HDF5 of the real 20k file (default: data/real20k.hdf5, made if absent)")
    p.add_argument("--only", nargs="+", choices=list(ROWS), metavar="ROW", help=f"rows to run: {', '.join(ROWS)}")
    p.add_argument("--seeds", nargs="+", type=int, help="override the split seeds of every row")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (timings depend on it)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    return p.parse_args()


def key(row: str, n: int, seed: int) -> str:
    return "".join(c if c.isalnum() else "-" for c in row).strip("-") + f"-n{n}-s{seed}"


def run_one(job: tuple[str, str, int, int, int]) -> dict:
    """Train one model on one split and score all cells; cached by (row, n, seed)."""
    data_path, row, n, seed, threads = job
    path = RESULTS / "ablation_runs" / f"{key(row, n, seed)}.json"
    name, _, _, hp_over, model_args = ROWS[row]
    hp = hyperparams(name, hp_over)
    model = build_model(name, **model_args)
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["hp"] == hp and cached["model_args"] == model.args:
            return cached
    torch.set_num_threads(threads)
    data = load_nb101(data_path)
    y = data.labels("val", epochs=108, repeat=0)
    train = np.random.RandomState(seed).permutation(len(y))[:n]  # == data.split("172", seed) for n = 172
    model.prepare()  # pgin: its pretraining, built once and cached, outside the timed training
    t0 = time.perf_counter()
    model, _ = train_model(name, data.features(train), y[train], hp, seed=seed, model_args=model_args, quiet=True)
    seconds = time.perf_counter() - t0
    pred = predict(model, data.features(), threads=threads)
    result = {
        "row": row,
        "model": name,
        "n": n,
        "seed": seed,
        "tau": kendall_tau(pred, y),
        "regret_pp": 100 * (np.nanmax(y) - y[int(np.argmax(pred))]),
        "seconds": seconds,
        "threads": threads,
        "hp": hp,
        "model_args": model.args,
    }
    write_json(path, result)
    print(f"{row:28s} n={n} seed={seed} tau={result['tau']:.4f} {seconds:.0f}s", flush=True)
    return result


def cached_runs() -> list[dict]:
    """Every run of every row that is cached, in row and seed order."""
    paths = [
        RESULTS / "ablation_runs" / f"{key(row, n, s)}.json" for row, (_, n, seeds, *_) in ROWS.items() for s in seeds
    ]
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def table(results: list[dict]) -> tuple[list[dict], str]:
    head = "| row | n | seeds | Kendall tau (mean ± std) | per seed | top-1 regret (pp) | s/run (threads) |"
    rows, lines = [], [head, "|---" * 7 + "|"]
    for row in ROWS:
        rs = [r for r in results if r["row"] == row]
        if not rs:
            continue
        taus, secs = np.array([r["tau"] for r in rs]), np.array([r["seconds"] for r in rs])
        regret = np.array([r.get("regret_pp", np.nan) for r in rs])  # runs cached before it was recorded lack it
        rows.append(
            {
                "row": row,
                "model": rs[0].get("model", "gin"),
                "n": rs[0]["n"],
                "seeds": [r["seed"] for r in rs],
                "tau": taus.tolist(),
                "tau_mean": taus.mean(),
                "tau_std": taus.std(),
                "regret_pp": None if np.isnan(regret).any() else regret.tolist(),
                "seconds_mean": secs.mean(),
                "threads": rs[0]["threads"],
                "hp": rs[0]["hp"],
                "model_args": rs[0]["model_args"],
            }
        )
        seeds, per_seed = ",".join(str(r["seed"]) for r in rs), " ".join(f"{t:.3f}" for t in taus)
        lines.append(
            f"| {row} | {rs[0]['n']} | {seeds} | {taus.mean():.3f} ± {taus.std():.3f} | {per_seed} "
            f"| {'' if np.isnan(regret).any() else f'{regret.mean():.2f} ± {regret.std():.2f}'} "
            f"| {secs.mean():.0f} ({rs[0]['threads']}) |"
        )
    return rows, "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    args.data = args.data or str(real_hdf5())
    try:
        load_nb101(args.data)  # fail early, with how to make the file
    except DataFileError as e:
        sys.exit(f"ablation.py: error: {e}")
    jobs = [
        (args.data, row, ROWS[row][1], s, args.threads)
        for row in (args.only or ROWS)
        for s in (args.seeds or ROWS[row][2])
    ]
    if args.jobs > 1:  # concurrent.futures, not multiprocessing.Pool: a worker that dies is an error, not a hang
        try:
            with ProcessPoolExecutor(args.jobs) as pool:
                list(pool.map(run_one, jobs))
        except BrokenProcessPool:
            sys.exit("ablation.py: error: a worker process died (out of memory?); rerun resumes from the cached runs")
    else:
        for job in jobs:
            run_one(job)
    rows, md = table(cached_runs())
    write_json(RESULTS / "ablation.json", {"data": args.data, "rows": rows})
    write_atomic(RESULTS / "ablation.md", lambda f: f.write(md))
    print(md)


if __name__ == "__main__":
    main()
