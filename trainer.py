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
and --out (a folder outside --data-root holding no other run). Every epoch writes <out>/ckpt.pt and
<out>/metrics.json (status running, then done, stopped, failed or interrupted); the end writes
<out>/curves.png. SIGINT / SIGTERM stop it cleanly, and --resume <out> continues it exactly: flags may
repeat the checkpoint's settings, or add --data-root, --download, --device, --ddp-timeout and --stop-after.

docs/trainer_protocol.md says how the protocol follows NB101's source, what the data may be (its
validation split, normalisation, image sizes), the speed settings, and what metrics.json and ckpt.pt
hold. The pieces are lib/training's: images and image_folders (the data), augment (its order and
augmentation on the device), protocol (NB101's steps), checkpoint (ckpt.pt and --resume), command_line
(the flags, and the checks of them that need no training), run_control (DDP start-up) and run_report
(NB101's record, the summary, curves.png).
"""

from __future__ import annotations

import argparse
import json
import os
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
from lib.training import command_line
from lib.training.augment import epoch_plan, normalizer, pad_for_crops
from lib.training.checkpoint import (
    CELL_FLAGS,
    Progress,
    check_data,
    read_checkpoint,
    restore,
    resumed_config,
    save_checkpoint,
)
from lib.training.command_line import EVAL, TrainerError, check_fits, run_folder, total_steps
from lib.training.images import ImageDataError, data_info, is_cifar10, load_images, subset
from lib.training.protocol import (
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
from lib.training.run_control import DDPError, agree, start_ddp
from lib.training.run_report import nb101_record, params_line, plot_training_curves, summary_line
from lib.util.devices import available_device
from lib.util.errors import ArgumentParser, UserError, deferred_signals, exit_on_user_error, interrupted, one_line
from lib.util.outputs import write_json

# ----------------------------------------------------------------------------- the command line


def parser(defaults: bool = True) -> ArgumentParser:
    """trainer.py's flags (lib.training.command_line); without defaults a parse holds only those given."""
    return command_line.parser(defaults, description=__doc__.split("\n\n")[0])


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
    check_fits(args, data.info)  # the image subsets, the images against the stacks, a batch at least
    if record is not None and not is_cifar10(data.info["classes"], data.info["image_size"]):
        n, (h, w) = len(data.info["classes"]), data.info["image_size"]
        print(f"note: NB101's record is CIFAR-10's; not shown beside a run on {n} classes of {w}x{h} images")
        record = None
    steps = total_steps(args.epochs, len(data.train.x), args.batch_size)

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
    except KeyboardInterrupt as e:  # SIGINT / SIGTERM (lib.util.errors): saved as interrupted, --resume continues
        saved = progress.checkpoint_epoch
        where = f"from epoch {saved}" if saved else "from the start (no checkpoint yet)"
        stop = interrupted(e, f"`python trainer.py --resume {out}` continues {where}")
        with deferred_signals():
            write_metrics(run, progress, "interrupted", signal=str(stop))
        raise stop from None
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
    exit_on_user_error("trainer.py", main)
