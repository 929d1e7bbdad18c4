"""A plain fitting loop: any module, any loss, features in memory; and the Adam steps it takes.

    from lib.predictors.fitting import fit
    history = fit(net, x, target, loss_fn, epochs=300, batch_size=64, lr=2e-3, wd=0.0, seed=0)

fit knows nothing of the predictors: model.train_model builds one, prepares its inputs and target,
and hands them here. search strategies reach it only through the train(x, y, seed) callable they get.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.optim.adam import adam
from tqdm import tqdm

from lib.util.devices import cpu_math
from lib.util.errors import UserError


class TrainError(UserError):
    """A fit that cannot run or went wrong for a reason the user can fix (batch size, learning rate)."""


def fit(
    model: torch.nn.Module,
    x: dict[str, torch.Tensor],
    target: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    wd: float,
    seed: int = 0,
    threads: int = 1,
    quiet: bool = False,
    desc: str = "train",
) -> list[float]:
    """Train `model` in place on features x (a dict of tensors, one row per sample) and `target`, on the
    model's device; returns the mean loss per epoch, leaving the model in eval mode.

    Adam (AdamSteps, L2 weight decay `wd`) with a cosine schedule over `epochs`; each epoch one
    torch.randperm of the in-memory tensors (generator seeded with `seed`), the last partial batch
    dropped (as neuralpredictor.pytorch); `threads` intra-op CPU threads.
    """
    n = len(target)
    if n < batch_size:
        raise TrainError(f"batch size {batch_size} is larger than the {n} training cells")
    opt = AdamSteps(list(model.parameters()), wd=wd)
    gen = torch.Generator().manual_seed(seed)
    steps = n // batch_size
    device = target.device
    history = []
    model.train()
    bar = tqdm(range(epochs), desc=desc, unit="ep", disable=quiet, leave=False)
    with cpu_math(device, threads=threads):
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
