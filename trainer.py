"""Train one NAS-Bench-101 cell on CIFAR-10, or on any image-folder dataset, with NB101's own protocol.

    python trainer.py --arch runs/search/top1.json --data-root data/cifar10-jpeg            # 108 epochs
    python trainer.py --hash <H> --data data/nasbench.hdf5 --data-root data --epochs 36     # + NB101's record
    python trainer.py --adjacency '[[0,1,1],[0,0,1],[0,0,0]]' --ops input,conv3x3-bn-relu,output \
        --data-root data/cifar10-jpeg --epochs 4 --stem-channels 16 --num-stacks 1 --cells-per-stack 1
    python trainer.py --resume runs/train-20250101-120000                       # continue exactly
    torchrun --standalone --nproc_per_node=8 trainer.py --arch top1.json --data-root data    # DDP

--data-root holds torchvision's cifar-10-batches-py/ (--download fetches it) or an image-folder tree
train/<class>/* (+ optionally test/<class>/*), e.g. cifar10-jpeg.tar.gz unpacked into data/; the network
has one output per class. All is checked before any training: the flags, the device, the cell, the data
and --out (a folder holding no other run). Every epoch writes <out>/ckpt.pt and <out>/metrics.json (status
running, then done, stopped, failed or interrupted); the end writes <out>/curves.png. SIGINT / SIGTERM
stop it cleanly, and --resume <out> continues it exactly: flags may repeat the checkpoint's settings, or
add --data-root, --download, --device, --ddp-timeout and --stop-after.

docs/trainer_protocol.md says how the protocol follows NB101's source, what the data may be (its
validation split, normalisation, image sizes), the speed settings, and what metrics.json and ckpt.pt
hold. The pieces are lib/training's: images and image_folders (the data), augment (its order and
augmentation on the device), protocol (NB101's steps), checkpoint (ckpt.pt and --resume), run_control
(DDP start-up, signals) and report (NB101's record, the summary, curves.png).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from dataset import DataFileError, load_nb101
from lib.nb101.cell import Cell, InvalidSpecError, cell_from_row, make_cell
from lib.nb101.network import build_network, count_parameters
from lib.nb101.schema import EPOCHS
from lib.training.augment import epoch_plan, normalizer, pad_for_crops
from lib.training.checkpoint import (
    CELL_FLAGS,
    MAY_CHANGE,
    Progress,
    check_data,
    read_checkpoint,
    restore,
    resumed_config,
    save_checkpoint,
)
from lib.training.images import ImageDataError, data_info, is_cifar10, load_images, subset
from lib.training.protocol import (
    COMPILE_MODES,
    EpochSums,
    Images,
    SpeedSettings,
    TFRMSprop,
    eval_sums,
    freeze_dummies,
    init_like_tf,
    lr_at,
    streamline_cells,
    train_epoch,
)
from lib.training.run_control import DDPError, Interrupted, agree, deferred_signals, start_ddp, stop_on_signals
from lib.training.run_report import nb101_record, params_line, plot_training_curves, summary_line
from lib.util.checks import SEED, at_least, number, output_folder
from lib.util.devices import available_device
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error, one_line
from lib.util.outputs import write_json

EVAL = ("valid", "test")  # evaluated after every epoch
DEFAULTS = {  # NB101's network and protocol (nasbench lib/config.py), then the run's
    "stem_channels": 128, "num_stacks": 3, "cells_per_stack": 3, "bn_momentum": 0.003,
    "epochs": 108, "batch_size": 256, "lr": 0.2, "momentum": 0.9, "rms_decay": 0.9, "rms_eps": 1.0,
    "weight_decay": 1e-4, "data_root": "data", "train_images": 0, "eval_images": 0,
    "seed": 0, "device": "auto", "dtype": "auto", "channels_last": True, "eval_batch_size": 0, "ddp_timeout": 600,
}  # fmt: skip


class TrainerError(UserError):
    """A user-facing failure: bad cell, missing data, NaN loss. Printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- the command line


def parser(defaults: bool = True) -> ArgumentParser:
    """trainer.py's flags. Without defaults a parse holds only the flags the command line gives (--resume
    holds them against the checkpoint)."""
    usage = "%(prog)s (--arch FILE | --hash H --data FILE | --adjacency M --ops A,B,..) [options]\n"
    usage += "       %(prog)s --resume DIR [options]"
    suppress = None if defaults else argparse.SUPPRESS
    p = ArgumentParser(usage=usage, description=__doc__.split("\n\n")[0], argument_default=suppress)
    cell = p.add_argument_group("cell (one of)")
    cell.add_argument(
        "--arch", metavar="FILE", help="JSON file with adjacency, ops (and hash), e.g. search.py's top1.json"
    )
    cell.add_argument("--hash", metavar="H", help="NB101 module hash, looked up in --data")
    cell.add_argument("--adjacency", metavar="M", help="JSON adjacency matrix, e.g. '[[0,1],[0,0]]'")
    cell.add_argument("--ops", metavar="A,B,..", help="comma-separated ops, e.g. input,output")
    cell.add_argument(
        "--data", metavar="FILE", help="NB101 HDF5 (tools/nasbench_tfrecord_converter.py) for --hash and the record"
    )
    net = p.add_argument_group("network (NB101's by default)")
    net.add_argument("--stem-channels", type=at_least(1), metavar="N", help="128")
    net.add_argument("--num-stacks", type=at_least(1), metavar="N", help="3")
    net.add_argument("--cells-per-stack", type=at_least(1), metavar="N", help="3")
    net.add_argument(
        "--bn-momentum", type=number(low=0, high=1), metavar="X", help="0.003: NB101's decay 0.997, in PyTorch's terms"
    )
    opt = p.add_argument_group("protocol (NB101's by default: nasbench lib/config.py)")
    opt.add_argument("--epochs", type=at_least(1), metavar="N", help="108; NB101's budgets are 4, 12, 36, 108")
    opt.add_argument(
        "--batch-size", type=at_least(1), metavar="N", help="256, the global batch: split across DDP ranks"
    )
    opt.add_argument("--lr", type=number(above=0), metavar="X", help="0.2: 0.1 x 2 TPU shards")
    opt.add_argument("--momentum", type=number(low=0, below=1), metavar="X", help="0.9")
    opt.add_argument("--rms-decay", type=number(low=0, high=1), metavar="X", help="0.9, TF RMSProp's default decay")
    opt.add_argument("--rms-eps", type=number(above=0), metavar="X", help="1.0")
    opt.add_argument("--weight-decay", type=number(low=0), metavar="X", help="1e-4, of the L2 term in the loss")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-root", metavar="DIR", help="dir with cifar-10-batches-py/ or train/ (+ test/) (default: data)"
    )
    data.add_argument("--download", action="store_true", help="fetch torchvision's CIFAR10 into --data-root")
    data.add_argument("--train-images", type=at_least(0), metavar="N", help="train on a fixed subset (default 0: all)")
    data.add_argument("--eval-images", type=at_least(0), metavar="N", help="evaluate on fixed subsets (default 0: all)")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=SEED, metavar="N", help="0")
    run.add_argument("--device", metavar="D", help="auto (default: cuda > mps > cpu), cuda, mps, cpu")
    run.add_argument("--dtype", choices=["auto", "bf16", "fp32"], help="auto (default): bf16 on CUDA")
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC tensors (default)")
    compile_help = f"torch.compile the network, mode {', '.join(COMPILE_MODES)} (bare: default)"
    run.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE", help=compile_help)
    run.add_argument("--eval-batch-size", type=at_least(0), metavar="N", help="default 0: 2500 on CUDA, 500 elsewhere")
    run.add_argument(
        "--ddp-timeout", type=number(above=0), metavar="S", help="seconds DDP ranks wait for each other (600)"
    )
    run.add_argument("--out", metavar="DIR", help="run dir (default runs/train-<timestamp>)")
    may_change = ", ".join("--" + k.replace("_", "-") for k in MAY_CHANGE)
    run.add_argument(
        "--resume", metavar="DIR", help=f"run dir to continue exactly, as saved (flags may add {may_change})"
    )
    run.add_argument("--stop-after", type=at_least(1), metavar="N", help="stop after N epochs of this invocation")
    if defaults:
        p.set_defaults(**DEFAULTS)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def settings(argv: list[str] | None) -> tuple[argparse.Namespace, dict | None]:
    """The run's settings and, with --resume, its checkpoint, whose settings the run then continues with
    (lib.training.checkpoint.resumed_config: the command line may only repeat them, or change MAY_CHANGE)."""
    args, ckpt = parse_args(argv), None
    if args.resume:
        ckpt = read_checkpoint(Path(args.resume))
        given = vars(parser(defaults=False).parse_args(argv))
        args = argparse.Namespace(**resumed_config(ckpt, given, vars(parse_args([])), cell_named_by(given, ckpt)))
    return argparse.Namespace(**vars(args) | {"data_root": str(Path(args.data_root).resolve())}), ckpt


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args, ckpt = settings(argv)
    if args.epochs not in EPOCHS:
        print(f"note: --epochs {args.epochs} is not one of the epochs NB101 trained {EPOCHS}")

    # -- where it computes: torchrun sets RANK / LOCAL_RANK / WORLD_SIZE; joining is bounded by --ddp-timeout
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    if args.batch_size % world:
        raise TrainerError(f"--batch-size {args.batch_size}: not a multiple of the {world} DDP ranks")
    device = available_device(args.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    with stop_on_signals():  # SIGINT / SIGTERM: Interrupted, metrics.json says so, --resume continues
        if ddp:
            try:
                start_ddp("nccl" if device.type == "cuda" else "gloo", args.ddp_timeout, rank, world)
            except DDPError as e:
                raise TrainerError(str(e)) from None
        try:
            return train(args, ckpt, Placement(device, rank, world))
        finally:
            if ddp and dist.is_initialized():
                dist.destroy_process_group()


def train(args: argparse.Namespace, ckpt: dict | None, place: Placement) -> dict:
    """The run: its checks, the network, the epochs (each trained, evaluated, then recorded in ckpt.pt and
    metrics.json), the report. Returns metrics.json's content."""
    # -- checked before any work, on every rank (one rank's failure stops them all): the cell (a resumed
    # run's is its checkpoint's), the run's folder, the data (a resumed run's must be the one it started on)
    cell, record = on_every_rank(
        lambda: select_cell(args if ckpt is None else checkpoint_cell(args, ckpt)), place.world
    )
    out = run_folder(args, resuming=ckpt is not None)
    data = data_on_device(args, place)
    if ckpt is not None:
        check_data(ckpt, data.info, args.data_root)
    if record is not None and not is_cifar10(data.info["classes"], data.info["image_size"]):
        n, (h, w) = len(data.info["classes"]), data.info["image_size"]
        print(f"note: NB101's record is CIFAR-10's; not shown beside a run on {n} classes of {w}x{h} images")
        record = None
    steps = total_steps(args, len(data.train.x))
    check_image_size(args, data.info["image_size"])

    # -- the network (one output per class of the data), its optimiser and, resumed, their saved state
    speed = SpeedSettings.of(args.dtype, args.channels_last, args.compile, place.device)
    eval_batch = args.eval_batch_size or (2500 if place.device.type == "cuda" else 500)
    config = vars(args) | {"out": str(out), "eval_batch_size": eval_batch}  # as ckpt.pt and metrics.json record it
    raw, opt, n_params = new_network(args, cell, place.device, speed, len(data.info["classes"]))
    progress = restore(ckpt, raw, opt, args.resume) if ckpt is not None else Progress()
    model = torch.compile(raw, mode=args.compile, dynamic=False) if args.compile else raw  # a graph per shape
    eval_model = model  # without DDP: each rank evaluates its own share of the images
    if place.world > 1:
        model = DDP(model, device_ids=[place.device.index] if place.device.type == "cuda" else None)
    run = Run(config, out, cell, record, data.info, n_params, speed, place, steps)
    announce(run, data)

    # -- the epochs: this rank's share of every global batch, then all the evaluation images; each epoch's
    # record, checkpoint and metrics.json written whole
    write_metrics(run, progress, "running")
    local = args.batch_size // place.world
    last = args.epochs if args.stop_after is None else min(args.epochs, progress.checkpoint_epoch + args.stop_after)
    try:
        for epoch in range(progress.checkpoint_epoch, last):
            t0, n_train = time.perf_counter(), len(data.train.x)
            plan = torch.from_numpy(epoch_plan(args.seed, epoch, n_train, args.batch_size)).to(place.device)
            first = epoch * n_train // args.batch_size  # the run's step at the start of the epoch
            lrs = [lr_at(s, steps, args.lr) for s in range(first, first + plan.shape[1])]
            mine = plan[:, :, place.rank * local : (place.rank + 1) * local]
            bar = f"epoch {epoch + 1}/{args.epochs}" if place.master else None
            trained = summed(train_epoch(model, opt, args.weight_decay, data.train, mine, lrs, speed, bar), place)
            if trained.nonfinite.item() > 0:  # read once an epoch: the checkpoint below is never a NaN state
                saved = progress.checkpoint_epoch
                good = f"{out / 'ckpt.pt'} (epoch {saved})" if saved else "none (first epoch)"
                raise TrainerError(f"loss became NaN/inf in epoch {epoch + 1}; stopped. Last good checkpoint: {good}")
            if place.device.type == "cuda":
                torch.cuda.synchronize()
            train_s = time.perf_counter() - t0
            if place.world > 1:  # rank 0's BatchNorm running statistics for all, as the checkpoint holds rank 0's
                for b in raw.buffers():
                    dist.broadcast(b, 0)
            present = [s for s in EVAL if data.n_eval[s]]  # every rank agrees: a split absent on one is absent on all
            evals = {s: summed(eval_sums(eval_model, data.evals[s], eval_batch, speed), place) for s in present}
            with deferred_signals():
                progress.train_time += train_s
                progress.wall_time += time.perf_counter() - t0
                h = {"epoch": epoch + 1, "step": first + plan.shape[1], "lr": lrs[-1] if lrs else 0.0}
                h |= {"train_loss": trained.mean_loss(), "train_acc": trained.accuracy()}
                h |= {f"{s}_loss": evals[s].mean_loss() if s in evals else None for s in EVAL}  # None: no such images
                h |= {f"{s}_acc": evals[s].accuracy() if s in evals else None for s in EVAL}
                h |= {"epoch_time_s": time.perf_counter() - t0, "train_time_s": progress.train_time}
                h |= {"wall_time_s": progress.wall_time, "images_per_s": trained.count.item() / train_s}
                progress.history.append(h)
                if place.master:
                    print_epoch(progress.history[-1])
                    save_checkpoint(out / "ckpt.pt", epoch + 1, raw, opt, progress, **run.saved)
                progress.checkpoint_epoch = epoch + 1
                write_metrics(run, progress, "running")
    except Interrupted as e:
        with deferred_signals():
            write_metrics(run, progress, "interrupted", signal=str(e))
        if place.master:
            saved = progress.checkpoint_epoch
            where = f"from epoch {saved}" if saved else "from the start (no checkpoint yet)"
            print(f"interrupted by {e}; `python trainer.py --resume {out}` continues {where}", file=sys.stderr)
        raise
    except Exception as e:
        with deferred_signals():
            write_metrics(run, progress, "failed", error=failure_line(e))
        raise

    # -- the report
    done = bool(progress.history) and progress.history[-1]["epoch"] == args.epochs
    metrics = write_metrics(run, progress, "done" if done else "stopped")
    if place.master and progress.history:
        print(summary_line(progress.history[-1], record, args.epochs))
    return metrics


# ----------------------------------------------------------------------------- the cell


def select_cell(args: argparse.Namespace) -> tuple[Cell, dict | None]:
    """The cell to train and, when --data holds it, NB101's record for it. Raises TrainerError."""
    given = [k for k in ("arch", "hash", "adjacency") if getattr(args, k)]
    if len(given) != 1:
        raise TrainerError("give exactly one of --arch FILE, --hash H --data FILE, --adjacency M --ops A,B,..")
    try:
        if args.arch:
            try:
                spec = json.loads(Path(args.arch).read_text())
            except (OSError, json.JSONDecodeError, RecursionError, UnicodeDecodeError) as e:
                raise TrainerError(f"--arch {args.arch}: cannot read JSON ({e})") from None
            if not isinstance(spec, dict) or not {"adjacency", "ops"} <= spec.keys():
                raise TrainerError(f"--arch {args.arch}: expected a JSON object with keys adjacency, ops (and hash)")
            cell = Cell.from_json(spec)
        elif args.adjacency:
            if not args.ops:
                raise TrainerError("--adjacency needs --ops, e.g. --ops input,conv3x3-bn-relu,output")
            try:
                matrix = json.loads(args.adjacency)
            except (json.JSONDecodeError, RecursionError) as e:
                raise TrainerError(f"--adjacency is not JSON ({e})") from None
            cell = make_cell(matrix, args.ops.split(","))
        else:
            cell = None
    except (InvalidSpecError, ValueError, TypeError) as e:  # NB101 rejects it, or JSON of the wrong shape
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


def checkpoint_cell(args: argparse.Namespace, ckpt: dict) -> argparse.Namespace:
    """The flags that name the checkpoint's cell, whatever its --arch file holds today, and --data (the record)."""
    adjacency, ops = json.dumps(ckpt["cell"]["adjacency"]), ",".join(ckpt["cell"]["ops"])
    return argparse.Namespace(arch=None, hash=None, adjacency=adjacency, ops=ops, data=args.data)


def cell_named_by(given: dict, ckpt: dict) -> Cell | None:
    """The cell that the cell flags of a --resume command line name (None without any): --resume holds it
    against the checkpoint's."""
    if not any(k in given for k in CELL_FLAGS):
        return None
    flags = {k: given.get(k) for k in CELL_FLAGS} | {"data": given.get("data") or ckpt["config"].get("data")}
    return select_cell(argparse.Namespace(**flags))[0]


# ----------------------------------------------------------------------------- the run's parts


class Placement(NamedTuple):
    """Where this process computes: its device, its DDP rank and the number of ranks (1 without DDP)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0


class DeviceData(NamedTuple):
    """The data on the device: the training images (the same on every rank) and this rank's share of the
    valid and test images, with their full sizes; and what the data is (its classes, its image counts...)."""

    train: Images  # padded for crops
    evals: dict[str, Images]  # EVAL -> every world-th image, from this rank's offset
    n_eval: dict[str, int]  # EVAL -> images on all ranks; test is 0 for a tree without test/
    info: dict  # data_info's: classes, image counts before any subset, image size, valid_split, normalization


@dataclass(frozen=True)
class Run:
    """What the run is: fixed once it starts."""

    config: dict  # the settings, resolved: saved in ckpt.pt and metrics.json
    out: Path
    cell: Cell
    record: dict | None  # NB101's, when --data holds the cell
    data: dict  # what the data is (DeviceData.info), saved in ckpt.pt and metrics.json
    n_params: int
    speed: SpeedSettings
    place: Placement
    total_steps: int

    @property
    def saved(self) -> dict:
        """What ckpt.pt holds of the run, beside its state."""
        return {"config": self.config, "cell": self.cell.to_json(), "data": self.data}

    @property
    def device_name(self) -> str:
        device = self.place.device
        return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type

    @property
    def network(self) -> dict:
        network = {k: self.config[k] for k in ("stem_channels", "num_stacks", "cells_per_stack")}
        return network | {"num_classes": len(self.data["classes"])}

    @property
    def speed_report(self) -> dict:
        """The speed settings as metrics.json's "levers" records them."""
        report = {"dtype": "bf16" if self.speed.bf16 else "fp32", "channels_last": self.speed.channels_last}
        report |= {"compile": self.config["compile"], "cuda_graphs": self.speed.cuda_graphs}
        return report | {"eval_batch_size": self.config["eval_batch_size"]}


def on_every_rank(fn, world: int):
    """fn() on this rank; under DDP every rank then learns whether any rank failed, and all stop if so."""
    if world == 1:
        return fn()
    result, error = None, None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - passed to every rank, raised there as one line
        error = failure_line(e)
    try:
        agree(error, world)
    except DDPError as e:
        raise TrainerError(str(e)) from None
    return result


def failure_line(e: BaseException) -> str:
    """An error as one line for metrics.json and the other ranks: a user error's message, else its type too."""
    return (one_line(e) if isinstance(e, UserError) else f"{type(e).__name__}: {one_line(e)}")[:500]


def run_folder(args: argparse.Namespace, resuming: bool) -> Path:
    """--out (default runs/train-<timestamp>), or the run that --resume continues: a folder that can be written
    and holds no other run (unless this one continues it) nor files of anything else. TrainerError otherwise."""
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    if resuming:
        output_folder(out, "--resume", "the run's checkpoint and metrics.json are rewritten there")
        return out
    if (out / "ckpt.pt").exists():
        raise TrainerError(f"--out {out} already holds a run; continue it with --resume {out}")
    output_folder(out, "--out")
    ours = {"metrics.json", "curves.png"}  # what a run that failed before its first checkpoint leaves
    files = out.iterdir() if out.is_dir() else ()
    foreign = sorted(p.name for p in files if p.name not in ours and not p.name.endswith(".tmp"))
    if foreign:
        more = ", ..." if len(foreign) > 3 else ""
        raise TrainerError(
            f"--out {out} holds files of something else ({', '.join(foreign[:3])}{more}); choose another"
        )
    return out


def data_on_device(args: argparse.Namespace, place: Placement) -> DeviceData:
    """The data on the device, the training images padded for crops, and what it is (data_info).

    Rank 0 reads first, so that it alone writes the image cache, which the other ranks then read; a rank
    that cannot read the data stops them all. Each rank keeps every world-th valid and test image; the
    evaluation sums are all-reduced.
    """
    root, (device, rank, world) = Path(args.data_root), place
    arrays = on_every_rank(lambda: read_images(root, args.download) if rank == 0 else None, world)
    arrays = on_every_rank(lambda: arrays if rank == 0 else read_images(root, False), world)
    info = data_info(arrays)
    norm = normalizer(device, info["normalization"])

    def on_device(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    for s in ("train", "valid"):  # test may be absent (a tree without test/)
        if not info["images"][s]:
            why = " (valid holds a fifth of each class of train/: 5 images a class at least)" if s == "valid" else ""
            raise TrainerError(f"--data-root {root}: no {s} images{why}")
    for flag, n, splits in (
        ("--train-images", args.train_images, ["train"]),
        ("--eval-images", args.eval_images, [s for s in EVAL if info["images"][s]]),
    ):
        have = min(info["images"][s] for s in splits)
        if n > have:
            raise TrainerError(f"{flag} {n}: the data holds {have} {'/'.join(splits)} images (0 takes them all)")
    x, y = subset(arrays["train_x"], arrays["train_y"], args.train_images)
    train = Images(pad_for_crops(on_device(x)), on_device(y), norm)
    evals, n_eval = {}, {}
    for s in EVAL:
        x, y = subset(arrays[f"{s}_x"], arrays[f"{s}_y"], args.eval_images)
        evals[s], n_eval[s] = Images(on_device(x[rank::world]), on_device(y[rank::world]), norm), len(x)
    return DeviceData(train, evals, n_eval, info)


def read_images(root: Path, download: bool) -> dict[str, np.ndarray]:
    try:
        return load_images(root, download)
    except ImageDataError as e:
        raise TrainerError(str(e)) from None


def check_image_size(args: argparse.Namespace, image_size: list[int]) -> None:
    """Each stack after the first halves the image (a 2x2 max-pool): it must stay at least 1 pixel a side."""
    least = 2 ** (args.num_stacks - 1)
    if min(image_size) < least:
        h, w = image_size
        raise TrainerError(
            f"--data-root {args.data_root}: {w}x{h} images are too small for --num-stacks {args.num_stacks} "
            f"(each stack after the first halves them; {least}x{least} at least)"
        )


def total_steps(args: argparse.Namespace, n_train: int) -> int:
    steps = args.epochs * n_train // args.batch_size
    if steps < 1:
        raise TrainerError(f"{args.epochs} epochs of {n_train} images is not one batch of {args.batch_size}")
    return steps


def new_network(
    args: argparse.Namespace, cell: Cell, device: torch.device, speed: SpeedSettings, num_classes: int
) -> tuple[nn.Module, TFRMSprop, int]:
    """The network with NB101's initialisers (seeded by --seed), its optimiser, and its parameter count."""
    torch.manual_seed(args.seed)
    a = args
    raw = build_network(cell, a.stem_channels, a.num_stacks, a.cells_per_stack, num_classes, bn_momentum=a.bn_momentum)
    init_like_tf(raw)
    freeze_dummies(raw)
    streamline_cells(raw)  # one graph for torch.compile, same outputs
    n_params = count_parameters(raw)
    raw = raw.to(device, memory_format=speed.memory_format)
    params = [p for p in raw.parameters() if p.requires_grad]
    opt = TFRMSprop(params, lr=0.0, decay=args.rms_decay, momentum=args.momentum, eps=args.rms_eps)
    return raw, opt, n_params


def announce(run: Run, data: DeviceData) -> None:
    if not run.place.master:
        return
    a, cell, (h, w) = run.config, run.cell, run.data["image_size"]
    print(f"cell {cell.hash} {list(cell.ops)} | {params_line(run.n_params, run.network, run.record)}")
    print(
        f"device {run.place.device} x{run.place.world} ({run.device_name}) | {len(data.train.x)} train / "
        f"{data.n_eval['valid']} valid / {data.n_eval['test'] or 'no'} test images of {len(run.data['classes'])} "
        f"classes, {w}x{h} | {a['epochs']} epochs = {run.total_steps} steps of {a['batch_size']} | out {run.out}"
    )
    print("speed: " + ", ".join(f"{k} {v}" for k, v in run.speed_report.items()))


def summed(sums: EpochSums, place: Placement) -> EpochSums:
    """The sums over all ranks (one all_reduce), or this rank's alone."""
    if place.world > 1:
        dist.all_reduce(sums.values)
    return sums


def print_epoch(h: dict) -> None:
    test = "-" if h["test_acc"] is None else f"{h['test_acc']:.4f}"  # "-": the data has no test images
    print(
        f"epoch {h['epoch']:3d} | train {h['train_loss']:.4f} {h['train_acc']:.4f} | valid "
        f"{h['valid_loss']:.4f} {h['valid_acc']:.4f} | test {test} | "
        f"{h['images_per_s']:,.0f} img/s"
    )


def write_metrics(run: Run, progress: Progress, status: str, **extra) -> dict:
    """metrics.json as the run stands (and curves.png once it has ended with an epoch), written on rank 0."""
    history, record, epochs = progress.history, run.record, run.config["epochs"]
    m = {"status": status, **extra, "cell": run.cell.to_json(), "hash": run.cell.hash, "params": run.n_params}
    m |= {"network": run.network, "data": run.data, "config": run.config, "levers": run.speed_report}
    m |= {"checkpoint_epoch": progress.checkpoint_epoch}
    m |= {"device": str(run.place.device), "world_size": run.place.world, "device_name": run.device_name}
    m |= {"torch": torch.__version__}
    labels = None if record is None else "SYNTHETIC (demo data)" if record["synthetic"] else "recorded"
    m |= {"nb101": record, "nb101_labels": labels, "epochs": history, "final": history[-1] if history else None}
    m["summary"] = summary_line(history[-1], record, epochs) if history else None
    if run.place.master:
        write_json(run.out / "metrics.json", m)
        if history and status != "running":
            title = f"cell {run.cell.hash} | {run.n_params:,} params | {epochs}-epoch run on {run.device_name}"
            plot_training_curves(run.out / "curves.png", history, record, epochs, title)
    return m


if __name__ == "__main__":
    try:
        exit_on_user_error("trainer.py", main)
    except Interrupted as e:
        sys.exit(128 + e.signum)
