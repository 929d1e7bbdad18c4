"""Fit a predictor of model.py to labelled cells, and predict accuracies with it.

    from lib.fitting import hyperparams, predict, train_model
    hp = hyperparams("gcn", {"epochs": 100})         # the model's DEFAULTS, with overrides
    model, losses = train_model("gcn", x, y, hp, seed=0)
    acc = predict(model, data.features())            # accuracy (fraction) per cell, batched

train.py trains one predictor this way; search.py's budget mode retrains one every round.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from dataset import cell_features
from lib.devices import cpu_math, free_cores
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
    quiet: bool = False,
) -> list[float]:
    """Train `model` in place on features x and accuracies y (the training cells only).

    Labels are normalised with their own mean and std, which the model keeps for `predict`.
    Adam + cosine schedule over `epochs`; each epoch one torch.randperm of the in-memory tensors,
    the last partial batch dropped (as neuralpredictor.pytorch). Returns the mean loss per epoch.
    """
    n = len(y)
    if n < batch_size:
        raise TrainError(f"batch size {batch_size} is larger than the {n} training cells")
    device = next(model.parameters()).device
    mean, std = float(np.mean(y)), float(np.std(y))
    model.set_label_norm(mean, std if std > 0 else 1.0)
    target = torch.as_tensor((y - mean) / (std if std > 0 else 1.0), dtype=torch.float32, device=device)
    x = {k: v.to(device) for k, v in x.items()}
    loss_fn = LOSSES[loss]
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd, fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    steps = n // batch_size
    history = []
    model.train()
    bar = tqdm(range(epochs), desc=f"train {model.name}", unit="ep", disable=quiet, leave=False)
    with cpu_math(device, threads=1):  # batches of ~10 cells gain nothing from threads, lose when cores are shared
        for epoch in bar:
            perm = torch.randperm(n, generator=gen).to(device)
            xe, ye = {k: v[perm] for k, v in x.items()}, target[perm]  # one gather per epoch, then slices
            total = torch.zeros((), device=device)
            for s in range(0, steps * batch_size, batch_size):
                batch = {k: v[s : s + batch_size] for k, v in xe.items()}
                loss_value = loss_fn(model(batch), ye[s : s + batch_size])
                opt.zero_grad(set_to_none=True)
                loss_value.backward()
                opt.step()
                total += loss_value.detach()
            sched.step()
            history.append(total.item() / steps)
            if epoch % 10 == 0 or epoch == epochs - 1:
                bar.set_postfix(loss=f"{history[-1]:.4f}")
    if not np.isfinite(history[-1]):
        raise TrainError(f"training diverged (loss {history[-1]}); lower --lr")
    model.eval()
    return history


def train_model(
    name: str,
    x: dict[str, torch.Tensor],
    y: np.ndarray,
    hp: dict,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    model_args: dict | None = None,
    quiet: bool = False,
) -> tuple[Predictor, list[float]]:
    """Build model `name` (seeded) on `device` and fit it; returns (model, loss per epoch)."""
    torch.manual_seed(seed)  # init and dropout
    model = build_model(name, **(model_args or {})).to(device)
    history = fit(model, x, y, **{k: hp[k] for k in HP}, seed=seed, quiet=quiet)
    return model, history


# ----------------------------------------------------------------------------- inference


@torch.inference_mode()
def predict(
    model: Predictor, features: dict[str, torch.Tensor], batch_size: int | None = None, threads: int | None = None
) -> np.ndarray:
    """Predicted accuracy (fraction, float64) per cell; batched, eval mode, features on any device.

    On a CPU: `threads` intra-op threads (default free_cores()) and 1024 cells per thread per
    batch, small enough to stay in cache (2x faster than 32k cells at a time); elsewhere 65536."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    threads = threads or free_cores()
    batch_size = batch_size or (1024 * threads if device.type == "cpu" else 65536)
    n = len(features["mask"])
    out = np.empty(n, np.float64)
    with cpu_math(device, threads):
        for i in range(0, n, batch_size):
            batch = {k: v[i : i + batch_size].to(device) for k, v in features.items()}
            out[i : i + batch_size] = model(batch).double().cpu().numpy()
    model.train(was_training)
    return out * model.label_std.item() + model.label_mean.item()


def predict_cells(
    model: Predictor, cells: dict[str, np.ndarray], batch_size: int | None = None, device="cpu"
) -> np.ndarray:
    """`predict` on raw cells (adjacency, operations, num_vertices): features built with array ops."""
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"], device)
    return predict(model, x, batch_size)
