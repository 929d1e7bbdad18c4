"""Rank NB101 cells with a trained predictor, report the pick against the benchmark's truth, export it.

    python search.py                                     # runs/latest's predictor over its data file, top 10
    python search.py --space all --top-k 20              # every one of the 423,624 NB101 cells, no labels needed
    python search.py --checkpoint runs/gcn-172-s0-X/checkpoint.pt --data data/real20k.hdf5 --out runs/pick
    python search.py --train -- --data-root data/cifar10-jpeg --epochs 4    # then trainer.py on the pick

It scores every cell of --data (default: the file the checkpoint was trained on, else data/nasbench.hdf5),
or of the whole space with --space all, ranks them, and prints the top-k with the truth where the file
knows it: the mean val / test accuracy over the repeats at 108 epochs, and the true rank. The summary
says the best true accuracy in the file, the regret of the top-1 and how much of the true top-1% the
top-k holds. The scores are the checkpoint's own where train.py stored predictions of exactly these
cells (--recompute ignores them); else they are computed on --threads CPU threads at --precision. The
top-1 is built as the stacked network (stem 128, 3 stacks of 3 cells) and its parameter count checked
against the closed form.

Writes, atomically, search.json (the ranking and its summary) and top1.json (the pick, for
`trainer.py --arch`) into --out (default: the checkpoint's folder, so runs/latest/top1.json is the newest
pick); --train then runs trainer.py on the pick, with any flags after `--`. On demo data (synthetic
labels) the outputs and the printed table say SYNTHETIC. The keys of the outputs: docs/outputs.md.
A search with a budget of queries or trials (on NB101's table, or training each cell): budgeted_search.py.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from dataset import DEFAULT_DATA, NB101, load_nb101
from lib.nb101.cell import Cell, cell_from_row, short_ops
from lib.nb101.join import space_rows
from lib.nb101.network import build_network, count_parameters, trainable_parameters
from lib.nb101.space import enumerate_space, space_fingerprint, space_hashes
from lib.predictors.inference import PRECISIONS, inference_plan, predict_cells, reusable_predictions
from lib.predictors.metrics import pick_summary, top_k, true_ranks
from lib.search.trials import train_pick
from lib.util.checks import at_least, output_folder
from lib.util.devices import available_device, free_cores
from lib.util.errors import ArgumentParser, UserError, deferred_signals, exit_on_user_error
from lib.util.outputs import json_number, pct, write_json
from model import load_predictor

ROOT = Path(__file__).resolve().parent
LATEST = Path("runs/latest/checkpoint.pt")
TRUTH = "val:mean at 108 epochs"  # the label of every "true" accuracy shown (the mean over repeats)
BUDGETED = ("--budget", "--budget-time", "--data-root", "--resume")  # flags of budgeted_search.py's searches


class SearchError(UserError):
    """A search that cannot go on for a reason the user can fix."""


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and whatever follows `--` (handed to trainer.py by --train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    budgeted = [a.split("=", 1)[0] for a in ours if a.split("=", 1)[0] in BUDGETED]
    if budgeted:
        raise UserError(
            f"{budgeted[0]}: search.py ranks the cells with a trained predictor; for a search with a budget of "
            f"queries or trials use budgeted_search.py: python budgeted_search.py {shlex.join(argv)}"
        )
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(LATEST), help="predictor from train.py (default runs/latest)")
    p.add_argument(
        "--data", help=f"NB101 HDF5 (default: the checkpoint's, else {DEFAULT_DATA}; optional with --space all)"
    )
    p.add_argument("--space", default="data", choices=["data", "all"], help="cells of --data, or all 423,624")
    p.add_argument("--top-k", type=at_least(1), default=10, help="cells in the table and in search.json")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder)")
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
    args = p.parse_args(ours)
    args.threads = free_cores() if args.threads is None else args.threads
    if extra and not args.train:
        p.error(f"arguments after `--` ({' '.join(extra)}) are for trainer.py and need --train")
    return args, extra


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
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
    with deferred_signals():  # both or neither: never an old top1.json beside a new search.json
        (out / "top1.json").unlink(missing_ok=True)
        write_json(out / "search.json", result)
        write_json(out / "top1.json", top1)
    print(f"saved {out}/search.json and {out}/top1.json")
    if args.train:  # with --data, so that trainer.py's run records NB101's numbers for the cell
        data_flag = ["--data", str(data.path)] if data is not None else []
        train_pick([sys.executable, str(ROOT / "trainer.py"), "--arch", str(out / "top1.json"), *data_flag, *extra])
    return result


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
    """One record per picked cell (search.json's "ranked": docs/outputs.md)."""
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
        ops = short_ops(c["ops"])
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


if __name__ == "__main__":
    exit_on_user_error("search.py", main)
