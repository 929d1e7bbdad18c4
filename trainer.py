"""Train one NAS-Bench-101 cell on CIFAR-10 with NB101's own protocol (docs/trainer_protocol.md).

    python trainer.py --arch runs/search/top1.json --data-root data/cifar10-jpeg            # 108 epochs
    python trainer.py --hash <H> --data data/nasbench.hdf5 --data-root data --epochs 36     # + NB101's record
    python trainer.py --adjacency '[[0,1,1],[0,0,1],[0,0,0]]' --ops input,conv3x3-bn-relu,output \
        --data-root data/cifar10-jpeg --epochs 4 --stem-channels 16 --num-stacks 1 --cells-per-stack 1
    python trainer.py --resume runs/train-20250101-120000                       # continue exactly
    torchrun --standalone --nproc_per_node=8 trainer.py --arch top1.json --data-root data    # DDP

Data (--data-root): torchvision's CIFAR10 batches (`cifar-10-batches-py/`, fetched by --download),
or an image-folder tree `train/<class>/*` + `test/<class>/*` such as ../shared/data/cifar10-jpeg.tar.gz
unpacked (decoded once, cached as cifar10-uint8.npz beside it).

Speed: the whole uint8 dataset lives on the device and crops/flips are one gather per batch
(airbench style), channels_last + bf16 autocast on CUDA, optional --compile. The data order and
augmentation are a pure function of (seed, epoch), so --resume and DDP see exactly the same stream.
Writes <out>/ckpt.pt (atomic, every epoch) and <out>/metrics.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torchvision.datasets import CIFAR10, ImageFolder
from tqdm import tqdm

from dataset import BUDGETS, METRICS, DataFileError, load_nb101
from lib.devices import pick_device
from lib.nb101_space import Cell, InvalidSpecError, build_network, cell_from_row, count_parameters, make_cell
from lib.outputs import save_npz_atomic, write_atomic

# nasbench lib/cifar.py: RGB_MEAN / RGB_STD on 0..255 pixels (CIFAR-10's true per-channel values).
RGB_MEAN = (125.31, 122.95, 113.87)
RGB_STD = (62.99, 62.09, 66.70)
CACHE_NAME = "cifar10-uint8.npz"


class TrainerError(Exception):
    """A user-facing failure: bad cell, missing data, NaN loss. Printed as one line, exit code 1."""


# ----------------------------------------------------------------------------- config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cell = p.add_argument_group("cell (one of)")
    cell.add_argument("--arch", help="JSON file with adjacency, ops (and hash), e.g. search.py's top1.json")
    cell.add_argument("--hash", help="NB101 module hash, looked up in --data")
    cell.add_argument("--adjacency", help="JSON adjacency matrix, e.g. '[[0,1],[0,0]]'")
    cell.add_argument("--ops", help="comma-separated ops, e.g. input,output")
    cell.add_argument("--data", help="NB101 HDF5 (tools/nasbench_tfrecord_converter.py) for --hash and the record")
    net = p.add_argument_group("network")
    net.add_argument("--stem-channels", type=int, default=128)
    net.add_argument("--num-stacks", type=int, default=3)
    net.add_argument("--cells-per-stack", type=int, default=3)
    bn_help = "PyTorch BN momentum; NB101's decay 0.997 is 0.003 (short reduced runs may raise it)"
    net.add_argument("--bn-momentum", type=float, default=0.003, help=bn_help)
    opt = p.add_argument_group("NB101 protocol (nasbench lib/config.py defaults)")
    opt.add_argument("--epochs", type=int, default=108, help="NB101 budgets: 4, 12, 36, 108")
    opt.add_argument("--batch-size", type=int, default=256, help="global batch, split across DDP ranks")
    opt.add_argument("--lr", type=float, default=0.2, help="0.1 x 2 TPU shards")
    opt.add_argument("--momentum", type=float, default=0.9)
    opt.add_argument("--rms-decay", type=float, default=0.9, help="TF RMSPropOptimizer's default decay")
    opt.add_argument("--rms-eps", type=float, default=1.0)
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="L2 term in the loss")
    data = p.add_argument_group("data")
    data.add_argument("--data-root", help="dir with cifar-10-batches-py/ or train/ + test/ (default: data)")
    data.add_argument("--download", action="store_true", help="fetch torchvision's CIFAR10 into --data-root")
    data.add_argument("--train-images", type=int, default=0, help="train on a fixed subset (0 = all 40k)")
    data.add_argument("--eval-images", type=int, default=0, help="evaluate on fixed subsets (0 = all 10k)")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    run.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 on CUDA")
    run.add_argument("--compile", action="store_true", help="torch.compile the network")
    run.add_argument("--eval-batch-size", type=int, default=500)
    run.add_argument("--out", help="run dir (default runs/train-<timestamp>)")
    run.add_argument("--resume", help="run dir to continue exactly; its saved config is used")
    run.add_argument("--stop-after", type=int, default=None, help="stop after N epochs of this invocation")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- cell


def select_cell(args: argparse.Namespace) -> tuple[Cell, dict | None]:
    """The cell to train and, when --data holds it, NB101's record for it. Raises TrainerError."""
    given = [k for k in ("arch", "hash", "adjacency") if getattr(args, k)]
    if len(given) != 1:
        raise TrainerError("give exactly one of --arch FILE, --hash H --data FILE, --adjacency M --ops A,B,..")
    try:
        if args.arch:
            try:
                spec = json.loads(Path(args.arch).read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise TrainerError(f"--arch {args.arch}: cannot read JSON ({e})") from None
            if not isinstance(spec, dict) or not {"adjacency", "ops"} <= spec.keys():
                raise TrainerError(f"--arch {args.arch}: expected a JSON object with keys adjacency, ops (and hash)")
            cell = Cell.from_json(spec)
        elif args.adjacency:
            if not args.ops:
                raise TrainerError("--adjacency needs --ops, e.g. --ops input,conv3x3-bn-relu,output")
            try:
                matrix = json.loads(args.adjacency)
            except json.JSONDecodeError as e:
                raise TrainerError(f"--adjacency is not JSON ({e})") from None
            cell = make_cell(matrix, args.ops.split(","))
        else:
            cell = None
    except (ValueError, TypeError) as e:  # InvalidSpecError, or JSON of the wrong shape
        raise TrainerError(f"invalid cell: {e}") from None
    if not args.data:
        if cell is None:
            raise TrainerError("--hash needs --data data/nasbench.hdf5 (tools/nasbench_tfrecord_converter.py)")
        return cell, None
    try:
        nb = load_nb101(args.data)
    except DataFileError as e:
        raise TrainerError(f"--data: {e}") from None
    try:
        i = nb.index_of(args.hash or cell.hash)
    except KeyError as e:
        if cell is None:
            raise TrainerError(f"--hash: {e.args[0]}") from None
        return cell, None  # a cell the file doesn't hold: trained without a reference
    cell = cell or cell_from_row(nb.adjacency[i], nb.operations[i], nb.num_vertices[i])
    return cell, nb101_record(nb, i)


def nb101_record(nb, i: int) -> dict:
    """NB101's record of row i: trainable_parameters and, per budget, each repeat's final values."""
    final = np.asarray(nb.metrics[i, :, :, 1, :], dtype=np.float64)  # [budget, repeat, METRICS]
    rec = {"row": int(i), "trainable_parameters": int(nb.trainable_parameters[i])}
    for b, epochs in enumerate(BUDGETS):
        rec[str(epochs)] = {m: [None if math.isnan(v) else v for v in final[b, :, j].tolist()]
                            for j, m in enumerate(METRICS)}  # fmt: skip
    return rec


# ----------------------------------------------------------------------------- data


class CIFAR10Batches(CIFAR10):
    """torchvision's CIFAR10 reader, checking that the batch files exist instead of their md5s.

    The md5s would reject subsets and re-encodings in the same on-disk format (and test fixtures);
    --download still goes through torchvision's own checked download first.
    """

    def _check_integrity(self) -> bool:
        files = [f for f, _ in self.train_list + self.test_list]
        return all((Path(self.root) / self.base_folder / f).exists() for f in files)

    def _load_meta(self) -> None:  # torchvision's, without the md5
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]


def load_cifar10(root: Path, download: bool = False) -> dict[str, np.ndarray]:
    """CIFAR-10 as uint8 NHWC images + int64 labels, split train / valid / test as NB101 does."""
    if download:
        CIFAR10(str(root), train=True, download=True)
    if (root / "cifar-10-batches-py").is_dir():
        train, test = CIFAR10Batches(str(root), train=True), CIFAR10Batches(str(root), train=False)
        x, y = np.asarray(train.data), np.asarray(train.targets, np.int64)
        n_valid = len(x) // 5  # five equal batches; NB101 validates on data_batch_5, the last fifth
        return {
            "train_x": x[:-n_valid], "train_y": y[:-n_valid], "valid_x": x[-n_valid:], "valid_y": y[-n_valid:],
            "test_x": np.asarray(test.data), "test_y": np.asarray(test.targets, np.int64),
        }  # fmt: skip
    if (root / "train").is_dir() and (root / "test").is_dir():
        return split_folder(decode_folders(root))
    raise TrainerError(
        f"no CIFAR-10 under --data-root {root}: expected either {root}/cifar-10-batches-py (torchvision's "
        f"CIFAR10; add --download when online) or an image-folder tree {root}/train/<class>/* + "
        f"{root}/test/<class>/* (e.g. tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C data/ "
        "and --data-root data/cifar10-jpeg)"
    )


def decode_folders(root: Path) -> dict[str, np.ndarray]:
    """Decode train/ and test/ with torchvision's ImageFolder once; cache as uint8 in root/CACHE_NAME."""
    sets = {s: ImageFolder(str(root / s)) for s in ("train", "test")}
    if sets["train"].classes != sets["test"].classes:
        raise TrainerError(f"{root}: train/ and test/ have different class folders")
    # Fingerprint: relative paths and sizes, so an edited tree never loads a stale cache.
    h = hashlib.sha1()
    for ds in sets.values():
        for path, label in ds.samples:
            h.update(f"{os.path.relpath(path, root)}:{os.path.getsize(path)}:{label}\n".encode())
    cache = root / CACHE_NAME
    if cache.exists():
        with np.load(cache) as f:
            if str(f["fingerprint"]) == h.hexdigest():
                return {k: f[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    out = {"fingerprint": np.array(h.hexdigest())}
    for s, ds in sets.items():
        x = np.empty((len(ds), 32, 32, 3), np.uint8)
        bar = tqdm(ds.samples, desc=f"decoding {s}/", mininterval=2, leave=False, disable=None)
        for i, (path, _) in enumerate(bar):
            img = np.asarray(ds.loader(path))
            if img.shape != (32, 32, 3):
                raise TrainerError(f"{path}: {img.shape} image, CIFAR-10 needs 32x32 RGB")
            x[i] = img
        out[f"{s}_x"], out[f"{s}_y"] = x, np.array(ds.targets, np.int64)
    try:
        save_npz_atomic(cache, out)
    except OSError as e:  # read-only data dir: works, just decodes again next time
        print(f"note: could not cache decoded images at {cache} ({e})")
    return {k: v for k, v in out.items() if k != "fingerprint"}


def split_folder(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validation = a fixed fifth of each class of train/ (1000/class for CIFAR-10), like data_batch_5."""
    rng, y = np.random.default_rng(0), d["train_y"]  # fixed: the split never depends on --seed
    valid = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: (y == c).sum() // 5] for c in np.unique(y)])
    is_valid = np.zeros(len(y), bool)
    is_valid[valid] = True
    return {
        "train_x": d["train_x"][~is_valid], "train_y": y[~is_valid],
        "valid_x": d["train_x"][is_valid], "valid_y": y[is_valid],
        "test_x": d["test_x"], "test_y": d["test_y"],
    }  # fmt: skip


def subset(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of n images (all if n is 0); the same for every seed and run."""
    if not n or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(0).permutation(len(x))[:n])
    return x[keep], y[keep]


def epoch_plan(seed: int, epoch: int, n: int, batch: int) -> np.ndarray:
    """[4, steps, batch] int64: image index, crop dy, crop dx, flip of each example of `epoch`.

    A pure function of (seed, epoch), so --resume replays the exact data and every DDP rank
    derives the same global batches. Like NB101's shuffle_and_repeat, a stream of fresh
    per-pass permutations is cut into batches across pass boundaries, and epoch e runs the
    steps e*n//batch .. (e+1)*n//batch - 1 (int(epochs * n / batch) steps in all, as NB101).
    """
    s0, s1 = epoch * n // batch, (epoch + 1) * n // batch
    p0, p1 = s0 * batch, s1 * batch
    if p1 == p0:
        return np.zeros((4, 0, batch), np.int64)
    passes = range(p0 // n, (p1 - 1) // n + 1)
    draws = []
    for k in passes:
        rng = np.random.default_rng([seed, k])
        draws.append(np.stack([rng.permutation(n), *rng.integers(0, 9, (2, n)), rng.integers(0, 2, n)]))
    stream = np.concatenate(draws, axis=1)[:, p0 - passes[0] * n : p1 - passes[0] * n]
    return stream.reshape(4, s1 - s0, batch)


def augment(padded: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """Random 32x32 crops of the zero-padded 40x40 uint8 NHWC images, flipped where plan[3]; one gather.

    Same as NB101's pad-4 (with 0 before normalisation), random_crop, random_flip_left_right.
    Returns uint8 [B,3,32,32] in channels_last memory layout.
    """
    idx, dy, dx, flip = plan
    ar = torch.arange(32, device=padded.device)
    rows = dy[:, None] + ar
    cols = dx[:, None] + torch.where(flip[:, None].bool(), 31 - ar, ar)  # flipping the crop = reading it backwards
    return padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalize(x_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x_u8.float() - mean) / std


# ----------------------------------------------------------------------------- model + optimiser


def init_like_tf(net: nn.Module) -> None:
    """NB101's initialisers: convs tf.variance_scaling_initializer() (fan-in, truncated normal),
    the dense layer glorot_uniform with zero bias; BatchNorm gamma 1, beta 0 as in torch."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated at ±2
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


# ----------------------------------------------------------------------------- loop pieces


def train_epoch(
    model: nn.Module,
    opt: TFRMSprop,
    params: list[torch.Tensor],
    padded: torch.Tensor,
    labels: torch.Tensor,
    plan: torch.Tensor,
    first_step: int,
    total_steps: int,
    args: argparse.Namespace,
    norm: tuple[torch.Tensor, torch.Tensor],
    rank_slice: slice,
    amp,
    desc: str = "",
    show: bool = True,
) -> torch.Tensor:
    """Run plan's steps; returns device tensor [ce loss sum, correct, images, non-finite steps] (local)."""
    model.train()
    stats = torch.zeros(4, dtype=sum_dtype(padded.device), device=padded.device)
    # disable=None: a bar on a terminal only, so logs and CI output stay clean
    bar = tqdm(range(plan.shape[1]), desc=desc, disable=None if show else True, leave=False, mininterval=1)
    for j in bar:
        batch = plan[:, j, rank_slice]
        x, y = normalize(augment(padded, batch), *norm), labels[batch[0]]
        opt.param_groups[0]["lr"] = lr_at(first_step + j, total_steps, args.lr)
        with amp:
            logits = model(x)
        ce = F.cross_entropy(logits.float(), y)
        # TF's loss += weight_decay * sum(tf.nn.l2_loss(v)), l2_loss = sum(v^2) / 2, over all
        # trainable variables (BatchNorm's too); one fused norm kernel over the list.
        loss = ce + 0.5 * args.weight_decay * torch.stack(torch._foreach_norm(params)).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            stats += torch.stack([ce * len(y), (logits.argmax(1) == y).sum(), ce.new_tensor(len(y)), ~loss.isfinite()])
        if show and j % 50 == 49:
            bar.set_postfix(loss=f"{stats[0].item() / stats[2].item():.3f}", lr=f"{opt.param_groups[0]['lr']:.4f}")
    return stats


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm, amp, batch: int) -> torch.Tensor:
    """[ce loss sum, correct, images] (local) of the unaugmented images x (uint8 NHWC)."""
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


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)

    # -- resume: the saved config wins, so the continuation is the same run
    ckpt = None
    if args.resume:
        path = Path(args.resume) / "ckpt.pt"
        if not path.exists():
            raise TrainerError(f"--resume {args.resume}: no ckpt.pt there")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cli = args
        args = argparse.Namespace(**ckpt["config"])
        args.resume, args.out, args.stop_after = cli.resume, cli.resume, cli.stop_after
        args.data_root = cli.data_root or args.data_root
    args.data_root = str(Path(args.data_root or "data").resolve())
    if args.epochs not in BUDGETS:
        print(f"note: --epochs {args.epochs} is not an NB101 budget {BUDGETS}")

    # -- devices and DDP (torchrun sets RANK / LOCAL_RANK / WORLD_SIZE)
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = pick_device(args.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if ddp:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    if args.batch_size % world:
        raise TrainerError(f"--batch-size {args.batch_size} must divide among {world} processes")
    use_bf16 = args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        return _run(args, ckpt, device, ddp, rank, world, master, amp)
    finally:
        if ddp:
            dist.destroy_process_group()


def _run(args, ckpt, device, ddp, rank, world, master, amp) -> dict:
    cell, record = select_cell(args)
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    args.out = str(out)
    if ckpt is None and (out / "ckpt.pt").exists():
        raise TrainerError(f"--out {out} already holds a run; continue it with --resume {out}")

    # -- data: decode once (rank 0 first, so only it writes the cache), then all of it onto the device
    if ddp and not master:
        dist.barrier()
    d = load_cifar10(Path(args.data_root), args.download and master)
    if ddp and master:
        dist.barrier()
    d["train_x"], d["train_y"] = subset(d["train_x"], d["train_y"], args.train_images)
    n_eval = {}
    for s in ("valid", "test"):  # each rank evaluates every world-th image; the sums are all-reduced
        x, y = subset(d[f"{s}_x"], d[f"{s}_y"], args.eval_images)
        d[f"{s}_x"], d[f"{s}_y"], n_eval[s] = x[rank::world], y[rank::world], len(x)
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in d.items()}
    padded = F.pad(t["train_x"], (0, 0, 4, 4, 4, 4))  # [N,40,40,3] zero border, as NB101 pads raw pixels
    norm = tuple(torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (RGB_MEAN, RGB_STD))
    n_train = len(padded)
    total_steps = args.epochs * n_train // args.batch_size
    if total_steps < 1:
        raise TrainerError(f"{args.epochs} epochs of {n_train} images is not one batch of {args.batch_size}")

    # -- model
    torch.manual_seed(args.seed)
    raw = build_network(cell, args.stem_channels, args.num_stacks, args.cells_per_stack, bn_momentum=args.bn_momentum)
    init_like_tf(raw)
    freeze_dummies(raw)
    n_params = count_parameters(raw)
    raw = raw.to(device, memory_format=torch.channels_last)
    params = [p for p in raw.parameters() if p.requires_grad]
    opt = TFRMSprop(params, lr=0.0, decay=args.rms_decay, momentum=args.momentum, eps=args.rms_eps)
    history, start_epoch, train_time, wall_time = [], 0, 0.0, 0.0
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        train_time, wall_time = ckpt["train_time"], ckpt["wall_time"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
    model = torch.compile(raw) if args.compile else raw
    eval_model = model
    if ddp:
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    local = args.batch_size // world
    rank_slice = slice(rank * local, (rank + 1) * local)  # this rank's share of every global batch
    if master:
        print(f"cell {cell.hash} {list(cell.ops)} | params {n_params:,} (NB101 trainable_parameters)")
        print(f"device {device} x{world} | {n_train} train / {n_eval['valid']} valid / {n_eval['test']} test"
              f" | {args.epochs} epochs = {total_steps} steps of {args.batch_size} | out {out}")  # fmt: skip

    def all_sum(x: torch.Tensor) -> torch.Tensor:
        if ddp:
            dist.all_reduce(x)
        return x

    def write_metrics(status: str) -> dict:
        m = {
            "status": status, "cell": cell.to_json(), "hash": cell.hash, "params": n_params,
            "config": vars(args), "device": str(device), "world_size": world,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "torch": torch.__version__, "nb101": record, "epochs": history,
            "final": history[-1] if history else None,
        }  # fmt: skip
        if master:
            write_atomic(out / "metrics.json", lambda f: f.write(json.dumps(m, indent=1)))
        return m

    # -- loop
    metrics = write_metrics("running")
    for epoch in range(start_epoch, args.epochs):
        if args.stop_after is not None and epoch - start_epoch >= args.stop_after:
            break
        t0 = time.perf_counter()
        plan = torch.from_numpy(epoch_plan(args.seed, epoch, n_train, args.batch_size)).to(device)
        first = epoch * n_train // args.batch_size
        stats = train_epoch(model, opt, params, padded, t["train_y"], plan, first, total_steps, args, norm,
                            rank_slice, amp, desc=f"epoch {epoch + 1}/{args.epochs}", show=master)  # fmt: skip
        stats = all_sum(stats)
        if stats[3].item() > 0:  # checked once per epoch: the checkpoint below is never a NaN state
            write_metrics("nan")
            last = f"{out / 'ckpt.pt'} (epoch {history[-1]['epoch']})" if history else "none (first epoch)"
            raise TrainerError(f"loss became NaN/inf in epoch {epoch + 1}; stopped. Last good checkpoint: {last}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt_train = time.perf_counter() - t0
        if ddp:  # rank 0's BatchNorm running stats for everyone, as the checkpoint holds rank 0's
            for b in raw.buffers():
                dist.broadcast(b, 0)
        ev = {s: all_sum(evaluate(eval_model, t[f"{s}_x"], t[f"{s}_y"], norm, amp, args.eval_batch_size))
              for s in ("valid", "test")}  # fmt: skip
        train_time += dt_train
        wall_time += time.perf_counter() - t0
        history.append({
            "epoch": epoch + 1, "step": first + plan.shape[1], "lr": opt.param_groups[0]["lr"],
            "train_loss": stats[0].item() / stats[2].item(), "train_acc": stats[1].item() / stats[2].item(),
            **{f"{s}_loss": v[0].item() / v[2].item() for s, v in ev.items()},
            **{f"{s}_acc": v[1].item() / v[2].item() for s, v in ev.items()},
            "epoch_time_s": time.perf_counter() - t0, "train_time_s": train_time, "wall_time_s": wall_time,
            "images_per_s": stats[2].item() / dt_train,
        })  # fmt: skip
        if master:
            h = history[-1]
            print(f"epoch {h['epoch']:3d} | train {h['train_loss']:.4f} {h['train_acc']:.4f} | valid "
                  f"{h['valid_loss']:.4f} {h['valid_acc']:.4f} | test {h['test_acc']:.4f} | "
                  f"{h['images_per_s']:,.0f} img/s")  # fmt: skip
            state = {
                "model": raw.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1, "config": vars(args),
                "cell": cell.to_json(), "history": history, "train_time": train_time, "wall_time": wall_time,
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            }  # fmt: skip
            write_atomic(out / "ckpt.pt", lambda f, s=state: torch.save(s, f), "wb")
        metrics = write_metrics("done" if epoch + 1 == args.epochs else "running")
    if master and record and history and history[-1]["epoch"] == args.epochs and str(args.epochs) in record:
        vals = [v for v in record[str(args.epochs)]["val"] if v is not None]
        if vals:
            print(f"valid acc after {args.epochs} epochs: ours {history[-1]['valid_acc']:.4f}, NB101 recorded "
                  f"{np.mean(vals):.4f} (mean of {len(vals)} repeat(s))")  # fmt: skip
    return metrics


if __name__ == "__main__":
    try:
        main()
    except (TrainerError, InvalidSpecError) as e:
        sys.exit(f"trainer.py: error: {e}")
