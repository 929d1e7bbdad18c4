"""Train a performance predictor on a few labelled NB101 cells and measure how it ranks the others.

    python train.py --split 172                            # default pgin predictor, 172 cells, eval on all
    python train.py --model gcn --split 172                # Neural Predictor's GCN (anchor)
    python train.py --model mlp --split 334 --split-seed 3 --target val:mean
    python train.py --data data/demo.hdf5 --epochs 50 --quiet

--split picks the training cells (172 334 860 91-172 91-334 91-860 denoise-91 denoise-80 all; --split-seed
0 gives the published draws), --eval-split the cells the metrics are measured on. --target is
METRIC[:REPEAT], val or test accuracy of one repeat (0, 1, 2) or the mean over repeats; "val" means
"val:0". Training hyper-parameters default to the model's DEFAULTS (model.py). Checked before any
training: every flag's range, the device, that the run folder and runs/ can be written, and that the
splits fit the file (training cells that cover every evaluation cell are refused; more than half, warned).

Writes checkpoint.pt (the predictor, and its predictions of every cell for search.py), metrics.json
(Kendall tau, Spearman, MSE, precision@k, the true accuracy of the top picks) and scatter.png into the run
folder (default runs/<model>-<split>-s<seed>-<time>) and points runs/latest at it. The folder is built
beside its place and renamed when complete: a failed run leaves none, and runs/latest as it was. No
leaks: labels are normalised with training statistics, nothing is selected on evaluation labels, the
saved model is the last epoch's. On demo data the outputs say SYNTHETIC. Their keys: docs/outputs.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from dataset import DEFAULT_DATA, SPLITS, TARGETS, load_nb101, parse_target
from lib.nb101.schema import EPOCHS
from lib.predictors.fitting import TrainError
from lib.predictors.inference import PRECISIONS, inference_plan, predict_cells, space_predictions, stored_predictions
from lib.predictors.metrics import prediction_metrics
from lib.util.checks import SEED, at_least, number, output_folder
from lib.util.devices import available_device, free_cores
from lib.util.errors import ArgumentParser, exit_on_user_error
from lib.util.outputs import atomic_dir, write_atomic, write_json
from model import LOSSES, MODELS, hyperparams, save_checkpoint, train_model

RUNS = Path("runs")


# ----------------------------------------------------------------------------- config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary, examples, *_ = __doc__.split("\n\n")
    p = ArgumentParser(
        description=f"{summary}\n\n{examples}",
        epilog="More in this script's docstring and docs/pipeline.md; the outputs' keys: docs/outputs.md.",
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=30),
    )
    a = p.add_argument
    a("--data", default=str(DEFAULT_DATA), metavar="FILE", help="NB101 HDF5 (tools/nasbench_tfrecord_converter.py)")
    a("--model", default="pgin", choices=list(MODELS), metavar="NAME", help=f"{', '.join(MODELS)} (model.py)")
    a("--split", default="172", choices=SPLITS, metavar="NAME", help=f"the training cells: {' '.join(SPLITS)}")
    a("--split-seed", type=SEED, default=0, metavar="S", help="0 gives the published splits")
    a("--eval-split", default="all", choices=SPLITS, metavar="NAME", help="the cells evaluated on (same seed)")
    a("--target", default="val", choices=TARGETS, metavar="T", help="METRIC[:REPEAT], e.g. val:mean")
    a("--label-epochs", type=int, default=108, choices=EPOCHS, metavar="E", help="the label's NB101 epochs")
    a("--seed", type=SEED, default=0, help="model init, batch order and dropout")
    a("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    a("--threads", type=at_least(1), metavar="N", help="CPU threads (default: the free cores)")
    a("--eval-batch-size", type=at_least(1), metavar="N", help="cells per inference batch")
    a("--precision", default="auto", choices=PRECISIONS, help="of predictions; auto: bf16 on bf16 CPUs")
    a("--predict-space", action="store_true", help="store predictions of all 423,624 cells")
    a("--out", metavar="DIR", help="run folder (default: a new folder under runs/)")
    a("--quiet", action="store_true", help="no progress bar and no summary")
    hp = p.add_argument_group("training (default: the model's DEFAULTS in model.py)").add_argument
    hp("--epochs", type=at_least(1), metavar="N")
    hp("--batch-size", type=at_least(1), metavar="N")
    hp("--lr", type=number(above=0))
    hp("--wd", type=number(low=0), help="Adam weight decay")
    hp("--loss", choices=list(LOSSES))
    args = p.parse_args(argv)
    args.threads = free_cores() if args.threads is None else args.threads
    return args


def draw_size(split: str) -> int | None:
    """How many cells a split draws at random (172, 334, 860; "91-K" filters draw K), None for the others."""
    return int(split.rsplit("-", 1)[-1]) if split[0].isdigit() else None


def evaluated_training_cells(
    args: argparse.Namespace, n_cells: int, train_idx: np.ndarray, eval_idx: np.ndarray
) -> int:
    """How many evaluation cells are training cells. TrainError when a split draws more cells than the
    file holds (it would take them all) or when the training cells cover every evaluation cell (the
    metrics would measure the fit, not the prediction); a warning when they cover more than half."""
    for flag, name in (("--split", args.split), ("--eval-split", args.eval_split)):
        k = draw_size(name)
        if k is not None and k > n_cells:
            raise TrainError(
                f"{flag} {name} draws {k} cells, more than the {n_cells} of {args.data} (choose a smaller split)"
            )
    shared = len(np.intersect1d(train_idx, eval_idx))
    if shared == len(eval_idx):
        raise TrainError(
            f"--split {args.split} covers every cell of --eval-split {args.eval_split} ({shared} of {n_cells} in "
            f"{args.data}): the metrics would measure the fit, not the prediction (choose a smaller --split or "
            "another --eval-split)"
        )
    if shared > len(eval_idx) / 2:
        print(
            f"train.py: warning: {shared} of the {len(eval_idx)} evaluation cells are training cells (--split "
            f"{args.split}): the metrics measure the fit more than the prediction",
            file=sys.stderr,
        )
    return shared


# ----------------------------------------------------------------------------- outputs


def save_scatter(path: Path, pred: np.ndarray, true: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    lo = 100 * min(pred.min(), true.min())
    for ax, low in zip(axes, (lo, 90.0)):
        ax.plot(100 * true, 100 * pred, ",", alpha=0.5, rasterized=True)  # pixel markers: fast at 423k points
        ax.plot([low, 100], [low, 100], "k--", lw=0.8)
        ax.set(
            xlim=(low, 95 if low >= 90 else None),
            ylim=(low, 95 if low >= 90 else None),
            xlabel="true accuracy (%)",
            ylabel="predicted accuracy (%)",
        )
        ax.grid(linestyle="--", alpha=0.5)
    axes[0].set_title("full range")
    axes[1].set_title("zoom >= 90%")
    fig.suptitle(title)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
    plt.close(fig)


def run_dir(args: argparse.Namespace) -> Path:
    """Where the run will go (made at the end, whole); an existing --out must be a run's to be replaced."""
    output_folder(RUNS, None, "train.py keeps runs/latest there, whatever --out says")
    if (RUNS / "latest").exists() and not (RUNS / "latest").is_symlink():
        raise TrainError(f"{RUNS / 'latest'} is not the link train.py keeps to the last run (move it away)")
    if args.out:
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir()) and not (out / "metrics.json").is_file()):
            raise TrainError(f"--out {out} exists and is not a train.py run folder; choose another")
        return output_folder(out, "--out")
    base = RUNS / f"{args.model}-{args.split}-s{args.split_seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


def point_latest(run: Path) -> Path:
    """runs/latest -> run (relative symlink), swapped in with os.replace so readers never miss it."""
    RUNS.mkdir(exist_ok=True)
    tmp = RUNS / f".latest.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(run.resolve(), RUNS.resolve()))
    os.replace(tmp, RUNS / "latest")
    return RUNS / "latest"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate and save one run (see the module docstring); returns metrics.json's content."""
    t0 = time.perf_counter()
    out = run_dir(args)
    metric, repeat = parse_target(args.target)
    hp = hyperparams(args.model, vars(args))
    device = available_device(args.device)

    # -- data: labels for the target, training and evaluation cells
    data = load_nb101(args.data)
    y = data.labels(metric, epochs=args.label_epochs, repeat=repeat)
    if not np.isfinite(y).any():
        at = f"{args.label_epochs} epochs"
        raise TrainError(f"{args.data} has no {args.target} accuracy at {at}; try another --target")
    train_idx = data.split(args.split, args.split_seed)
    train_idx = train_idx[np.isfinite(y[train_idx])]
    eval_idx = data.split(args.eval_split, args.split_seed)
    eval_idx = eval_idx[np.isfinite(y[eval_idx])]
    for flag, name, idx in (("--split", args.split, train_idx), ("--eval-split", args.eval_split, eval_idx)):
        if len(idx) == 0:
            raise TrainError(
                f"{flag} {name} (seed {args.split_seed}) of {args.data}: no cell with a {args.target} label"
            )
    trained_on = evaluated_training_cells(args, len(data), train_idx, eval_idx)
    t_load = time.perf_counter()

    # -- model and training loop
    x_train = data.features(train_idx)
    model, history = train_model(
        args.model, x_train, y[train_idx], hp, seed=args.seed, device=device, threads=args.threads, quiet=args.quiet
    )
    t_train = time.perf_counter()

    # -- evaluation: once, on the final model's predictions; with --eval-split all of every row, stored
    # in the checkpoint with those of the whole space (when they come free or are asked for) for search.py
    plan = inference_plan(model, args.eval_batch_size, args.threads, args.precision)
    rows = np.arange(len(data)) if args.eval_split == "all" else eval_idx
    cells = {k: getattr(data, k)[rows] for k in ("adjacency", "operations", "num_vertices")}
    pred_rows = predict_cells(model, cells, plan["batch_size"], plan["threads"], plan["precision"])
    pred = pred_rows[eval_idx] if args.eval_split == "all" else pred_rows
    predictions = {}
    if args.eval_split == "all":
        predictions["data"] = stored_predictions(pred_rows, data.fingerprint, plan["precision"])
    space = space_predictions(model, cells, pred_rows, plan, rest=args.predict_space)
    if space is not None:
        predictions["space"] = space
    t_pred = time.perf_counter()
    m = prediction_metrics(pred, y[eval_idx])
    t_metrics = time.perf_counter()

    # -- save, into a folder that becomes `out` once complete (runs/latest moves only then)
    split = {"name": args.split, "seed": args.split_seed, "eval": args.eval_split}
    target = {"metric": metric, "repeat": repeat, "epochs": args.label_epochs}
    source = {"path": str(Path(args.data).resolve()), "fingerprint": data.fingerprint}
    with atomic_dir(out, replace=bool(args.out)) as tmp:
        info = dict(split=split, target=target, data=source, hp=hp, seed=args.seed, predictions=predictions)
        save_checkpoint(tmp / "checkpoint.pt", model, **info)
        title = f"{args.model}, split {args.split} seed {args.split_seed} ({len(train_idx)} cells)"
        title = f"SYNTHETIC labels (demo data) - {title}" if data.synthetic else title
        save_scatter(tmp / "scatter.png", pred, y[eval_idx], f"{title}: Kendall tau {m['kendall_tau']:.3f}")
        m.update(
            true_label=f"{metric}:{repeat} at {args.label_epochs} epochs",  # what top1_true, best_true, ... are
            synthetic_labels=data.synthetic,
            n_train=len(train_idx),
            n_eval_trained_on=trained_on,
            top1_hash=str(data.hash[eval_idx[int(np.argmax(pred))]]),
            final_train_loss=history[-1],
            seconds=time.perf_counter() - t0,
            timing=dict(load=t_load - t0, train=t_train - t_load, predict=t_pred - t_train, metrics=t_metrics - t_pred),
            config={
                **vars(args),
                **hp,
                "model_args": model.args,
                "device": str(device),
                "inference": plan,
                "stored_predictions": sorted(predictions),
                "split": split,
                "target": target,
                "data": source,
                "run": str(out),
            },
        )
        write_json(tmp / "metrics.json", m)
    latest = point_latest(out)
    if not args.quiet:
        print(summary(m, out, latest))
    return m


def summary(m: dict, out: Path, latest: Path) -> str:
    c, t, p = m["config"], m["timing"], m["precision_at_k"]
    hp = f"{c['epochs']} epochs, batch {c['batch_size']}, lr {c['lr']:g}, wd {c['wd']:g}, loss {c['loss']}"
    target = f"{c['target']['metric']}:{c['target']['repeat']} at {c['target']['epochs']} epochs"
    target += ", SYNTHETIC labels (demo data, not NB101's measurements)" if m["synthetic_labels"] else ""
    lines = [
        f"model    {c['model']} {c['model_args']} | {hp}",
        f"data     {c['data']['path']} (fingerprint {c['data']['fingerprint']})",
        f"train    split {c['split']['name']} seed {c['split']['seed']}: {m['n_train']} cells, "
        f"final loss {m['final_train_loss']:.4f}",
        f"eval     split {c['split']['eval']}: {m['n_eval']} cells ({m['n_eval_trained_on']} of them training "
        f"cells), target {target}",
        f"kendall tau {m['kendall_tau']:.4f} | spearman {m['spearman']:.4f} | mse {m['mse']:.3f} pp^2",
        f"precision@10 {p['10']:.2f} | precision@100 {p['100']:.2f}",
        f"true {m['true_label']} (the target): predicted top-1 {100 * m['top1_true']:.2f}% | top-10 mean "
        f"{100 * m['top10_true_mean']:.2f}% | best of the eval cells {100 * m['best_true']:.2f}%",
        f"time     {m['seconds']:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in t.items()) + ")",
        f"saved    {out}/ (checkpoint.pt metrics.json scatter.png); {latest} -> {os.readlink(latest)}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    exit_on_user_error("train.py", main)
