"""Real-data benchmark of the predictors: how well each ranks 20,001 real NB101 cells after 172 labels.

    python -m bench.predictors                                  # every registered model, split seeds 0-4
    python -m bench.predictors --models gcn mlp --seeds 0 1 2 3 4
    python -m bench.predictors --models gcn --seeds 0 --epochs 30 --out /tmp/quick   # a smoke run
    python -m bench.predictors --models gcn --model-args '{"hidden": 64}' --out bench/results/gcn64

Protocol: nb101_real_20k.tfrecord converted once to data/real20k.hdf5
(bench.common.real_hdf5); for each split seed s, train on
split("172", seed=s) = RandomState(s).permutation(N)[:172] and evaluate on all N cells; the label
is the one-repeat 108-epoch validation accuracy; each model trains with its own DEFAULTS
(model.py) and training seed s, exactly as `train.py --split 172 --split-seed s --seed s` does.
Seconds per run = training + prediction + metrics (the file is loaded once).

Writes <out>.json (every run, mean and std per model, the protocol and the machine) and <out>.md
(the table), default bench/results/predictors.*. The std is numpy's (ddof=0) over the seeds.
Timings depend on how busy the shared CPU is: the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import REAL_HDF5, REAL_TFRECORD, RESULTS, machine, real_hdf5
from dataset import SPLITS, TARGETS, load_nb101, parse_target
from lib.nb101.schema import EPOCHS
from lib.predictors.inference import predict
from lib.predictors.metrics import prediction_metrics
from lib.util.devices import pick_device
from lib.util.errors import UserError, exit_on_user_error
from lib.util.outputs import write_atomic, write_json
from model import HP, LOSSES, MODELS, hyperparams, train_model

COLUMNS = ("kendall_tau", "spearman", "mse", "top1_true", "seconds")
# The original code of each anchor on exactly this protocol and file (1 thread, 5 seeds).
ANCHORS = {
    "chanyoungP/Simple_MLP_Predictor_NAS's MLP (original code)": {"kendall_tau": (0.626, 0.015)},
    "neuralpredictor.pytorch GCN (original code)": {"kendall_tau": (0.662, 0.021)},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=str(REAL_HDF5), help="made from --tfrecord when missing")
    p.add_argument("--tfrecord", default=str(REAL_TFRECORD), help="the real 20k-cell file")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="split seeds")
    p.add_argument("--split", default="172", choices=SPLITS)
    p.add_argument("--eval-split", default="all", choices=SPLITS)
    p.add_argument("--target", default="val:0", choices=TARGETS)
    p.add_argument("--label-epochs", type=int, default=108, choices=EPOCHS)
    p.add_argument("--train-seed", type=int, help="model init and batch order of every run (default: the split seed)")
    p.add_argument("--model-args", default="{}", help="JSON keyword args for every model, e.g. '{\"hidden\": 64}'")
    hp = p.add_argument_group("training: override every model's DEFAULTS")
    hp.add_argument("--epochs", type=int)
    hp.add_argument("--batch-size", type=int)
    hp.add_argument("--lr", type=float)
    hp.add_argument("--wd", type=float)
    hp.add_argument("--loss", choices=list(LOSSES))
    p.add_argument("--threads", type=int, default=1, help="torch threads for prediction (training always uses 1)")
    p.add_argument("--device", default="cpu", help="cpu (as the anchors), or auto / cuda / mps")
    p.add_argument("--out", default=str(RESULTS / "predictors"), help="writes OUT.json and OUT.md")
    return p.parse_args(argv)


def mean_std(runs: list[dict]) -> dict:
    return {
        c: {"mean": float(np.mean([r[c] for r in runs])), "std": float(np.std([r[c] for r in runs]))} for c in COLUMNS
    }


def table(summary: dict, n_seeds: dict) -> str:
    head = "| model | seeds | Kendall τ | Spearman ρ | MSE (pp²) | top-1 true acc (%) | seconds / run |"
    lines = [head, "|" + "---|" * 7]
    for name, s in summary.items():
        cells = [f"{s[c]['mean']:.3f} ± {s[c]['std']:.3f}" for c in ("kendall_tau", "spearman", "mse")]
        cells.append(f"{100 * s['top1_true']['mean']:.2f} ± {100 * s['top1_true']['std']:.2f}")
        cells.append(f"{s['seconds']['mean']:.1f} ± {s['seconds']['std']:.1f}")
        lines.append(f"| {name} | {n_seeds[name]} | " + " | ".join(cells) + " |")
    for name, a in ANCHORS.items():
        tau = a["kendall_tau"]
        lines.append(f"| {name} | 5 | {tau[0]:.3f} ± {tau[1]:.3f} | | | | ~19–22 (1 thread) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    load_start = os.getloadavg()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_nb101(real_hdf5(Path(args.data), Path(args.tfrecord)))
    metric, repeat = parse_target(args.target)
    y = data.labels(metric, epochs=args.label_epochs, repeat=repeat)
    eval_idx = data.split(args.eval_split)
    eval_idx = eval_idx[np.isfinite(y[eval_idx])]
    x_eval = data.features(eval_idx)
    try:
        model_args = json.loads(args.model_args)
    except json.JSONDecodeError as e:
        raise UserError(f"--model-args {args.model_args!r} is not JSON ({e})") from None
    overrides = {k: getattr(args, k) for k in HP if getattr(args, k) is not None}
    print(
        f"{args.data}: {len(data)} cells, {len(eval_idx)} evaluated; models {' '.join(args.models)}; seeds {args.seeds}"
    )

    fit_options = dict(device=device, model_args=model_args, quiet=True)
    runs = []
    for name in args.models:
        hp = hyperparams(name, vars(args))
        for s in args.seeds:
            train_idx = data.split(args.split, s)
            train_idx = train_idx[np.isfinite(y[train_idx])]
            t0 = time.perf_counter()
            seed = s if args.train_seed is None else args.train_seed
            model, history = train_model(name, data.features(train_idx), y[train_idx], hp, seed=seed, **fit_options)
            t1 = time.perf_counter()
            m = prediction_metrics(predict(model, x_eval, threads=args.threads), y[eval_idx])
            t2 = time.perf_counter()
            runs.append(
                {
                    "model": name,
                    "split_seed": s,
                    "train_seed": seed,
                    **m,
                    "n_train": len(train_idx),
                    "seconds": t2 - t0,
                    "train_seconds": t1 - t0,
                    "final_train_loss": history[-1],
                    "hp": hp,
                    "model_args": model.args,
                }
            )
            print(
                f"{name:6s} seed {s}: tau {m['kendall_tau']:.4f}  spearman {m['spearman']:.4f}  mse {m['mse']:.3f}"
                f"  top1 {100 * m['top1_true']:.2f}%  {t2 - t0:.1f} s (train {t1 - t0:.1f})",
                flush=True,
            )

    summary = {n: mean_std([r for r in runs if r["model"] == n]) for n in args.models}
    text = table(summary, {n: len(args.seeds) for n in args.models})
    info = {**machine(device), "threads": args.threads, "load_avg_start": load_start, "load_avg_end": os.getloadavg()}
    keys = ("data", "split", "eval_split", "target", "label_epochs", "seeds", "train_seed")
    protocol = {k: getattr(args, k) for k in keys}
    protocol |= {
        "fingerprint": data.fingerprint,
        "n_cells": len(data),
        "model_args": model_args,
        "overrides": overrides,
    }
    result = {
        "protocol": protocol,
        "machine": info,
        "summary": summary,
        "runs": runs,
        "anchors": {
            k: {"kendall_tau": {"mean": v["kendall_tau"][0], "std": v["kendall_tau"][1]}} for k, v in ANCHORS.items()
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), result)
    load = f"{info['load_avg_start'][0]:.1f} at start, {info['load_avg_end'][0]:.1f} at end"
    train_seed = "= split seed" if args.train_seed is None else args.train_seed
    lines = [
        f"# Predictor benchmark\n\n{text}\n",
        f"Protocol: train on split {args.split} (split seeds {args.seeds}, training seed {train_seed}), "
        f"evaluate on {len(eval_idx)} cells of {Path(args.data).name} ({data.fingerprint}), target {args.target} "
        f"at {args.label_epochs} epochs; each model's DEFAULTS (model.py) except {overrides or 'nothing'}, model args "
        f"{model_args or 'default'}. Mean ± std (ddof=0) over the split seeds.",
        f"Machine: {info['cpu']}, {info['cores']} cores, {args.threads} thread(s), {info['device']}, torch "
        f"{info['torch']}; 1-minute load average {load} (a shared machine: timings are noisy).\n",
    ]
    md = "\n".join(lines)
    write_atomic(out.with_suffix(".md"), lambda f: f.write(md))
    print("\n" + text + f"\n\nwrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    exit_on_user_error("bench/predictors.py", main)
