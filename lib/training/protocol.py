"""NB101's TensorFlow training protocol in PyTorch: initialisers, TF1's RMSProp, the LR schedule, the steps.

    from lib.training.protocol import Images, SpeedSettings, TFRMSprop, eval_sums, init_like_tf, lr_at, train_epoch
    init_like_tf(net); freeze_dummies(net); streamline_cells(net)
    opt = TFRMSprop(params, lr=0.0)                              # train_epoch sets each step's LR
    train = Images(pad_for_crops(x), y, normalizer(device))      # uint8 NHWC on the device
    lrs = [lr_at(s, total_steps, 0.2) for s in range(first, first + plan.shape[1])]
    sums = train_epoch(net, opt, 1e-4, train, plan, lrs, SpeedSettings(bf16=True))
    sums.mean_loss(), sums.accuracy()                            # after DDP's all_reduce(sums.values)
    valid = eval_sums(net, Images(valid_x, valid_y, norm), batch=500)

docs/trainer_protocol.md lists each piece against its source in google-research/nasbench.
Every function returns local sums on the device, so DDP callers all-reduce them before dividing;
nothing inside a step waits for the device (no .item()), so the host queues steps ahead.
"""

from __future__ import annotations

import functools
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lib.training.augment import augment, normalize

TRUNC_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated at ±2
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs (on CUDA only)


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


def streamline_cells(net: nn.Module) -> None:
    """Give each nasbench_pytorch Cell a forward that computes the same sums, but that torch.compile traces
    as one graph and that launches fewer kernels.

    nasbench_pytorch's Cell.forward reads its adjacency from a CPU tensor and compares channel counts
    with a new CPU tensor: each is a graph break for torch.compile (6 in a one-cell network, dozens
    in NB101's 9 cells) and a little host work per edge. It also sums each vertex's inputs into a
    fresh zeros tensor. Here the adjacency is a list of ints and the sum starts from the first input;
    0 + a == a, so the outputs are bitwise the same (tests/training/test_protocol.py).
    """
    fast = _streamlined_cell_class()
    for m in net.modules():
        if isinstance(m, fast.__base__):
            m.__class__ = fast
            m.edges = m.matrix.tolist()


@functools.cache
def _streamlined_cell_class() -> type:
    from nasbench_pytorch.model.model import Cell

    class StreamlinedCell(Cell):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, m = self.num_vertices, self.edges
            tensors, out_concat = [x], []
            for t in range(1, n - 1):
                c = self.vertex_channels[t]
                fan_in = [tensors[s][:, :c] if tensors[s].shape[1] > c else tensors[s] for s in range(1, t) if m[s][t]]
                if m[0][t]:
                    fan_in.append(self.input_op[t](x))
                total = fan_in[0]
                for v in fan_in[1:]:
                    total = total + v
                tensors.append(self.vertex_op[t](total))
                if m[t][n - 1]:
                    out_concat.append(tensors[t])
            if not out_concat:
                return self.last_inop(x)
            out = out_concat[0] if len(out_concat) == 1 else torch.cat(out_concat, 1)
            return out + self.last_inop(x) if m[0][n - 1] else out

    return StreamlinedCell


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


class Images(NamedTuple):
    """Images as the steps read them, all on the device: uint8 NHWC pixels (for training, zero-padded for
    crops by pad_for_crops), int64 labels, and the normaliser (mean, std) of lib.training.augment.normalizer."""

    x: torch.Tensor
    y: torch.Tensor
    norm: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SpeedSettings:
    """How the steps run on the device, none changing what they compute beyond rounding: bf16 autocast, the
    input's memory layout (the weights' layout is the caller's choice), and whether the model was compiled
    with CUDA graphs (so each step starts a new graph generation)."""

    bf16: bool = False
    channels_last: bool = True
    cuda_graphs: bool = False

    @classmethod
    def of(cls, dtype: str, channels_last: bool, compile_mode: str | None, device: torch.device) -> SpeedSettings:
        """The settings of trainer.py's --dtype (auto: bf16 on CUDA), --channels-last and --compile on `device`."""
        bf16 = dtype == "bf16" or (dtype == "auto" and device.type == "cuda")
        return cls(bf16, channels_last, cuda_graphs=compile_mode in GRAPH_MODES and device.type == "cuda")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()


@dataclass(frozen=True)
class EpochSums:
    """An epoch's sums on the device, local to one rank: [cross-entropy sum, correct, images, non-finite
    steps] in one tensor, so DDP sums them with one all_reduce(values) and each is read once an epoch.
    Evaluation has no steps to fail: its non-finite count is 0."""

    values: torch.Tensor

    @property
    def loss_sum(self) -> torch.Tensor:
        return self.values[0]

    @property
    def correct(self) -> torch.Tensor:
        return self.values[1]

    @property
    def count(self) -> torch.Tensor:
        return self.values[2]

    @property
    def nonfinite(self) -> torch.Tensor:
        return self.values[3]

    def mean_loss(self) -> float:
        return self.loss_sum.item() / self.count.item()

    def accuracy(self) -> float:
        return self.correct.item() / self.count.item()


def train_epoch(
    model: nn.Module,
    opt: TFRMSprop,
    weight_decay: float,
    train: Images,
    plan: torch.Tensor,
    lrs: list[float],
    speed: SpeedSettings = SpeedSettings(),
    progress: str | None = None,
) -> EpochSums:
    """One step per plan[:, j] (epoch_plan's batches of train) at LR lrs[j], with NB101's L2 term (weight_decay)
    over the optimiser's parameters in the loss. progress: the description of a progress bar (shown on a
    terminal only), or None for none."""
    model.train()
    params = [p for group in opt.param_groups for p in group["params"]]
    amp, memory_format = speed.autocast(train.x.device), speed.memory_format
    sums = torch.zeros(3, dtype=sum_dtype(train.x.device), device=train.x.device)  # ce sum, correct, non-finite
    # disable=None: a bar on a terminal only, so logs and CI output stay clean
    show = progress is not None
    bar = tqdm(range(plan.shape[1]), desc=progress or "", disable=None if show else True, leave=False, mininterval=1)
    for j in bar:
        batch = plan[:, j]
        x = normalize(augment(train.x, batch), *train.norm).contiguous(memory_format=memory_format)
        y = train.y[batch[0]]
        opt.param_groups[0]["lr"] = lrs[j]
        if speed.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
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
            # a Python number times a tensor is a kernel argument; a new tensor would be a copy that waits
            sums += torch.stack([ce * len(y), (logits.argmax(1) == y).sum(), ~loss.isfinite()])
        if show and j % 50 == 49:
            bar.set_postfix(lr=f"{lrs[j]:.4f}")  # the loss would need .item(): a wait for the device
    images = sums.new_tensor([plan.shape[1] * plan.shape[2]])  # known on the host: one copy an epoch
    return EpochSums(torch.cat([sums[:2], images, sums[2:]]))


@torch.no_grad()
def eval_sums(model: nn.Module, images: Images, batch: int, speed: SpeedSettings = SpeedSettings()) -> EpochSums:
    """The sums (local) over the unaugmented images, `batch` at a time, in eval mode; the model is left in
    training mode."""
    model.eval()
    x, y = images.x, images.y
    amp, memory_format = speed.autocast(x.device), speed.memory_format
    sums = torch.zeros(2, dtype=sum_dtype(x.device), device=x.device)  # ce sum, correct
    for i in range(0, len(x), batch):
        xb = normalize(x[i : i + batch].permute(0, 3, 1, 2), *images.norm).contiguous(memory_format=memory_format)
        yb = y[i : i + batch]
        if speed.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with amp:
            logits = model(xb).float()
        ce = F.cross_entropy(logits, yb, reduction="sum")
        sums += torch.stack([ce, (logits.argmax(1) == yb).sum()])
    model.train()
    return EpochSums(torch.cat([sums, sums.new_tensor([len(x), 0])]))  # images, no non-finite steps


def sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
