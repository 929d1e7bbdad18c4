"""Rank NB101 cells with a trained predictor, report the pick against the benchmark's truth, export it.

    python search.py                                     # runs/latest predictor over its training data, top 10
    python search.py --space all --top-k 20              # every one of the 423,624 NB101 cells, no labels needed
    python search.py --checkpoint runs/gcn-172-s0-X/checkpoint.pt --data data/real20k.hdf5 --out runs/pick
    python search.py --train -- --data-root data/cifar10-jpeg --epochs 4    # then trainer.py on the pick
    python search.py --budget 150 --data data/real20k.hdf5 --strategy re,ls,npenas,random --seeds 20
    python search.py --budget 100 --data-root data/my-images --engine ray --train    # real training, no table

Ranking mode: scores every cell (of --data, or of the enumerated space with --space all) in large
batches, ranks them, prints the top-k with the truth where the data file knows it (true mean val /
test accuracy over the repeats at 108 epochs, the cell's true rank) and a summary (best true
accuracy in the file, regret of the top-1, how much of the true top-1% the top-k holds; all on
val:mean, which the summary names as true_label, whatever label the predictor was trained on).
Without --data it reads the file the checkpoint was trained on (train.py --data), else
data/nasbench.hdf5. The output folder is checked before anything is scored. With --space all the
truth is joined by cell (nb101_join.space_rows) and NB101's md5 hash is computed for the cells shown
only. The scores come from the checkpoint when train.py stored predictions of exactly these cells
(same data fingerprint, or all of NB101 in enumeration order; --recompute ignores them); otherwise
they are computed on --threads CPU threads (default: the free cores) at --precision (auto: bf16
where the CPU has bf16 hardware). Then it builds the top-1 as the stacked nasbench_pytorch network
(stem 128, 3x3 cells, 10 classes) and checks its parameter count against the closed form. Writes,
atomically, into --out (default: the checkpoint's run folder, so `runs/latest/top1.json` is the
newest pick; a new search over the same checkpoint replaces them):
  search.json  checkpoint, model, data, fingerprint_match, space, n_scored, scoring (reused, why; if
               computed: device, threads, precision, batch_size), top_k, seconds,
               ranked (rank, hash, adjacency, ops, num_vertices, num_edges, trainable_parameters,
               predicted, true_val, true_test, true_rank, trained_on), summary (lib.predictors.metrics.pick_summary),
               synthetic_labels, top1 (= top1.json)
  top1.json    adjacency, ops, hash (+ predicted, true_val, synthetic_labels): for nb101_cell.Cell.from_json
               and `python trainer.py --arch top1.json`; --train runs exactly that (with --data, so the run
               records NB101's numbers for the cell), plus anything after `--`.
The old top1.json goes first and the new one is written last, so a top1.json beside a search.json is
always its top1, even after a failure in between. On demo data (synthetic labels) the outputs, the
printed summary and the curves say SYNTHETIC: those "true" accuracies are made up.

Budget mode (--budget Q or --budget-time S): search strategies compared on --data's recorded
accuracies, each query answered by the file and costing the cell's recorded training time (the
108-epoch time x epochs / 108 where the file lacks a budget's, said in the output). --strategy takes a
comma-separated list of random, re, ls, bananas, npenas, guided, sh, hyperband (lib/search/strategies.py,
docs/search.md); the predictor strategies fit --model on every label after each batch of --per-round
cells (guided: 5 after its first), each fit after the first continuing from the last (model.WARM_EPOCHS).
With --jobs above 1 the searches run side by side, each in a worker process of one thread
(lib/search/table.run_searches). Over --seeds seeds each, it writes into --out (default runs/budget-<time>):
  budget.json        config; pool {cells, best {hash, val, test}, neighbourhood, random_repeat,
                     seconds_estimated}; per strategy: final_val_mean / _std, final_test_mean,
                     regret_mean, found_best_in_pool (seeds), queries_to_best_median, seconds_mean
                     (simulated), compute_seconds_mean (the search's own wall time),
                     curve_val_mean / _std (entry q-1: after q queries), curve_time {seconds, val_mean,
                     val_std}, runs [{seed, best_hash, best_val, best_test, queries_to_best, seconds,
                     queried (hashes, in order), epochs}]
  curves_queries.png, curves_time.png   the incumbent's true val accuracy against queries and against
                     simulated hours, mean line with a +-std band per strategy
The incumbent is the cell with the best label at the highest budget queried so far; what is reported
is its truth: the mean 108-epoch val / test accuracy over the usable repeats (dataset.NB101.labels),
null where the file has none (the real 20k file has no test). With --random-repeat each query reads
one recorded repeat at random, as NB101's API does: on a file with 3 repeats, the published protocol.

Real-training mode (--budget TRIALS --data-root DIR, no NB101 file): the same strategies search the
whole NB101 space, each query a real training of the cell by trainer.py in a process of its own
(lib/search/trials.py): --trial-epochs for a 108-epoch ask (the others in proportion), a reduced network
(--trial-stem-channels, --trial-stacks, --trial-cells-per-stack), optional fixed image subsets, and
--trial-args for any other trainer flag. The data is any image-folder tree (train/<class>/*, test/
optional, at least 2 classes, one image size) or CIFAR-10; it is read once before any trial, and
validation is a fixed fifth of each class of train/ (search_config.json records how). A query returns
the trial's last validation accuracy. --engine local trains one trial at a time (--threads CPU
threads); --engine ray runs --concurrent trials side by side on Ray Tune (lib/search/ray_search.py; a local
Ray unless --address names a cluster; --scheduler asha stops poor trials early; --max-failures
retries of a crashed trial). A failed trial (NaN loss, out of memory, a crash) is recorded with its
one-line error and the search goes on; the first 3 failing alike stop it (the trial setup is wrong).
--resume DIR continues a killed search with its saved flags (a larger --budget and engine flags may
be given): the journal is replayed into the strategy, a trial cut short continues from its checkpoint
and none is trained twice. --prior CHECKPOINT starts the predictor from a train.py checkpoint of the
same --model. Writes into --out (default runs/search-<time>):
  trials/<strategy>-s<seed>/<index>-<hash8>/   each trial's trainer run (metrics.json, curves.png, ckpt.pt)
  trials.jsonl       each finished trial: strategy, seed, index, hash, cell, status (done, stopped,
                     failed), val, test, epochs, seconds, error, run_dir
  search_config.json the flags and the data; budget.json, curves_*.png as budget mode (the "pool" is the
                     cells trained, their "truth" the accuracy measured, the cost each trial's seconds)
  top1.json          the best cell; --train then trains it with trainer.py at its defaults (108 epochs,
                     the full network) on --data-root into <out>/top1, plus any flags after `--`.
One line per finished trial (cell, accuracy, seconds, best so far) and a bar over the budget.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dataset import DEFAULT_DATA, NB101, TARGETS, load_nb101
from lib.nb101.cell import Cell, cell_from_row
from lib.nb101.join import space_rows
from lib.nb101.network import build_network, count_parameters, trainable_parameters
from lib.nb101.space import enumerate_space, space_fingerprint, space_hashes
from lib.predictors.inference import PRECISIONS, inference_plan, predict_cells, reusable_predictions
from lib.predictors.metrics import pick_summary, top_k, true_ranks
from lib.search.ray_search import check_reachable, search_on_ray
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES, Pool
from lib.search.table import budget_table, compare, default_jobs, plot_search_curves
from lib.search.trial_search import TrialSearch, best_record, search_locally, trials_summary
from lib.training.images import ImageDataError, load_images
from lib.util.checks import at_least, number, output_folder
from lib.util.devices import available_device, free_cores
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error, first_line
from lib.util.outputs import json_number, pct, write_json
from model import MODELS, Scorer, SearchTrainer, build_model, hyperparams, load_checkpoint

ROOT = Path(__file__).resolve().parent
LATEST = Path("runs/latest/checkpoint.pt")
SHORT = {"conv3x3-bn-relu": "3x3", "conv1x1-bn-relu": "1x1", "maxpool3x3": "mp"}
TRUTH = "val:mean at 108 epochs"  # the label of every "true" accuracy ranking mode shows (the mean over repeats)
DEFAULT_STRATEGY = "guided"  # the lowest regret at every budget measured (bench/README.md)
ENGINES = ("local", "ray")
ON_RESUME = ("budget", "train", "engine", "address", "concurrent", "max_failures", "device", "threads")  # may change


class SearchError(UserError):
    """A search that cannot go on for a reason the user can fix."""


# ----------------------------------------------------------------------------- config


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and whatever follows `--` (handed to trainer.py by --train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    intro, usage = __doc__.split("\n\n", 1)
    p = ArgumentParser(description=intro, epilog=usage, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(LATEST), help="predictor from train.py (default runs/latest)")
    p.add_argument(
        "--data", help=f"NB101 HDF5 (default: the checkpoint's, else {DEFAULT_DATA}; optional with --space all)"
    )
    p.add_argument("--space", default="data", choices=["data", "all"], help="cells of --data, or all 423,624")
    p.add_argument("--top-k", type=at_least(1), default=10, help="cells in the table and in search.json")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder; budget mode runs/budget-<time>)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    p.add_argument(
        "--eval-batch-size",
        type=at_least(1),
        help="cells per inference batch (default: lib.predictors.inference.predict's)",
    )
    p.add_argument(
        "--threads", type=at_least(1), help="CPU threads scoring cells (default: the cores the load leaves free)"
    )
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 on CPUs with bf16 hardware")
    p.add_argument("--recompute", action="store_true", help="score the cells even if the checkpoint stores predictions")
    p.add_argument("--train", action="store_true", help="then run `trainer.py --arch <out>/top1.json [-- ARGS]`")
    b = p.add_argument_group("budget mode: search strategies compared on the file's recorded accuracies")
    b.add_argument("--budget", type=at_least(1), help="queries to spend; turns budget mode on (no checkpoint needed)")
    b.add_argument("--budget-time", type=number(above=0), help="simulated training seconds to spend (budget mode)")
    b.add_argument("--strategy", default=DEFAULT_STRATEGY, help=f"comma-separated, from {','.join(STRATEGIES)}")
    b.add_argument("--seeds", type=at_least(1), help="seeds 0..N-1 of every strategy (default 10; 1 with --data-root)")
    b.add_argument("--n0", type=at_least(1), default=10, help="random cells before the first predictor")
    b.add_argument(
        "--per-round",
        type=at_least(1),
        default=10,
        help="cells queried after each predictor fit (guided: after its first; then 5)",
    )
    b.add_argument(
        "--jobs",
        type=at_least(1),
        help="searches side by side, one process and thread each (default: the cores with a predictor "
        "strategy on a CPU, else 1)",
    )
    b.add_argument("--model", default="pgin", choices=list(MODELS), help="the predictor of bananas, npenas, guided")
    b.add_argument("--target", default="val", choices=TARGETS, help="the label a query returns (train.py --target)")
    b.add_argument("--random-repeat", action="store_true", help="each query reads a random repeat, as NB101's API")
    b.add_argument("--epochs", type=at_least(1), help="override the model's DEFAULTS (model.py) in the loop")
    b.add_argument("--batch-size-train", dest="batch_size_train", type=at_least(1), help="override the training batch")
    b.add_argument("--lr", type=number(above=0), help="override the learning rate")
    b.add_argument("--wd", type=number(low=0), help="override the weight decay")
    r = p.add_argument_group("search with real training: --budget TRIALS --data-root DIR (no NB101 file)")
    r.add_argument("--data-root", help="image folders train/<class>/* (+ test/), or CIFAR-10: each query trains")
    r.add_argument("--engine", default="local", choices=ENGINES, help="local: one trial at a time; ray: Ray Tune")
    r.add_argument("--address", help="a running Ray cluster (default: start a local one for the search)")
    r.add_argument("--concurrent", type=at_least(1), help="trials side by side on Ray (default: GPUs, else cores)")
    r.add_argument("--scheduler", default="none", choices=("none", "asha"), help="asha: stop poor trials early")
    r.add_argument("--max-failures", type=at_least(0), default=2, help="retries of a crashed trial on Ray")
    r.add_argument(
        "--resume",
        help="a search's --out folder: continue it with its flags (a larger --budget, engine flags may change)",
    )
    r.add_argument("--prior", help="a train.py checkpoint of --model: the predictor's first fit starts from it")
    r.add_argument("--trial-epochs", type=at_least(1), default=4, help="epochs of a full trial (108-epoch asks)")
    r.add_argument("--trial-stem-channels", type=at_least(1), default=16)
    r.add_argument("--trial-stacks", type=at_least(1), default=3)
    r.add_argument("--trial-cells-per-stack", type=at_least(1), default=1)
    r.add_argument("--trial-train-images", type=at_least(0), default=0, help="a fixed subset (0: all)")
    r.add_argument("--trial-eval-images", type=at_least(0), default=0, help="fixed validation subsets (0: all)")
    r.add_argument("--trial-args", default="", help="more trainer.py flags for every trial, e.g. '--batch-size 128'")
    args = p.parse_args(argv)
    if args.resume:
        args = resumed_args(p, args)
    args.threads = free_cores() if args.threads is None else args.threads
    args.seeds = args.seeds or (1 if args.data_root else 10)
    args.budget_mode = args.budget is not None or args.budget_time is not None
    args.strategy = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in args.strategy if s not in STRATEGIES]
    if unknown or not args.strategy:
        p.error(f"--strategy {','.join(unknown) or '(none)'}: choose from {','.join(STRATEGIES)}")
    if args.data_root and args.budget is None:
        p.error("--data-root searches with real training: give --budget TRIALS")
    ray_only = [f for f, v in (("--address", args.address), ("--concurrent", args.concurrent)) if v is not None]
    ray_only += ["--scheduler asha"] if args.scheduler != "none" else []
    if ray_only and args.engine != "ray":
        p.error(f"{', '.join(ray_only)}: for --engine ray (trials side by side on Ray Tune)")
    if args.data_root and args.jobs is not None:
        p.error(
            "--jobs runs searches of a table side by side; with --data-root trials run side by side on --engine ray"
        )
    if args.data_root and args.budget_time is not None:
        p.error("--budget-time counts a table's simulated seconds; with --data-root give --budget TRIALS")
    if args.train and args.budget_mode and not args.data_root:
        p.error("--train hands the pick of a ranking to trainer.py; budget mode has none")
    if extra and not args.train:
        p.error(f"arguments after `--` ({' '.join(extra)}) are for trainer.py and need --train")
    return args, extra


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    if args.data_root:
        return run_trials(args, extra)
    return run_budget(args) if args.budget_mode else run_search(args, extra)


# ----------------------------------------------------------------------------- ranking mode


def run_search(args: argparse.Namespace, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    device = available_device(args.device)
    model, info = load_predictor(args.checkpoint, device)
    out = Path(args.out or Path(args.checkpoint).parent)  # checked before the work, written after it
    output_folder(out, "--out" if args.out else None, "choose another" if args.out else "give --out")
    cells, data, rows = load_cells(args, info)
    fp_match, train_rows = training_rows(args.checkpoint, info, data)
    t_load = time.perf_counter()

    if len(cells["num_vertices"]) == 0:
        raise SearchError(f"--data {data.path}: no cells to rank")
    pred, scoring = score_cells(args, model, info, cells, data)
    t_score = time.perf_counter()
    pick = top_k(pred, min(args.top_k, len(pred)))
    t_rank = time.perf_counter()

    truth = None
    if data is not None:  # the benchmark's mean 108-epoch accuracies, NaN where the file has none
        val = data.labels("val", 108, "mean")
        truth = {"val": val, "test": data.labels("test", 108, "mean"), "rank": true_ranks(val)}
    ranked = ranked_list(pick, cells, pred, rows, truth, train_rows, pick_hashes(cells, pick, rows, data))
    summary = pick_summary(rows[pick], truth["val"], data.hash) if truth else {"labelled": False}
    summary = {"true_label": TRUTH, **summary} if truth else summary
    how = "reused" if scoring["reused"] else f"scored ({scoring['precision']}, {scoring['threads']} thread(s))"
    print(
        f"{model.name} predictor {args.checkpoint} | {how} {len(pred):,} cells "
        f"({'all of NB101' if args.space == 'all' else data.path}) in {t_score - t_load:.2f} s, ranked in "
        f"{t_rank - t_score:.3f} s"
    )
    print_table(ranked, summary)
    synthetic = data is not None and data.synthetic
    if synthetic:
        print(f"SYNTHETIC labels: {data.path} is demo data; its true accuracies above are made up, not NB101's")
    seen = sum(c["trained_on"] for c in ranked)
    if seen:
        print(f"note: {seen} of the top-{len(ranked)} were training cells of the predictor: it saw their labels")

    top1 = {k: ranked[0][k] for k in ("adjacency", "ops", "hash", "predicted", "true_val")}
    top1["synthetic_labels"] = synthetic
    n_net = check_network(top1)

    out.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": str(args.checkpoint),
        "model": model.name,
        "data": str(data.path) if data is not None else None,
        "fingerprint_match": fp_match,
        "space": args.space,
        "n_scored": len(pred),
        "scoring": scoring,
        "top_k": len(ranked),
        "seconds": {"load": t_load - t0, "score": t_score - t_load, "rank": t_rank - t_score},
        "ranked": ranked,
        "summary": {**summary, "top1_network_parameters": n_net},
        "synthetic_labels": synthetic,
        "top1": top1,
    }
    (out / "top1.json").unlink(missing_ok=True)  # never an old top1.json beside a new search.json
    write_json(out / "search.json", result)
    write_json(out / "top1.json", top1)
    print(f"saved {out}/search.json and {out}/top1.json")
    if args.train:
        hand_off(out / "top1.json", data, extra)
    return result


def load_predictor(checkpoint: str, device: torch.device, flag: str = "--checkpoint") -> tuple[torch.nn.Module, dict]:
    """model.load_checkpoint, with one-line errors that say what the file is not."""
    if Path(checkpoint).is_dir():
        raise SearchError(f"{flag} {checkpoint}: is a folder (give the checkpoint.pt in it)")
    try:
        return load_checkpoint(checkpoint, device)
    except FileNotFoundError as e:
        raise SearchError(f"{flag} {e}") from None
    except pickle.UnpicklingError:  # torch's safe loader refuses other pickled objects (trainer.py's ckpt.pt)
        why = "it holds objects that torch's safe loader refuses, e.g. trainer.py's ckpt.pt"
        raise SearchError(f"{flag} {checkpoint}: not a train.py checkpoint ({why})") from None
    except Exception as e:  # corrupt or foreign file: torch / pickle raise many kinds
        why = first_line(e)
        raise SearchError(f"{flag} {checkpoint}: not a train.py checkpoint, cannot load it ({why})") from None


def training_rows(checkpoint: str, info: dict, data: NB101 | None) -> tuple[bool | None, set]:
    """Whether the predictor was trained on this data file (None without one), and then the rows of
    its training cells, whose labels it saw; a mismatch is warned about and marks no cell."""
    if data is None:
        return None, set()
    trained = info.get("data", {})
    if trained.get("fingerprint") != data.fingerprint:
        print(
            f"search.py: warning: {checkpoint} was trained on {trained.get('path')} (fingerprint "
            f"{trained.get('fingerprint')}), not on {data.path} ({data.fingerprint}); ranking anyway",
            file=sys.stderr,
        )
        return False, set()
    split = info.get("split")
    return True, set(data.split(split["name"], split["seed"]).tolist()) if split else set()


def hand_off(top1: Path, data: NB101 | None, extra: list[str]) -> None:
    """Run trainer.py on the pick (with --data, so its run records NB101's numbers for the cell)."""
    cmd = [sys.executable, str(ROOT / "trainer.py"), "--arch", str(top1)]
    cmd += ["--data", str(data.path)] if data is not None else []
    print("running", " ".join(cmd + extra))
    rc = subprocess.call(cmd + extra)
    if rc < 0:
        raise SearchError(f"trainer.py was killed by signal {-rc} ({signal.Signals(-rc).name})")
    if rc:
        raise SearchError(f"trainer.py exited with status {rc} (its error is above)")


def score_cells(args, model, info: dict, cells: dict, data: NB101 | None) -> tuple[np.ndarray, dict]:
    """The checkpoint's stored predictions of these cells when they fit (lib.predictors.inference.reusable_predictions),
    else predict_cells; and how they came, for search.json ("scoring"). Says which, and why, on stdout."""
    kind, cells_fp = ("space", space_fingerprint(cells)) if args.space == "all" else ("data", data.fingerprint)
    pred, why = reusable_predictions(info, kind, cells_fp, args.precision)
    if pred is not None and not args.recompute:
        print(f"predictions: reused ({why})")
        return pred, {"reused": True, "why": why}
    why = "--recompute" if pred is not None else why
    plan = inference_plan(model, args.eval_batch_size, args.threads, args.precision)
    print(f"predictions: computing them ({why})")
    pred = predict_cells(model, cells, plan["batch_size"], plan["threads"], plan["precision"])
    return pred, {"reused": False, "why": why, **plan}


def pick_hashes(cells: dict, pick: np.ndarray, rows: np.ndarray, data: NB101 | None) -> np.ndarray:
    """NB101 hashes of the picked cells (computed here for enumerated cells, which carry none), each
    checked against the data file's hash of the row the cell was joined to."""
    hashes = space_hashes(cells, pick)
    joined = rows[pick]
    bad = np.flatnonzero((joined >= 0) & (data.hash[joined.clip(0)] != hashes)) if data is not None else []
    if len(bad):
        i = bad[0]
        raise SearchError(
            f"--data {data.path}: row {joined[i]} claims hash {data.hash[joined[i]]}, but its cell's NB101 hash is "
            f"{hashes[i]}; convert the file again"
        )
    return hashes


def load_cells(
    args: argparse.Namespace, info: dict | None = None
) -> tuple[dict[str, np.ndarray], NB101 | None, np.ndarray]:
    """The cells to score (adjacency, operations, num_vertices; hash for --space data), the data file
    if any, and each cell's row in it (-1 where the file lacks the cell)."""
    path = data_path(args, info)
    data = None
    if args.space == "data" or args.data or path.exists():  # --space all: labels only when there is a file
        data = load_nb101(path)
    if args.space == "data":
        cells = {k: getattr(data, k) for k in ("adjacency", "operations", "num_vertices", "hash")}
        return cells, data, np.arange(len(data))
    cells = enumerate_space(hashes=False)  # hashes: only of the cells shown (pick_hashes)
    return cells, data, data_rows(cells, data)


def data_path(args: argparse.Namespace, info: dict | None) -> Path:
    """--data; without it the file the checkpoint was trained on (train.py --data), else DEFAULT_DATA."""
    if args.data:
        return Path(args.data)
    trained = (info or {}).get("data", {}).get("path")
    return Path(trained) if trained and Path(trained).is_file() else DEFAULT_DATA


def data_rows(space: dict[str, np.ndarray], data: NB101 | None) -> np.ndarray:
    """Row in `data` of each cell of the space, -1 where absent: joined by cell (nb101_join.space_rows),
    not by md5 hash, which would cost ~50 s for the space."""
    rows = np.full(len(space["num_vertices"]), -1)
    if data is not None:
        at = space_rows(space, data.adjacency, data.operations, data.num_vertices)
        rows[at[at >= 0]] = np.flatnonzero(at >= 0)
    return rows


def ranked_list(pick, cells, pred, rows, truth: dict | None, train_rows: set, hashes: np.ndarray) -> list[dict]:
    """One record per picked cell (see the module docstring for the keys)."""
    adj, ops, nv = cells["adjacency"][pick], cells["operations"][pick], cells["num_vertices"][pick]
    params = trainable_parameters(adj, ops, nv)
    out = []
    for r, i in enumerate(pick):
        cell = cell_from_row(adj[r], ops[r], nv[r])
        row = int(rows[i])
        known = truth is not None and row >= 0
        out.append(
            {
                "rank": r + 1,
                "hash": str(hashes[r]),
                "adjacency": cell.matrix.tolist(),
                "ops": list(cell.ops),
                "num_vertices": cell.num_vertices,
                "num_edges": cell.num_edges,
                "trainable_parameters": int(params[r]),
                "predicted": float(pred[i]),
                "true_val": json_number(truth["val"][row]) if known else None,
                "true_test": json_number(truth["test"][row]) if known else None,
                "true_rank": (int(truth["rank"][row]) or None) if known else None,
                "trained_on": bool(known and row in train_rows),
            }
        )
    return out


def print_table(ranked: list[dict], summary: dict) -> None:
    print(
        f"{'rank':>4} {'hash':<12} {'ops':<22} {'edges':>5} {'params':>9} {'pred %':>6} {'val %':>6} {'test %':>6} "
        f"{'true rank':>9}"
    )
    for c in ranked:
        ops = ",".join(SHORT[o] for o in c["ops"][1:-1]) or "-"
        rank = "-" if c["true_rank"] is None else f"{c['true_rank']}"
        flag = "  (trained on)" if c["trained_on"] else ""
        print(
            f"{c['rank']:>4} {c['hash'][:12]:<12} {ops:<22} {c['num_edges']:>5} {c['trainable_parameters']:>9,} "
            f"{pct(c['predicted'])} {pct(c['true_val'])} {pct(c['true_test'])} {rank:>9}{flag}"
        )
    if not summary["labelled"]:
        print("no labels: the table shows predictions only (give --data to compare with the benchmark)")
        return
    s, k = summary, len(ranked)
    print(
        f"best true {TRUTH} in the file: {pct(s['best_true_val'], 0)}% ({s['n_labelled']:,} labelled cells; "
        "the val % column's label, not train.py's target)"
    )
    if s["regret"] is None:
        print("regret of the top-1: unknown, the file does not hold it")
    else:
        print(f"regret of the top-1: {pct(s['regret'], 0)} pp (its true val accuracy {pct(s['top1_true_val'], 0)}%)")
    print(
        f"true top-1% ({s['top1pct_size']:,} cells): {s['top1pct_hits']} in the predicted top-{k}, i.e. "
        f"{100 * s['top1pct_captured']:.1f}% of it captured; precision {100 * s['topk_precision']:.0f}%"
    )
    if s["topk_in_file"] < k:
        print(f"only {s['topk_in_file']} of the top-{k} are in the file; the others have no truth to compare")


def check_network(top1: dict) -> int:
    """Parameters of the top-1 built as the stacked nasbench_pytorch Network, checked against the closed form."""
    cell = Cell.from_json(top1)
    net = build_network(cell, stem_channels=128, num_stacks=3, cells_per_stack=3, num_classes=10)
    adj, labels = cell.padded()
    closed = int(trainable_parameters(adj[None], labels[None], np.array([cell.num_vertices]))[0])
    n_net = count_parameters(net)
    ok = "ok" if n_net == closed else "MISMATCH"
    print(
        f"top-1 network (stem 128, 3 stacks x 3 cells, 10 classes): {n_net:,} parameters; closed form {closed:,} [{ok}]"
    )
    if n_net != closed:
        raise SearchError(f"top-1 {top1['hash']}: network has {n_net} parameters, closed form {closed}")
    return n_net


# ----------------------------------------------------------------------------- budget mode


def run_budget(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    if args.space != "data":
        raise SearchError("--budget searches the labelled cells of --data; drop --space all")
    device = available_device(args.device)
    out = output_folder(args.out, "--out") if args.out else Path("runs") / f"budget-{time.strftime('%Y%m%d-%H%M%S')}"
    data = load_nb101(args.data or DEFAULT_DATA)
    table = data.search_table(args.target, args.random_repeat)
    if table.n < 2:
        raise SearchError(f"--data {data.path}: {table.n} cell(s) with a {args.target} label at 108 epochs to search")
    if args.budget is not None and args.budget > table.n:
        raise SearchError(f"--budget {args.budget}: more queries than the {table.n:,} labelled cells of {data.path}")
    table.check(args.strategy)
    hp = predictor_hyperparams(args)
    predictor = any(s in PREDICTOR_STRATEGIES for s in args.strategy)
    jobs = min(args.jobs or default_jobs(args.strategy, device), len(args.strategy) * args.seeds)
    train = predictor_trainer(args, device, threads=args.threads if jobs == 1 else 1) if predictor else None

    loop = dict(seeds=args.seeds, queries=args.budget, seconds=args.budget_time, n0=args.n0, per_round=args.per_round)
    runs, curves = compare(table, args.strategy, train=train, device=device, jobs=jobs, **loop)
    config = {"data": str(data.path), "fingerprint": data.fingerprint, "strategies": args.strategy, **loop}
    config |= {"model": args.model, "hp": hp, "target": args.target, "device": str(device), "threads": args.threads}
    config |= {"jobs": jobs}
    result = {"config": config, **runs, "seconds": time.perf_counter() - t0, "synthetic_labels": data.synthetic}

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "budget.json", result)
    title = f"{', '.join(args.strategy)} on {Path(data.path).name}"
    title = f"SYNTHETIC labels (demo data): {title}" if data.synthetic else title
    plots = plot_search_curves(out, curves, result["pool"]["best"]["val"], title)
    print(budget_table(result))
    if data.synthetic:
        print(f"SYNTHETIC labels: {data.path} is demo data; these accuracies are made up, not NB101's")
    print(f"saved {out}/budget.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    return result


# ----------------------------------------------------------------------------- real-training mode


def run_trials(args: argparse.Namespace, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    out = trials_folder(args)
    device = available_device(args.device)
    predictor = [s for s in args.strategy if s in PREDICTOR_STRATEGIES]
    if predictor and args.budget <= args.n0:
        raise SearchError(
            f"--budget {args.budget}: {','.join(predictor)} trains --n0 {args.n0} random cells before its first "
            "predictor; give a larger --budget or a smaller --n0"
        )
    if args.engine == "ray" and args.address:
        check_reachable(args.address)  # a one-line error within seconds, before any other work
    train = predictor_trainer(args, device, args.threads) if predictor else None
    images = check_images(args)
    pool = Pool(enumerate_space(hashes=False), device)
    config = trials_config(args, images)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "search_config.json", config)  # --resume's flags (budget grown)
    print(
        f"searching {describe(images)}: {args.budget} trials per search, {args.engine} engine, trials in {out}/trials"
    )

    told = {}
    for name in args.strategy:
        for seed in range(args.seeds):
            kwargs = dict(train=train, n0=args.n0, per_round=args.per_round) if name in PREDICTOR_STRATEGIES else {}
            search = TrialSearch(
                name, seed, STRATEGIES[name](pool, seed, **kwargs), args.budget, trial_command(args, seed), out,
                args.trial_epochs, threads=args.threads if args.engine == "local" else 1,
            )  # fmt: skip
            try:
                told.setdefault(name, []).append(run_engine(args, search))
            except KeyboardInterrupt:
                print(f"search.py: interrupted; `python search.py --resume {out}` continues it", file=sys.stderr)
                sys.exit(130)
    summary, curves = trials_summary(told)
    result = {"config": config, **summary, "seconds": time.perf_counter() - t0, "synthetic_labels": False}
    top1 = best_trial(told)
    write_json(out / "budget.json", result)
    write_json(out / "top1.json", top1)
    plots = plot_search_curves(
        out, curves, result["pool"]["best"]["val"], f"{', '.join(args.strategy)} on {describe(images)}", measured=True
    )
    print(budget_table(result))
    print(f"best cell {top1['hash']}: val {100 * top1['val']:.2f}% (trial {top1['run_dir']})")
    print(f"saved {out}/budget.json, top1.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    if args.train:  # into <out>/top1 unless the flags after `--` say where
        where = [] if "--out" in extra else ["--out", str(out / "top1")]
        hand_off(out / "top1.json", None, ["--data-root", args.data_root, *where, *extra])
    return result


def trials_folder(args: argparse.Namespace) -> Path:
    """--resume's folder, or a new --out (default runs/search-<time>) that holds no search yet."""
    if args.resume:
        return output_folder(args.resume, "--resume", "its trials and budget.json are written there")
    out = Path(args.out) if args.out else Path("runs") / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
    output_folder(out, "--out")
    if (out / "search_config.json").exists():
        raise SearchError(f"--out {out} holds a search already; continue it with --resume {out}")
    return out


def check_images(args: argparse.Namespace) -> dict:
    """Read (and cache) the images once, before any trial: every trial then loads the decoded cache, and
    an empty folder, one class or an unreadable image stops the search here. Returns what was found."""
    try:
        data = load_images(Path(args.data_root))
    except ImageDataError as e:
        raise SearchError(f"--data-root {e}") from None
    n = {s: len(data[f"{s}_y"]) for s in ("train", "valid", "test")}
    for flag, asked, have in (
        ("--trial-train-images", args.trial_train_images, n["train"]),
        ("--trial-eval-images", args.trial_eval_images, n["valid"]),
    ):
        if asked > have:
            raise SearchError(f"{flag} {asked}: the data holds {have:,} such images (0 takes them all)")
    size = list(data["train_x"].shape[1:3])
    found = {"root": str(args.data_root), "classes": len(data["classes"]), "images": n, "image_size": size}
    return found | {"valid_split": data["valid_split"]}


def describe(images: dict) -> str:
    n = images["images"]
    size = "x".join(map(str, images["image_size"]))
    return (
        f"{images['root']} ({images['classes']} classes, {n['train']:,} train / {n['valid']:,} valid images of {size})"
    )


def trial_command(args: argparse.Namespace, seed: int) -> list[str]:
    """trainer.py and the trial budget's flags (the engine adds the cell, --epochs and --out)."""
    root = str(Path(args.data_root).resolve())  # trials may run in another folder (a Ray worker)
    cmd = [sys.executable, str(ROOT / "trainer.py"), "--data-root", root, "--device", args.device]
    cmd += ["--stem-channels", str(args.trial_stem_channels), "--num-stacks", str(args.trial_stacks)]
    cmd += ["--cells-per-stack", str(args.trial_cells_per_stack), "--seed", str(seed)]
    cmd += ["--train-images", str(args.trial_train_images), "--eval-images", str(args.trial_eval_images)]
    return cmd + shlex.split(args.trial_args)


def run_engine(args: argparse.Namespace, search: TrialSearch) -> list[dict]:
    if args.engine == "local":
        return search_locally(search)
    scheduler = None if args.scheduler == "none" else args.scheduler
    return search_on_ray(
        search, address=args.address, scheduler=scheduler, concurrent=args.concurrent, max_failures=args.max_failures
    )


def best_trial(told: dict[str, list[list[dict]]]) -> dict:
    """top1.json: the cell with the best validation accuracy at the highest budget any search trained."""
    b = best_record([r for runs in told.values() for run in runs for r in run])
    if b is None:
        raise SearchError("every trial failed (their errors are above and in budget.json); nothing to pick")
    return {k: b[k] for k in ("adjacency", "ops", "hash", "val", "test", "epochs", "run_dir", "strategy", "seed")}


def trials_config(args: argparse.Namespace, images: dict) -> dict:
    """search_config.json: the flags (--resume starts from them) and what the data was."""
    keep = {k: v for k, v in vars(args).items() if k not in ("resume", "budget_mode")}
    keep["data_root"] = str(Path(args.data_root).resolve())  # --resume may run from another folder
    return {"data": images, "strategies": args.strategy, "budget": args.budget, "seeds": args.seeds, "argv": keep}


def resumed_args(p: ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The saved flags of the search in --resume's folder, with the engine flags given now."""
    folder = Path(args.resume)
    try:
        saved = json.loads((folder / "search_config.json").read_text())["argv"]
    except (OSError, ValueError, KeyError):
        p.error(f"--resume {folder}: no search_config.json of a search with --data-root there")
    given = {k for k, v in vars(args).items() if v != p.get_default(k) and k != "resume"}
    refused = sorted(given - set(ON_RESUME))
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        p.error(f"--resume continues {folder} with its own flags; {flags} cannot change (only {', '.join(ON_RESUME)})")
    if "budget" in given and args.budget < saved["budget"]:
        p.error(f"--budget {args.budget}: {folder} was searched with --budget {saved['budget']}; a budget only grows")
    restored = saved | {k: getattr(args, k) for k in given} | {"resume": str(folder), "out": str(folder)}
    return argparse.Namespace(**restored | {"strategy": ",".join(saved.get("strategy", []))})  # split again below


def predictor_hyperparams(args: argparse.Namespace) -> dict:
    return hyperparams(args.model, {**vars(args), "batch_size": args.batch_size_train})


def predictor_trainer(args: argparse.Namespace, device: torch.device, threads: int) -> SearchTrainer:
    """The train(x, y, seed) the predictor strategies call every round (model.SearchTrainer), scoring
    on `threads` threads; with --prior its first fit continues from that checkpoint's weights, as later
    fits do from the last."""
    prior = load_prior(args, device) if args.prior else None
    build_model(args.model).prepare()  # e.g. a first pgin pretraining (a minute) says so here, not in round 1
    return SearchTrainer(args.model, predictor_hyperparams(args), device=device, threads=threads, prior=prior)


def load_prior(args: argparse.Namespace, device: torch.device) -> Scorer:
    """--prior: a train.py checkpoint of --model, as the fit the first round continues from."""
    model, _ = load_predictor(args.prior, device, "--prior")
    if model.name != args.model:
        raise SearchError(
            f"--prior {args.prior}: a {model.name} predictor, but --model is {args.model} (give --model {model.name})"
        )
    return Scorer(model, args.threads)


if __name__ == "__main__":
    exit_on_user_error("search.py", main)
