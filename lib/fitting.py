"""Fit a predictor of model.py to labelled cells, and predict accuracies with it.

    from lib.fitting import hyperparams, predict, train_model
    hp = hyperparams("gcn", {"epochs": 100})         # the model's DEFAULTS, with overrides
    model, losses = train_model("gcn", x, y, hp, seed=0)
    acc = predict(model, data.features())            # accuracy (fraction) per cell, batched
    inference_plan(model)                            # what predict runs with: threads, precision, batch size

train.py trains one predictor this way; search.py's budget mode retrains one every round.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.optim.adam import adam
from tqdm import tqdm

from dataset import cell_features
from lib.devices import cpu_math, keep_freed_memory, native_bf16
from lib.nb101_space import NUM_CELLS, enumerate_space, space_fingerprint, space_rows
from model import LOSSES, MODELS, Predictor, build_model

HP = ("epochs", "batch_size", "lr", "wd", "loss")  # what a model's DEFAULTS declare
TARGETS = [f"{m}{r}" for m in ("val", "test") for r in ("", ":0", ":1", ":2", ":mean")]


class TrainError(Exception):
    """A user-facing failure (empty split, no labels, bad batch size): one line, exit code 1."""


def parse_target(target: str) -> tuple[str, int | str]:
    """'val' -> ('val', 0); 'test:mean' -> ('test', 'mean'); 'val:2' -> ('val', 2)."""
    metric, _, repeat = target.partition(":")
    return metric, ("mean" if repeat == "mean" else int(repeat or 0))


def hyperparams(model: str, overrides: dict | None = None) -> dict:
    """The model's DEFAULTS, with every override (e.g. vars(args)) that is not None."""
    hp = dict(MODELS[model].DEFAULTS)
    overrides = overrides or {}
    hp.update({k: v for k, v in overrides.items() if k in HP and v is not None})
    return hp


# ----------------------------------------------------------------------------- training


def fit(
    model: Predictor,
    x: dict[str, torch.Tensor],
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    wd: float,
    loss: str = "mse",
    seed: int = 0,
    threads: int = 1,
    quiet: bool = False,
) -> list[float]:
    """Train `model` in place on features x and accuracies y (the training cells only).

    The target is model.fit_target(y) (z-scores by default), whose inverse the model keeps for `predict`;
    model.fixed_inputs(x) adds what the model derives from the cells alone, once. Adam (AdamSteps) with
    a cosine schedule over `epochs`; each epoch one torch.randperm of the in-memory tensors, the last
    partial batch dropped (as neuralpredictor.pytorch); `threads` intra-op CPU threads, at most the model's
    TRAIN_THREADS. Returns the mean loss per epoch.
    """
    n = len(y)
    if n < batch_size:
        raise TrainError(f"batch size {batch_size} is larger than the {n} training cells")
    device = next(model.parameters()).device
    target = torch.as_tensor(model.fit_target(y), dtype=torch.float32, device=device)
    with torch.no_grad():
        x = model.fixed_inputs({k: v.to(device) for k, v in x.items()})
    loss_fn = LOSSES[loss]
    opt = AdamSteps(list(model.parameters()), wd=wd)
    gen = torch.Generator().manual_seed(seed)
    steps = n // batch_size
    history = []
    model.train()
    bar = tqdm(range(epochs), desc=f"train {model.name}", unit="ep", disable=quiet, leave=False)
    with cpu_math(device, threads=min(threads, model.TRAIN_THREADS or threads)):
        for epoch in bar:
            perm = torch.randperm(n, generator=gen).to(device)
            xe, ye = {k: v[perm] for k, v in x.items()}, target[perm]  # one gather per epoch, then slices
            total = torch.zeros((), device=device)
            for s in range(0, steps * batch_size, batch_size):
                batch = {k: v[s : s + batch_size] for k, v in xe.items()}
                loss_value = loss_fn(model(batch), ye[s : s + batch_size])
                opt.zero_grad()
                loss_value.backward()
                opt.step(lr * (1 + math.cos(math.pi * epoch / epochs)) / 2)  # cosine annealing to 0, per epoch
                total += loss_value.detach()
            history.append(total.item() / steps)
            if epoch % 10 == 0 or epoch == epochs - 1:
                bar.set_postfix(loss=f"{history[-1]:.4f}")
    if not np.isfinite(history[-1]):
        raise TrainError(f"training diverged (loss {history[-1]}); lower --lr")
    model.eval()
    return history


class AdamSteps:
    """torch.optim.Adam's update (fused kernel on CPU and CUDA, L2 weight decay), one call per step.

    The same arithmetic through torch.optim.adam.adam, without torch.optim.Adam's constructor, which
    imports torch._dynamo: 1.4 s of every train.py run."""

    def __init__(self, params: list[torch.nn.Parameter], wd: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.wd, self.betas, self.eps = params, wd, betas, eps
        self.fused = all(p.device.type in ("cpu", "cuda") for p in params)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        # torch.optim.Adam keeps the step count on the parameter's device when fused, else on the CPU
        self.step_count = [
            torch.zeros((), dtype=torch.float32, device=p.device if self.fused else "cpu") for p in params
        ]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, lr: float) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[i] for i in live]
        adam(
            params,
            [p.grad for p in params],
            [self.exp_avg[i] for i in live],
            [self.exp_avg_sq[i] for i in live],
            [],
            [self.step_count[i] for i in live],
            fused=self.fused,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=lr,
            weight_decay=self.wd,
            eps=self.eps,
            maximize=False,
        )


def train_model(
    name: str,
    x: dict[str, torch.Tensor],
    y: np.ndarray,
    hp: dict,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    model_args: dict | None = None,
    threads: int = 1,
    quiet: bool = False,
) -> tuple[Predictor, list[float]]:
    """Build model `name` (seeded) on `device`, prepare and fit it (`threads` CPU threads); returns
    (model, loss per epoch)."""
    torch.manual_seed(seed)  # init and dropout
    model = build_model(name, **(model_args or {})).to(device)
    model.prepare(quiet=quiet)  # e.g. pgin's pretrained encoders (built once, cached)
    history = fit(model, x, y, **{k: hp[k] for k in HP}, seed=seed, threads=threads, quiet=quiet)
    return model, history


# ----------------------------------------------------------------------------- inference

PRECISIONS = ("auto", "fp32", "bf16")


def inference_plan(
    model: Predictor, batch_size: int | None = None, threads: int | None = None, precision: str = "auto"
) -> dict:
    """What `predict` runs with, every default resolved: device, threads, precision, batch_size.

    On a CPU: `threads` worker threads (default torch.get_num_threads(), which the entry scripts set
    from --threads, by default lib.devices.free_cores()), each scoring its own batches of 1024 cells
    with one torch thread: a worker that loses its core to another process delays only its own
    batches, where intra-op threads would wait for each other at every op (and lib.devices.keep_freed_memory
    spares them the page faults of fresh memory for every batch). precision "auto" is bf16
    where the CPU multiplies bf16 in hardware (lib.devices.native_bf16) and the model allows it
    (Predictor.BF16), fp32 elsewhere. Other devices: one thread, fp32 unless asked, 65536 cells per batch."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {' '.join(PRECISIONS)}")
    device = next(model.parameters()).device
    cpu = device.type == "cpu"
    if precision == "auto":
        precision = "bf16" if cpu and native_bf16(device) and getattr(model, "BF16", True) else "fp32"
    return {
        "device": str(device),
        "threads": (threads or torch.get_num_threads()) if cpu else 1,
        "precision": precision,
        "batch_size": batch_size or (1024 if cpu else 65536),
    }


def predict(
    model: Predictor,
    features: dict[str, torch.Tensor],
    batch_size: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Predicted accuracy (fraction, float64) per cell; batched, eval mode, features on any device.

    batch_size, threads and precision as inference_plan resolves them; an exception in any batch is
    raised here, whichever thread scored it."""
    n = len(features["mask"])
    return _predict_batches(
        model, n, lambda lo, hi: {k: v[lo:hi] for k, v in features.items()}, batch_size, threads, precision
    )


def predict_cells(
    model: Predictor,
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


def _predict_batches(model: Predictor, n: int, batch, batch_size, threads, precision) -> np.ndarray:
    """Score cells [lo, hi) given by batch(lo, hi) -> features, as inference_plan says; denormalised."""
    plan = inference_plan(model, batch_size, threads, precision)
    device, step = torch.device(plan["device"]), plan["batch_size"]
    keep_freed_memory()
    was_training = model.training
    model.eval()
    net, dtype = (
        (copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16) if plan["precision"] == "bf16" else (model, None)
    )
    out = np.empty(n, np.float64)

    def score(lo: int) -> None:
        if device.type == "cpu":
            torch.set_flush_denormal(True)  # per thread (the CPU's MXCSR register), see lib.devices.cpu_math
        x = {k: v.to(device, dtype if v.is_floating_point() else None) for k, v in batch(lo, lo + step).items()}
        with torch.inference_mode():
            out[lo : lo + step] = net(x).double().cpu().numpy()

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
    return model.to_accuracy(out)


# ----------------------------------------------------------------------------- stored predictions
# train.py stores its predictions in the checkpoint and search.py reuses them: "data", every row of the
# data file it trained on (keyed by dataset.NB101.fingerprint), and "space", every NB101 cell in
# enumerate_space order (keyed by nb101_space.space_fingerprint) when that file holds them all or
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
    model: Predictor, cells: dict[str, np.ndarray], pred: np.ndarray, plan: dict, rest: bool = False
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
