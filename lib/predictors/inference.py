"""Predicted accuracies of many cells, batched over CPU threads or one device; and the predictions
that train.py stores beside the weights for search.py to reuse.

    from lib.predictors.inference import inference_plan, predict, predict_cells
    acc = predict(model, data.features(), threads=2)     # accuracy (fraction) per cell
    acc = predict_cells(model, enumerate_space(hashes=False))   # features built batch by batch
    inference_plan(model)                                # what predict runs with: threads, precision, batch

A model here is any module that maps a feature dict (lib.predictors.features.cell_features) to scores and has
`to_accuracy(scores)` (and optionally BF16 = False): model.py's predictors.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from lib.nb101.join import space_rows
from lib.nb101.space import NUM_CELLS, enumerate_space, space_fingerprint
from lib.predictors.features import cell_features
from lib.util.devices import cpu_math, free_cores, native_bf16
from lib.util.memory import keep_freed_memory

PRECISIONS = ("auto", "fp32", "bf16")


def inference_plan(
    model: torch.nn.Module, batch_size: int | None = None, threads: int | None = None, precision: str = "auto"
) -> dict:
    """What `predict` runs with, every default resolved: device, threads, precision, batch_size.

    On a CPU: `threads` worker threads (default lib.util.devices.free_cores(); the entry scripts pass their
    --threads), each scoring its own batches of 1024 cells with one torch thread: a worker that loses its
    core to another process delays only its own batches, where intra-op threads would wait for each other
    at every op (and lib.util.memory.keep_freed_memory spares them the page faults of fresh memory for every
    batch). precision "auto" is bf16 where the CPU multiplies bf16 in hardware (lib.util.devices.native_bf16)
    and the model allows it (its BF16 attribute, model.py's Predictor.BF16), fp32 elsewhere. Other
    devices: one thread, fp32 unless asked, 65536 cells per batch."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {' '.join(PRECISIONS)}")
    device = next(model.parameters()).device
    cpu = device.type == "cpu"
    if precision == "auto":
        precision = "bf16" if cpu and native_bf16(device) and getattr(model, "BF16", True) else "fp32"
    return {
        "device": str(device),
        "threads": (threads or free_cores()) if cpu else 1,
        "precision": precision,
        "batch_size": batch_size or (1024 if cpu else 65536),
    }


def predict(
    model: torch.nn.Module,
    features: dict[str, torch.Tensor],
    batch_size: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
    members: bool = False,
) -> np.ndarray:
    """Predicted accuracy (fraction, float64) per cell; batched, eval mode, features on any device.
    With `members`, each ensemble member's: [cells, members] (model.member_scores).

    batch_size, threads and precision as inference_plan resolves them; an exception in any batch is
    raised here, whichever thread scored it."""
    n = len(features["mask"])

    def batch(lo: int, hi: int) -> dict[str, torch.Tensor]:
        return {k: v[lo:hi] for k, v in features.items()}

    return _predict_batches(model, n, batch, batch_size, threads, precision, members)


def predict_cells(
    model: torch.nn.Module,
    cells: dict[str, np.ndarray],
    batch_size: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """`predict` on raw cells (adjacency, operations, num_vertices): each batch's features built on the
    fly, by the worker that scores it, so that the whole space never sits in memory as float tensors."""
    n = len(cells["num_vertices"])

    def batch(lo: int, hi: int) -> dict[str, torch.Tensor]:
        return cell_features(cells["adjacency"][lo:hi], cells["operations"][lo:hi], cells["num_vertices"][lo:hi])

    return _predict_batches(model, n, batch, batch_size, threads, precision)


def _predict_batches(
    model: torch.nn.Module, n: int, batch, batch_size, threads, precision, members=False
) -> np.ndarray:
    """Score cells [lo, hi) given by batch(lo, hi) -> features, as inference_plan says; denormalised."""
    plan = inference_plan(model, batch_size, threads, precision)
    device, step = torch.device(plan["device"]), plan["batch_size"]
    keep_freed_memory()
    was_training = model.training
    model.eval()
    net, dtype = (
        (copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16) if plan["precision"] == "bf16" else (model, None)
    )
    forward = net.member_scores if members else net
    out = {}

    def score(lo: int) -> None:
        if device.type == "cpu":
            torch.set_flush_denormal(True)  # per thread (the CPU's MXCSR register), see lib.util.devices.cpu_math
        x = {k: v.to(device, dtype if v.is_floating_point() else None) for k, v in batch(lo, lo + step).items()}
        with torch.inference_mode():
            out[lo] = forward(x).double().cpu().numpy()

    starts = range(0, n, step)
    try:
        with cpu_math(device, threads=1):
            if device.type == "cpu" and plan["threads"] > 1 and len(starts) > 1:
                with ThreadPoolExecutor(plan["threads"]) as pool:
                    list(pool.map(score, starts))  # list(): re-raises a worker's exception here
            else:
                for lo in starts:
                    score(lo)
    finally:
        model.train(was_training)
    scores = np.concatenate([out[lo] for lo in starts]) if n else np.empty((0, 1) if members else 0)
    return model.to_accuracy(scores)


# ----------------------------------------------------------------------------- stored predictions
# train.py stores its predictions in the checkpoint and search.py reuses them: "data", every row of the
# data file it trained on (keyed by the data's fingerprint, dataset.NB101.fingerprint), and "space", every
# NB101 cell in enumerate_space order (keyed by nb101_space.space_fingerprint) when that file holds them all or
# train.py --predict-space asks. They belong to the weights they are saved with.


def stored_predictions(values: np.ndarray, fingerprint: str, precision: str) -> dict:
    """An entry of a checkpoint's `predictions`: the accuracies of the cells `fingerprint` names."""
    return {"fingerprint": fingerprint, "precision": precision, "values": torch.as_tensor(values, dtype=torch.float64)}


def reusable_predictions(
    info: dict, kind: str, fingerprint: str, precision: str = "auto"
) -> tuple[np.ndarray | None, str]:
    """The checkpoint's stored predictions of `kind` ("data" or "space") when they were made for
    `fingerprint` at `precision` ("auto" takes either), else None; and why, in words to print."""
    what = "the data file's cells" if kind == "data" else "all NB101 cells"
    entry = info.get("predictions", {}).get(kind)
    if entry is None:
        hint = "" if kind == "data" else " (train.py stores them from a file of all cells, or with --predict-space)"
        return None, f"the checkpoint holds no predictions of {what}{hint}"
    if entry["fingerprint"] != fingerprint:
        return None, f"the checkpoint's predictions are of cells {entry['fingerprint']}, these are {fingerprint}"
    if precision != "auto" and entry["precision"] != precision:
        return None, f"the checkpoint's predictions were made in {entry['precision']}, --precision {precision} asked"
    return entry["values"].numpy(), f"train.py stored them with the weights, {entry['precision']}, cells {fingerprint}"


def space_predictions(
    model: torch.nn.Module, cells: dict[str, np.ndarray], pred: np.ndarray, plan: dict, rest: bool = False
) -> dict | None:
    """stored_predictions of every NB101 cell (enumerate_space order) from `pred`, the predictions of
    `cells` (a data file's arrays): joined by cell, the cells it lacks predicted if `rest`, else None."""
    if len(pred) < NUM_CELLS and not rest:  # cannot hold every cell: nothing to join
        return None
    space = enumerate_space(hashes=False)
    at = space_rows(space, cells["adjacency"], cells["operations"], cells["num_vertices"])
    values, known = np.zeros(NUM_CELLS), np.zeros(NUM_CELLS, bool)
    values[at[at >= 0]], known[at[at >= 0]] = pred[at >= 0], True
    missing = np.flatnonzero(~known)
    if len(missing) and not rest:
        return None
    if len(missing):
        lacking = {k: space[k][missing] for k in ("adjacency", "operations", "num_vertices")}
        values[missing] = predict_cells(model, lacking, plan["batch_size"], plan["threads"], plan["precision"])
    return stored_predictions(values, space_fingerprint(space), plan["precision"])
