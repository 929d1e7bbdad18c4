"""Rank NB101 cells with a trained predictor, report the pick against the benchmark's truth, export it.

    python search.py                                     # runs/latest predictor over data/nasbench.hdf5, top 10
    python search.py --space all --top-k 20              # every one of the 423,624 NB101 cells, no labels needed
    python search.py --checkpoint runs/gcn-172-s0-X/checkpoint.pt --data data/real20k.hdf5 --out runs/pick
    python search.py --train -- --data-root data/cifar10-jpeg --epochs 4    # then trainer.py on the pick
    python search.py --budget 150 --data data/real20k.hdf5 --epochs 100 --lr 1e-3   # guided search vs random

Ranking mode: scores every cell (of --data, or of the enumerated space with --space all) in large
batches, ranks them, prints the top-k with the truth where the data file knows it (true mean val /
test accuracy, the cell's true rank) and a summary (best true accuracy in the file, regret of the
top-1, how much of the true top-1% the top-k holds). With --space all the truth is joined by hash.
Then it builds the top-1 as the stacked nasbench_pytorch network (stem 128, 3x3 cells, 10 classes)
and checks its parameter count against the closed form. Writes, atomically, into --out (default:
the checkpoint's run folder, so `runs/latest/top1.json` is the newest pick; a new search over the
same checkpoint replaces them):
  search.json  checkpoint, model, data, fingerprint_match, space, n_scored, top_k, seconds,
               ranked (rank, hash, adjacency, ops, num_vertices, num_edges, trainable_parameters,
               predicted, true_val, true_test, true_rank, trained_on), summary (see `summarize`)
  top1.json    adjacency, ops, hash (+ predicted, true_val): for nb101_space.Cell.from_json and
               `python trainer.py --arch top1.json`; --train runs exactly that (with --data, so the run
               records NB101's numbers for the cell), plus anything after `--`.

Budget mode (--budget B): what Neural Predictor / BANANAS do with a query budget. Start from
--n0 random labelled cells of --data, train a fresh predictor (train.py's train_model), "query" the
labels of the --per-round best-predicted unqueried cells, retrain, until B labels are spent; random
search draws B cells. Over --seeds seeds it writes into --out (default runs/budget-<time>):
  budget.json       config, best_in_pool {hash, val, test}, seconds, and for "guided" and "random":
                    final_val_mean, final_val_std, final_test_mean, found_best_in_pool (seeds),
                    curve_val_mean / curve_val_std (entry q-1: best found after q queries),
                    runs [{seed, best_hash, best_val, best_test, queried (hashes, in order)}]
  search_curve.png  best true val accuracy found vs queries, mean line with a +-std band
Truth is always the benchmark's: true_val / true_test are mean 108-epoch accuracies over the
usable repeats (dataset.NB101.labels), null where the file has none (the real 20k file has no test).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dataset import DEFAULT_DATA, NB101, DataFileError, cell_features, load_nb101
from lib.devices import pick_device
from lib.metrics import top_k
from lib.nb101_space import Cell, build_network, cell_from_row, count_parameters, enumerate_space, trainable_parameters
from lib.outputs import write_atomic
from model import MODELS, load_checkpoint, predict
from train import TARGETS, hyperparams, parse_target, train_model

ROOT = Path(__file__).resolve().parent
LATEST = Path("runs/latest/checkpoint.pt")
SHORT = {"conv3x3-bn-relu": "3x3", "conv1x1-bn-relu": "1x1", "maxpool3x3": "mp"}
TOP_FRACTION = 0.01  # "the true top-1%"


class SearchError(Exception):
    """A user-facing failure; printed as one line, exit code 1."""


# ----------------------------------------------------------------------------- config


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and whatever follows `--` (handed to trainer.py by --train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.error = lambda msg: sys.exit(f"search.py: error: {msg}")  # one line, no usage dump
    p.add_argument("--checkpoint", default=str(LATEST), help="predictor from train.py (default runs/latest)")
    p.add_argument("--data", help=f"NB101 HDF5 (default {DEFAULT_DATA}; optional with --space all)")
    p.add_argument("--space", default="data", choices=["data", "all"], help="cells of --data, or all 423,624")
    p.add_argument("--top-k", type=int, default=10, help="cells in the table and in search.json")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder; budget mode runs/budget-<time>)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    p.add_argument("--batch-size", type=int, help="cells per forward pass (default: model.predict's choice)")
    # One thread with cache-sized batches beats two on a shared CPU: per-op barriers stall whenever
    # another process holds a core (bench/search_speed.py).
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--train", action="store_true", help="then run `trainer.py --arch <out>/top1.json [-- ARGS]`")
    b = p.add_argument_group("budget mode: predictor-guided search with a query budget")
    b.add_argument("--budget", type=int, help="labels to spend; turns budget mode on (no checkpoint needed)")
    b.add_argument("--n0", type=int, default=50, help="random labelled cells to start from")
    b.add_argument("--per-round", type=int, default=10, help="cells queried after each retrain")
    b.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1, each for guided and random search")
    b.add_argument("--model", default="gcn", choices=list(MODELS))
    b.add_argument("--target", default="val", choices=TARGETS, help="label the predictor learns (train.py --target)")
    b.add_argument("--epochs", type=int, help="override the model's DEFAULTS (model.py) in the loop")
    b.add_argument("--batch-size-train", dest="batch_size_train", type=int, help="override the training batch")
    b.add_argument("--lr", type=float, help="override the learning rate")
    b.add_argument("--wd", type=float, help="override the weight decay")
    args = p.parse_args(argv)
    for flag in ("top_k", "threads", "n0", "per_round", "seeds"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    if args.train and args.budget is not None:
        p.error("--train hands the pick of a ranking to trainer.py; budget mode has none")
    if extra and not args.train:
        p.error(f"arguments after `--` ({' '.join(extra)}) are for trainer.py and need --train")
    return args, extra


# ----------------------------------------------------------------------------- data and scoring


def load_cells(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], NB101 | None, np.ndarray]:
    """The cells to score (adjacency, operations, num_vertices, hash), the data file if any, and
    each cell's row in it (-1 where the file lacks the cell)."""
    path = Path(args.data or DEFAULT_DATA)
    data = None
    if args.space == "data" or args.data or path.exists():  # --space all: labels only when there is a file
        data = load_nb101(path)
    if args.space == "data":
        cells = {k: getattr(data, k) for k in ("adjacency", "operations", "num_vertices", "hash")}
        return cells, data, np.arange(len(data))
    cells = enumerate_space()
    return cells, data, rows_by_hash(data, cells["hash"]) if data is not None else np.full(len(cells["hash"]), -1)


def rows_by_hash(data: NB101, hashes: np.ndarray) -> np.ndarray:
    """Row of each hash in `data`, -1 where absent (vectorised: one sort, one searchsorted)."""
    order = np.argsort(data.hash)
    pos = np.searchsorted(data.hash, hashes, sorter=order).clip(0, len(order) - 1)
    found = data.hash[order[pos]] == hashes
    return np.where(found, order[pos], -1)


def score(model: torch.nn.Module, cells: dict[str, np.ndarray], batch_size: int | None, device) -> np.ndarray:
    """Predicted accuracy of every cell: features built with array ops, then batched forward passes."""
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"], device)
    return predict(model, x, batch_size)


def true_ranks(acc: np.ndarray) -> np.ndarray:
    """1 = best; ties broken by row; NaN (no label) -> 0."""
    ranks = np.zeros(len(acc), np.int64)
    finite = np.flatnonzero(np.isfinite(acc))
    ranks[finite[top_k(acc[finite], len(finite))]] = np.arange(1, len(finite) + 1)
    return ranks


# ----------------------------------------------------------------------------- report


def summarize(pick: np.ndarray, rows: np.ndarray, truth: dict | None) -> dict:
    """Summary of the ranked pick (indices into the scored cells, best first) against the truth.

    best_true_val / best_true_hash: the best mean val accuracy in the file and its cell;
    top1_true_val and regret (best - top-1; null when the file lacks the top-1); top1pct_size:
    cells in the file's true top-1%; top1pct_hits: how many of them the predicted top-k holds;
    top1pct_captured = hits / size (the share of the true top-1% captured); topk_precision = hits / k;
    topk_in_file: how many of the top-k the file holds (all of them unless --space all).
    """
    if truth is None or not np.isfinite(truth["val"]).any():
        return {"labelled": False}
    val = truth["val"]
    finite = np.flatnonzero(np.isfinite(val))
    size = max(1, math.ceil(TOP_FRACTION * len(finite)))
    top_rows = set(finite[top_k(val[finite], size)].tolist())
    pick_rows = rows[pick]
    hits = sum(int(r) in top_rows for r in pick_rows)
    best_row = int(finite[np.argmax(val[finite])])
    top1 = val[pick_rows[0]] if pick_rows[0] >= 0 else math.nan
    return {
        "labelled": True,
        "n_labelled": len(finite),
        "best_true_val": float(val[best_row]),
        "best_true_hash": str(truth["hash"][best_row]),
        "top1_true_val": _num(top1),
        "regret": _num(val[best_row] - top1),
        "top1pct_size": size,
        "top1pct_hits": hits,
        "top1pct_captured": hits / size,
        "topk_precision": hits / len(pick),
        "topk_in_file": int((pick_rows >= 0).sum()),  # < k only with --space all: the rest are unknown
    }


def ranked_list(pick, cells, pred, rows, truth: dict | None, train_rows: set) -> list[dict]:
    """One record per picked cell (see the module docstring for the keys)."""
    adj, ops, nv = cells["adjacency"][pick], cells["operations"][pick], cells["num_vertices"][pick]
    params = trainable_parameters(adj, ops, nv)
    out = []
    for r, i in enumerate(pick):
        cell = cell_from_row(adj[r], ops[r], nv[r])
        row = int(rows[i])
        known = truth is not None and row >= 0
        out.append({
            "rank": r + 1,
            "hash": str(cells["hash"][i]),
            "adjacency": cell.matrix.tolist(),
            "ops": list(cell.ops),
            "num_vertices": cell.num_vertices,
            "num_edges": cell.num_edges,
            "trainable_parameters": int(params[r]),
            "predicted": float(pred[i]),
            "true_val": _num(truth["val"][row]) if known else None,
            "true_test": _num(truth["test"][row]) if known else None,
            "true_rank": (int(truth["rank"][row]) or None) if known else None,
            "trained_on": bool(known and row in train_rows),
        })  # fmt: skip
    return out


_SCALAR = r'(?:"[^"\n]*"|[-+.\deE]+|null|true|false)'
_FLAT_LIST = re.compile(rf"\[\s*({_SCALAR}(?:,\s*{_SCALAR})*)\s*\]")


def dumps(obj) -> str:
    """JSON with indent 2, but each list of scalars on one line (adjacency rows, ops, curves)."""
    # only the newlines json.dumps put between items go (strings hold none), so values never change
    return _FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", json.dumps(obj, indent=2))


def _num(x: float) -> float | None:
    """JSON has no NaN: missing values are null."""
    return None if not math.isfinite(x) else float(x)


def _pct(x: float | None, width: int = 6) -> str:
    return f"{100 * x:{width}.2f}" if x is not None and math.isfinite(x) else f"{'-':>{width}}"


def print_table(ranked: list[dict], summary: dict) -> None:
    print(f"{'rank':>4} {'hash':<12} {'ops':<22} {'edges':>5} {'params':>9} {'pred %':>6} {'val %':>6} {'test %':>6} "
          f"{'true rank':>9}")  # fmt: skip
    for c in ranked:
        ops = ",".join(SHORT[o] for o in c["ops"][1:-1]) or "-"
        rank = "-" if c["true_rank"] is None else f"{c['true_rank']}"
        flag = "  (trained on)" if c["trained_on"] else ""
        print(f"{c['rank']:>4} {c['hash'][:12]:<12} {ops:<22} {c['num_edges']:>5} {c['trainable_parameters']:>9,} "
              f"{_pct(c['predicted'])} {_pct(c['true_val'])} {_pct(c['true_test'])} {rank:>9}{flag}")  # fmt: skip
    if not summary["labelled"]:
        print("no labels: the table shows predictions only (give --data to compare with the benchmark)")
        return
    s, k = summary, len(ranked)
    print(f"best true val accuracy in the file: {_pct(s['best_true_val'], 0)}% ({s['n_labelled']:,} labelled cells)")
    if s["regret"] is None:
        print("regret of the top-1: unknown, the file does not hold it")
    else:
        print(f"regret of the top-1: {_pct(s['regret'], 0)} pp (its true val accuracy {_pct(s['top1_true_val'], 0)}%)")
    print(f"true top-1% ({s['top1pct_size']:,} cells): {s['top1pct_hits']} in the predicted top-{k}, i.e. "
          f"{100 * s['top1pct_captured']:.1f}% of it captured; precision {100 * s['topk_precision']:.0f}%")  # fmt: skip
    if s["topk_in_file"] < k:
        print(f"only {s['topk_in_file']} of the top-{k} are in the file; the others have no truth to compare")


def check_network(cell_json: dict) -> tuple[int, int]:
    """Parameters of the top-1 built as the stacked nasbench_pytorch Network, and the closed form."""
    cell = Cell.from_json(cell_json)
    net = build_network(cell, stem_channels=128, num_stacks=3, cells_per_stack=3, num_classes=10)
    adj, labels = cell.padded()
    closed = int(trainable_parameters(adj[None], labels[None], np.array([cell.num_vertices]))[0])
    return count_parameters(net), closed


# ----------------------------------------------------------------------------- ranking mode


def device_or_die(name: str) -> torch.device:
    """nb101_space.pick_device, with a one-line error for an unknown or absent device."""
    try:
        device = pick_device(name)
    except RuntimeError:
        raise SearchError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(device.type)
    if available and not available():
        raise SearchError(f"--device {name}: no {device.type} device on this machine")
    return device


def run_search(args: argparse.Namespace, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    device = device_or_die(args.device)
    try:
        model, info = load_checkpoint(args.checkpoint, device)
    except FileNotFoundError as e:
        raise SearchError(f"--checkpoint {e}") from None
    except Exception as e:  # corrupt or foreign file: torch / pickle raise many kinds
        raise SearchError(f"--checkpoint {args.checkpoint}: cannot load ({type(e).__name__}: {e})") from None
    cells, data, rows = load_cells(args)
    fp_match, train_rows = None, set()
    if data is not None:
        trained = info.get("data", {})
        fp_match = trained.get("fingerprint") == data.fingerprint
        if not fp_match:
            print(f"search.py: warning: {args.checkpoint} was trained on {trained.get('path')} (fingerprint "
                  f"{trained.get('fingerprint')}), not on {data.path} ({data.fingerprint}); ranking anyway",
                  file=sys.stderr)  # fmt: skip
        elif "split" in info:  # mark the cells whose labels the predictor saw
            train_rows = set(data.split(info["split"]["name"], info["split"]["seed"]).tolist())
    t_load = time.perf_counter()

    if len(cells["hash"]) == 0:
        raise SearchError(f"--data {data.path}: no cells to rank")
    pred = score(model, cells, args.batch_size, device)
    t_score = time.perf_counter()
    pick = top_k(pred, min(args.top_k, len(pred)))
    t_rank = time.perf_counter()

    truth = None
    if data is not None:  # the benchmark's mean 108-epoch accuracies, NaN where the file has none
        val = data.labels("val", 108, "mean")
        truth = {"val": val, "test": data.labels("test", 108, "mean"), "rank": true_ranks(val), "hash": data.hash}
    ranked = ranked_list(pick, cells, pred, rows, truth, train_rows)
    summary = summarize(pick, rows, truth)
    print(f"{model.name} predictor {args.checkpoint} | scored {len(pred):,} cells "
          f"({'all of NB101' if args.space == 'all' else data.path}) in {t_score - t_load:.2f} s, ranked in "
          f"{t_rank - t_score:.3f} s")  # fmt: skip
    print_table(ranked, summary)
    seen = sum(c["trained_on"] for c in ranked)
    if seen:
        print(f"note: {seen} of the top-{len(ranked)} were training cells of the predictor: it saw their labels")

    top1 = {k: ranked[0][k] for k in ("adjacency", "ops", "hash", "predicted", "true_val")}
    n_net, n_closed = check_network(top1)
    ok = "ok" if n_net == n_closed else "MISMATCH"
    print(f"top-1 network (stem 128, 3 stacks x 3 cells, 10 classes): {n_net:,} parameters; "
          f"closed form {n_closed:,} [{ok}]")  # fmt: skip
    if n_net != n_closed:
        raise SearchError(f"top-1 {top1['hash']}: network has {n_net} parameters, closed form {n_closed}")

    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": str(args.checkpoint),
        "model": model.name,
        "data": str(data.path) if data is not None else None,
        "fingerprint_match": fp_match,
        "space": args.space,
        "n_scored": len(pred),
        "top_k": len(ranked),
        "seconds": {"load": t_load - t0, "score": t_score - t_load, "rank": t_rank - t_score},
        "ranked": ranked,
        "summary": {**summary, "top1_network_parameters": n_net},
    }
    write_atomic(out / "search.json", lambda f: f.write(dumps(result)))
    write_atomic(out / "top1.json", lambda f: f.write(dumps(top1)))
    print(f"saved {out}/search.json and {out}/top1.json")
    if args.train:
        handoff = [sys.executable, str(ROOT / "trainer.py"), "--arch", str(out / "top1.json")]
        handoff += ["--data", str(data.path)] if data is not None else []  # NB101's record beside our run
        print("running", " ".join(handoff + extra))
        rc = subprocess.call(handoff + extra)
        if rc:
            raise SearchError(f"trainer.py exited with status {rc}")
    return result


# ----------------------------------------------------------------------------- budget mode


def budgeted_search(x: dict[str, torch.Tensor], y: np.ndarray, *, budget: int, n0: int, per_round: int, model: str,
                    hp: dict, seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:  # fmt: skip
    """Predictor-guided search over a pool (features x, labels y): indices of the `budget` queried
    cells, in query order. n0 random cells first; then, until the budget is spent, a fresh predictor
    trained on all queried cells picks the `per_round` best-predicted cells not yet queried."""
    if not 0 < n0 <= budget <= len(y):
        raise SearchError(f"need 0 < --n0 ({n0}) <= --budget ({budget}) <= labelled cells ({len(y)})")
    rng = np.random.default_rng(seed)
    queried = rng.choice(len(y), n0, replace=False).tolist()
    seen = np.zeros(len(y), bool)
    seen[queried] = True
    rnd = 0
    while len(queried) < budget:
        idx = torch.as_tensor(queried)
        net, _ = train_model(model, {k: v[idx] for k, v in x.items()}, y[queried], hp, seed=1000 * seed + rnd,
                             device=device, quiet=True)  # fmt: skip
        pred = predict(net, x)
        pred[seen] = -np.inf
        new = top_k(pred, min(per_round, budget - len(queried)))
        queried += new.tolist()
        seen[new] = True
        rnd += 1
    return np.asarray(queried)


def random_search(n: int, budget: int, seed: int = 0) -> np.ndarray:
    """`budget` distinct cells of a pool of n, uniformly at random (a stream apart from the guided one)."""
    return np.random.default_rng([seed, 1]).choice(n, budget, replace=False)


def best_so_far(queried: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index (into the pool) of the best cell found after each query."""
    v = y[queried]
    improved = v >= np.maximum.accumulate(v)  # this query matched or beat every earlier one
    return queried[np.maximum.accumulate(np.where(improved, np.arange(len(v)), 0))]


def plot_curves(path: Path, curves: dict[str, np.ndarray], best: float, title: str, n0: int = 0) -> None:
    """Best true accuracy found vs queries: mean line, +-std shaded, per method; the pool's best dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        q = np.arange(1, c.shape[1] + 1)
        m, s = 100 * c.mean(0), 100 * c.std(0)
        ax.plot(q, m, label=f"{name} ({c.shape[0]} seeds)")
        ax.fill_between(q, m - s, m + s, alpha=0.25)
    ax.axhline(100 * best, color="k", ls="--", lw=0.8, label=f"best in pool {100 * best:.2f}%")
    if n0:
        ax.axvline(n0, color="gray", ls=":", lw=0.8, label=f"first predictor ({n0} random cells)")
    ax.set(xlabel="queries (labelled cells)", ylabel="best true val accuracy found (%)", title=title)
    lo = min(100 * c.mean(0)[min(9, c.shape[1] - 1)] for c in curves.values())
    ax.set_ylim(max(lo - 1, 0), 100 * best + 0.3)
    ax.grid(ls="--", alpha=0.5)
    ax.legend(loc="lower right")
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
    plt.close(fig)


def run_budget(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    if args.space != "data":
        raise SearchError("--budget searches the labelled cells of --data; drop --space all")
    device = device_or_die(args.device)
    data = load_nb101(args.data or DEFAULT_DATA)
    metric, repeat = parse_target(args.target)
    y_target = data.labels(metric, 108, repeat)
    true_val, true_test = data.labels("val", 108, "mean"), data.labels("test", 108, "mean")
    pool = np.flatnonzero(np.isfinite(y_target) & np.isfinite(true_val))
    x = data.features(pool, device)
    hp = hyperparams(args.model, {**vars(args), "batch_size": args.batch_size_train})
    if args.n0 < hp["batch_size"]:
        raise SearchError(f"--n0 {args.n0} is smaller than the training batch {hp['batch_size']}")

    runs = {"guided": [], "random": []}
    for seed in tqdm(range(args.seeds), desc="seeds", unit="seed"):
        guided = budgeted_search(x, y_target[pool], budget=args.budget, n0=args.n0, per_round=args.per_round,
                                 model=args.model, hp=hp, seed=seed, device=device)  # fmt: skip
        for name, q in (("guided", guided), ("random", random_search(len(pool), args.budget, seed))):
            best = pool[best_so_far(q, true_val[pool])]  # rows of the best cell after each query
            runs[name].append({"seed": seed, "queried": data.hash[pool[q]].tolist(), "best_row": best})
    best_row = int(pool[np.argmax(true_val[pool])])
    result = {
        "config": {
            "data": str(data.path),
            "fingerprint": data.fingerprint,
            "budget": args.budget,
            "n0": args.n0,
            "per_round": args.per_round,
            "seeds": args.seeds,
            "model": args.model,
            "hp": hp,
            "target": args.target,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "pool": len(pool),
        },  # fmt: skip
        "best_in_pool": {
            "hash": str(data.hash[best_row]),
            "val": float(true_val[best_row]),
            "test": _num(true_test[best_row]),
        },  # fmt: skip
    }
    curves = {}
    for name, rs in runs.items():
        val = np.array([true_val[r["best_row"]] for r in rs])  # [seeds, budget]
        test = np.array([true_test[r["best_row"][-1]] for r in rs])
        curves[name] = val
        result[name] = {
            "final_val_mean": float(val[:, -1].mean()),
            "final_val_std": float(val[:, -1].std()),
            "final_test_mean": _num(float(np.mean(test))),
            "found_best_in_pool": int(sum(r["best_row"][-1] == best_row for r in rs)),
            "curve_val_mean": val.mean(0).tolist(),  # index q-1: after q queries
            "curve_val_std": val.std(0).tolist(),
            "runs": [
                {
                    "seed": r["seed"],
                    "best_hash": str(data.hash[r["best_row"][-1]]),
                    "best_val": float(v[-1]),
                    "best_test": _num(t),
                    "queried": r["queried"],
                }
                for r, v, t in zip(rs, val, test)
            ],  # fmt: skip
        }
    result["seconds"] = time.perf_counter() - t0

    out = Path(args.out) if args.out else Path("runs") / f"budget-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "budget.json", lambda f: f.write(dumps(result)))
    title = f"{args.model}-guided vs random, budget {args.budget}, {Path(data.path).name}"
    plot_curves(out / "search_curve.png", curves, result["best_in_pool"]["val"], title, args.n0)
    print(budget_table(result))
    print(f"saved {out}/budget.json and {out}/search_curve.png ({result['seconds']:.0f} s)")
    return result


def budget_table(r: dict) -> str:
    c, b = r["config"], r["best_in_pool"]
    lines = [
        f"best true val accuracy found with {c['budget']} queries, {c['seeds']} seeds, pool of {c['pool']:,} "
        f"(n0 {c['n0']}, {c['per_round']} per round, {c['model']} {c['hp']['epochs']} epochs)",  # fmt: skip
        f"{'method':<8} {'val % mean +- std':>18} {'test % mean':>12} {'found the best':>15}",
    ]
    for name in ("guided", "random"):
        m = r[name]
        lines.append(f"{name:<8} {100 * m['final_val_mean']:>10.2f} +- {100 * m['final_val_std']:.2f} "
                     f"{_pct(m['final_test_mean'], 12)} {m['found_best_in_pool']:>8}/{c['seeds']}")  # fmt: skip
    lines.append(f"{'pool':<8} {100 * b['val']:>10.2f}         {_pct(b['test'], 12)}   (best cell {b['hash'][:12]})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run_budget(args) if args.budget is not None else run_search(args, extra)
    finally:
        torch.set_num_threads(threads)  # main() is also called in-process (tests, benches)


if __name__ == "__main__":
    try:
        main()
    except (SearchError, DataFileError, ValueError) as e:
        sys.exit(f"search.py: error: {e}")
