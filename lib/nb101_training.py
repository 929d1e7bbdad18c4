"""NB101's TensorFlow training protocol in PyTorch: initialisers, TF1's RMSProp, the LR schedule, the steps.

    from lib.nb101_training import init_like_tf, freeze_dummies, TFRMSprop, lr_at, train_epoch, eval_sums
    init_like_tf(net); freeze_dummies(net)
    opt = TFRMSprop(params, lr=0.0)                              # train_epoch sets each step's LR
    lrs = [lr_at(s, total_steps, 0.2) for s in range(first, first + plan.shape[1])]
    stats = train_epoch(net, opt, params, padded, labels, plan, lrs, 1e-4, norm, amp)
    loss_sum, correct, images = eval_sums(net, x, y, norm, amp, 500)

docs/trainer_protocol.md lists each piece against its source in google-research/nasbench.
Every function returns local sums, so DDP callers all-reduce them before dividing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lib.cifar10 import augment, normalize

TRUNC_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated at ±2


def init_like_tf(net: nn.Module) -> None:
    """NB101's initialisers: convs tf.variance_scaling_initializer() (fan-in, truncated normal),
    the dense layer glorot_uniform with zero bias; BatchNorm gamma 1, beta 0 as in torch."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            std = math.sqrt(1.0 / fan_in) / TRUNC_NORMAL_STD
            nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def freeze_dummies(net: nn.Module) -> None:
    """nasbench_pytorch's Placeholder and dev_param parameters are never used in forward:
    frozen, they stay out of the optimiser, the L2 term and DDP's gradient buckets."""
    from nasbench_pytorch.model.model import Placeholder

    for m in net.modules():
        if isinstance(m, Placeholder):
            m.requires_grad_(False)
        if isinstance(getattr(m, "dev_param", None), nn.Parameter):
            m.dev_param.requires_grad_(False)


class TFRMSprop(torch.optim.Optimizer):
    """tf.compat.v1.train.RMSPropOptimizer (NB101's optimiser), which differs from torch.optim.RMSprop:

        ms  <- decay * ms + (1 - decay) * g^2            ms starts at 1 (torch: 0)
        mom <- momentum * mom + lr * g / sqrt(ms + eps)  eps inside the sqrt (torch: outside)
        w   <- w - mom                                   lr inside the momentum (torch: outside)

    With eps = 1.0 the placement matters: sqrt(ms + 1) vs sqrt(ms) + 1.
    """

    def __init__(self, params, lr: float, decay: float = 0.9, momentum: float = 0.9, eps: float = 1.0):
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            for p in ps:
                if not self.state[p]:
                    self.state[p]["ms"], self.state[p]["mom"] = torch.ones_like(p), torch.zeros_like(p)
            grads = [p.grad for p in ps]
            ms, mom = [self.state[p]["ms"] for p in ps], [self.state[p]["mom"] for p in ps]
            torch._foreach_mul_(ms, g["decay"])
            torch._foreach_addcmul_(ms, grads, grads, value=1 - g["decay"])
            denom = torch._foreach_sqrt(torch._foreach_add(ms, g["eps"]))
            torch._foreach_mul_(mom, g["momentum"])
            torch._foreach_addcdiv_(mom, grads, denom, value=g["lr"])
            torch._foreach_sub_(ps, mom)


def lr_at(step: int, total_steps: int, base_lr: float) -> float:
    """NB101 COSINE_BY_STEP, with LR 0 at step 0 (its weight-initialising step)."""
    if step == 0:
        return 0.0
    return 0.5 * base_lr * (1 + math.cos(math.pi * step / total_steps))


def train_epoch(
    model: nn.Module,
    opt: TFRMSprop,
    params: list[torch.Tensor],
    padded: torch.Tensor,
    labels: torch.Tensor,
    plan: torch.Tensor,
    lrs: list[float],
    weight_decay: float,
    norm: tuple[torch.Tensor, torch.Tensor],
    amp,
    desc: str = "",
    show: bool = True,
) -> torch.Tensor:
    """One step per plan[:, j] (epoch_plan's batches) at LR lrs[j], with NB101's L2 term in the loss.

    Returns the device tensor [ce loss sum, correct, images, non-finite steps] (local).
    """
    model.train()
    stats = torch.zeros(4, dtype=sum_dtype(padded.device), device=padded.device)
    # disable=None: a bar on a terminal only, so logs and CI output stay clean
    bar = tqdm(range(plan.shape[1]), desc=desc, disable=None if show else True, leave=False, mininterval=1)
    for j in bar:
        batch = plan[:, j]
        x, y = normalize(augment(padded, batch), *norm), labels[batch[0]]
        opt.param_groups[0]["lr"] = lrs[j]
        with amp:
            logits = model(x)
        ce = F.cross_entropy(logits.float(), y)
        # TF's loss += weight_decay * sum(tf.nn.l2_loss(v)), l2_loss = sum(v^2) / 2, over all
        # trainable variables (BatchNorm's too); one fused norm kernel over the list.
        loss = ce + 0.5 * weight_decay * torch.stack(torch._foreach_norm(params)).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            stats += torch.stack([ce * len(y), (logits.argmax(1) == y).sum(), ce.new_tensor(len(y)), ~loss.isfinite()])
        if show and j % 50 == 49:
            bar.set_postfix(loss=f"{stats[0].item() / stats[2].item():.3f}", lr=f"{opt.param_groups[0]['lr']:.4f}")
    return stats


@torch.no_grad()
def eval_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm, amp, batch: int) -> torch.Tensor:
    """[ce loss sum, correct, images] (local) of the unaugmented images x (uint8 NHWC), in eval mode."""
    model.eval()
    stats = torch.zeros(3, dtype=sum_dtype(x.device), device=x.device)
    for i in range(0, len(x), batch):
        xb, yb = normalize(x[i : i + batch].permute(0, 3, 1, 2), *norm), y[i : i + batch]
        with amp:
            logits = model(xb).float()
        ce = F.cross_entropy(logits, yb, reduction="sum")
        stats += torch.stack([ce, (logits.argmax(1) == yb).sum(), ce.new_tensor(len(yb))])
    model.train()
    return stats


def sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
