"""Train one NAS-Bench-101 cell on CIFAR-10 (or any image-folder dataset) with NB101's own protocol
(docs/trainer_protocol.md).

    python trainer.py --arch runs/search/top1.json --data-root data/cifar10-jpeg            # 108 epochs
    python trainer.py --hash <H> --data data/nasbench.hdf5 --data-root data --epochs 36     # + NB101's record
    python trainer.py --adjacency '[[0,1,1],[0,0,1],[0,0,0]]' --ops input,conv3x3-bn-relu,output \
        --data-root data/cifar10-jpeg --epochs 4 --stem-channels 16 --num-stacks 1 --cells-per-stack 1
    python trainer.py --resume runs/train-20250101-120000                       # continue exactly
    torchrun --standalone --nproc_per_node=8 trainer.py --arch top1.json --data-root data    # DDP

Data (--data-root): torchvision's CIFAR10 batches (`cifar-10-batches-py/`, fetched by --download),
or an image-folder tree `train/<class>/*` (+ optionally `test/<class>/*`) such as cifar10-jpeg.tar.gz
(CIFAR-10 as JPEGs) unpacked into data/, or a dataset of one's own (decoded once, cached beside it).
lib/training/images.py holds the data and its augmentation, lib/training/protocol.py NB101's initialisers,
optimiser, LR schedule and training steps. The network has one output per class of the data
(CIFAR-10's ten, or the tree's class folders, at least two). Any image-folder dataset:
- test/ is optional: without it the run reports no test accuracy (null in metrics.json, "-" printed).
- images of any size (28x28, 64x48, ...) but one size for the whole tree: a tree of mixed sizes is
  refused, naming a file of each size (resize them first). The network ends with a global average
  pool, so any size fits, down to 2**(num_stacks - 1) pixels a side (each stack after the first halves it).
- images are converted to RGB as torchvision's ImageFolder loader does: grayscale becomes three equal
  channels, an alpha channel is dropped.
- augmentation is NB101's: pad 4 with zeros, a random crop of the image's own size, a random flip.
- normalisation: NB101's CIFAR-10 mean and std for CIFAR-10 (its ten classes in 32x32 images, so those
  runs are NB101's), else the per-channel mean and std of the training images.
- validation is a fixed fifth of each class of train/ (numpy default_rng(0), whatever --seed), the last
  batch for cifar-10-batches-py.
metrics.json and ckpt.pt record all this under "data": the classes, the image counts, the image size,
"valid_split" (how validation was held out) and "normalization" (the mean and std used).

Checked before any training: every flag's range, the device, the cell, the data (readable images of
one size, no empty class folder), and that --out can be written and holds no other run or other files.
--resume continues the checkpoint's cell and settings; flags that contradict them (another cell,
--epochs, ...), a ckpt.pt that is not the run's, or data with other classes or images are refused
with a one-line diff. Only --data-root, --download, --device, --ddp-timeout and --stop-after may be
added to it.

Speed: the whole uint8 dataset lives on the device and crops/flips are one gather per batch;
channels_last (--no-channels-last), bf16 autocast on CUDA (--dtype), --compile [MODE] (reduce-overhead:
CUDA graphs), a large evaluation batch, and no wait for the device inside a step. The data order and
augmentation are a pure function of (seed, epoch), so --resume and DDP see exactly the same stream.
Writes <out>/ckpt.pt (atomic, every epoch), <out>/metrics.json (status running, done, failed or
interrupted) and <out>/curves.png. SIGINT / SIGTERM stop it cleanly: --resume <out> continues.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
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
from lib.training.images import (
    CIFAR10_CLASSES,
    ImageDataError,
    data_info,
    describe,
    epoch_plan,
    load_images,
    normalizer,
    pad_for_crops,
    subset,
)
from lib.training.protocol import (
    EpochSums,
    Images,
    Levers,
    TFRMSprop,
    eval_sums,
    freeze_dummies,
    init_like_tf,
    lr_at,
    streamline_cells,
    train_epoch,
)
from lib.training.report import nb101_record, params_line, plot_training_curves, summary_line
from lib.training.run_control import DDPError, Interrupted, agree, deferred_signals, start_ddp, stop_on_signals
from lib.util.checks import SEED, at_least, number, output_folder
from lib.util.devices import available_device
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error, first_line, one_line
from lib.util.outputs import write_atomic, write_json

EVAL = ("valid", "test")  # evaluated after every epoch
CELL_FLAGS = ("arch", "hash", "adjacency", "ops")
# What a resumed run may be told: where the data now is, how to run; everything else is the checkpoint's.
ON_RESUME = ("--data-root", "--download", "--device", "--ddp-timeout", "--stop-after")
SETTINGS = (  # what makes the run the run it is: a checkpoint is refused where these differ from its run's
    "stem_channels num_stacks cells_per_stack bn_momentum epochs batch_size lr momentum rms_decay rms_eps "
    "weight_decay train_images eval_images seed dtype channels_last"
).split()
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs


class TrainerError(UserError):
    """A user-facing failure: bad cell, missing data, NaN loss. Printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- config


def parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    cell = p.add_argument_group("cell (one of)")
    cell.add_argument("--arch", help="JSON file with adjacency, ops (and hash), e.g. search.py's top1.json")
    cell.add_argument("--hash", help="NB101 module hash, looked up in --data")
    cell.add_argument("--adjacency", help="JSON adjacency matrix, e.g. '[[0,1],[0,0]]'")
    cell.add_argument("--ops", help="comma-separated ops, e.g. input,output")
    cell.add_argument("--data", help="NB101 HDF5 (tools/nasbench_tfrecord_converter.py) for --hash and the record")
    net = p.add_argument_group("network")
    net.add_argument("--stem-channels", type=at_least(1), default=128)
    net.add_argument("--num-stacks", type=at_least(1), default=3)
    net.add_argument("--cells-per-stack", type=at_least(1), default=3)
    bn_help = "PyTorch BN momentum, 0 to 1; NB101's decay 0.997 is 0.003 (short reduced runs may raise it)"
    net.add_argument("--bn-momentum", type=number(low=0, high=1), default=0.003, help=bn_help)
    opt = p.add_argument_group("NB101 protocol (nasbench lib/config.py defaults)")
    opt.add_argument("--epochs", type=at_least(1), default=108, help="NB101 budgets: 4, 12, 36, 108")
    opt.add_argument("--batch-size", type=at_least(1), default=256, help="global batch, split across DDP ranks")
    opt.add_argument("--lr", type=number(above=0), default=0.2, help="0.1 x 2 TPU shards")
    opt.add_argument("--momentum", type=number(low=0, below=1), default=0.9)
    rms_help = "TF RMSPropOptimizer's default decay, 0 to 1"
    opt.add_argument("--rms-decay", type=number(low=0, high=1), default=0.9, help=rms_help)
    opt.add_argument("--rms-eps", type=number(above=0), default=1.0)
    opt.add_argument("--weight-decay", type=number(low=0), default=1e-4, help="L2 term in the loss")
    data = p.add_argument_group("data")
    data.add_argument("--data-root", help="dir with cifar-10-batches-py/ or train/ (+ test/) (default: data)")
    data.add_argument("--download", action="store_true", help="fetch torchvision's CIFAR10 into --data-root")
    data.add_argument("--train-images", type=at_least(0), default=0, help="train on a fixed subset (0 = all 40k)")
    data.add_argument("--eval-images", type=at_least(0), default=0, help="evaluate on fixed subsets (0 = all 10k)")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=SEED, default=0)
    run.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    run.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 on CUDA")
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="NHWC tensors")
    run.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=COMPILE_MODES,
        help="torch.compile the network "
        "(bare --compile: mode default; reduce-overhead adds CUDA graphs, max-autotune also tunes kernels)",
    )
    run.add_argument("--eval-batch-size", type=at_least(0), default=0, help="0: 2500 on CUDA, 500 elsewhere")
    timeout_help = "seconds DDP ranks wait for each other"
    run.add_argument("--ddp-timeout", type=number(above=0), default=600, help=timeout_help)
    run.add_argument("--out", help="run dir (default runs/train-<timestamp>)")
    resume_help = f"run dir to continue exactly; its saved config is used (flags may add only {', '.join(ON_RESUME)})"
    run.add_argument("--resume", help=resume_help)
    run.add_argument("--stop-after", type=at_least(1), default=None, help="stop after N epochs of this invocation")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def given_flags(argv: list[str] | None = None) -> dict:
    """The flags the command line gives, parsed, without the defaults of those it does not."""
    p = parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return vars(p.parse_args(argv))


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


def resumed_cell(args: argparse.Namespace, ckpt: dict) -> tuple[Cell, dict | None]:
    """The checkpoint's cell, whatever its --arch file holds today, and NB101's record of it from --data."""
    try:
        spec = {"adjacency": json.dumps(ckpt["cell"]["adjacency"]), "ops": ",".join(ckpt["cell"]["ops"])}
    except (KeyError, TypeError) as e:
        raise TrainerError(f"--resume {args.resume}: ckpt.pt holds no readable cell ({e!r})") from None
    return select_cell(argparse.Namespace(arch=None, hash=None, data=args.data, **spec))


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


class Network(NamedTuple):
    """The network in the forms the loop needs, and its optimiser."""

    raw: nn.Module  # the network itself: ckpt.pt holds its state
    model: nn.Module  # what trains: compiled and / or in DDP
    eval_model: nn.Module  # compiled, without DDP
    opt: TFRMSprop


@dataclass
class RunState:
    """What the run has done: ckpt.pt holds it, --resume starts from it, metrics.json reports it."""

    history: list[dict] = field(default_factory=list)  # one entry per epoch done
    checkpoint_epoch: int = 0  # the epoch ckpt.pt holds: what --resume continues from
    train_time: float = 0.0  # seconds, cumulative over invocations
    wall_time: float = 0.0


@dataclass(frozen=True)
class RunInfo:
    """What the run is: fixed once it starts."""

    args: argparse.Namespace  # the resolved config, saved in ckpt.pt and metrics.json
    out: Path
    cell: Cell
    record: dict | None  # NB101's, when --data holds the cell
    data: dict  # the data's classes and image counts (DeviceData.info), saved in ckpt.pt and metrics.json
    n_params: int
    levers: Levers
    place: Placement
    total_steps: int

    @property
    def device_name(self) -> str:
        device = self.place.device
        return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type

    @property
    def network(self) -> dict:
        a = self.args
        network = {"stem_channels": a.stem_channels, "num_stacks": a.num_stacks, "cells_per_stack": a.cells_per_stack}
        return network | {"num_classes": len(self.data["classes"])}

    @property
    def lever_report(self) -> dict:
        lv = self.levers
        report = {"dtype": "bf16" if lv.bf16 else "fp32", "channels_last": lv.channels_last}
        report |= {"compile": self.args.compile, "cuda_graphs": lv.cuda_graphs}
        return report | {"eval_batch_size": self.args.eval_batch_size}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args, ckpt = resolve_config(args, given_flags(argv) if args.resume else {})
    if args.epochs not in EPOCHS:
        print(f"note: --epochs {args.epochs} is not an NB101 budget {EPOCHS}")

    # -- devices and DDP (torchrun sets RANK / LOCAL_RANK / WORLD_SIZE); joining is bounded by --ddp-timeout
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
            return _run(args, ckpt, Placement(device, rank, world))
        finally:
            if ddp and dist.is_initialized():
                dist.destroy_process_group()


def resolve_config(args: argparse.Namespace, given: dict) -> tuple[argparse.Namespace, dict | None]:
    """With --resume the saved config wins (over today's defaults), so the continuation is the same run;
    `given` (the flags on the command line) may add only ON_RESUME, or repeat what the checkpoint says."""
    ckpt = None
    if args.resume:
        ckpt = load_run_checkpoint(Path(args.resume))
        refuse_contradictions(given, ckpt, args.resume)
        cli = args
        args = argparse.Namespace(**(vars(parse_args([])) | ckpt["config"]))
        args.resume, args.out, args.stop_after = cli.resume, cli.resume, cli.stop_after
        args.data_root = cli.data_root or args.data_root
        for flag in ("download", "device", "ddp_timeout"):
            if flag in given:
                setattr(args, flag, given[flag])
        args.compile = compile_mode(args.compile)
    args.data_root = str(Path(args.data_root or "data").resolve())
    return args, ckpt


def compile_mode(value):
    return {True: "default", False: None}.get(value, value)  # --compile was once a plain flag


def load_run_checkpoint(run: Path) -> dict:
    """<run>/ckpt.pt, refused (TrainerError) when it cannot be read, is not a trainer.py checkpoint, or
    belongs to another run than the one the folder's metrics.json records (its cell, its settings)."""
    path = run / "ckpt.pt"
    if not path.is_file():
        raise TrainerError(f"--resume {run}: no ckpt.pt there")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a cut or foreign file: pickle and torch raise many kinds
        raise TrainerError(
            f"--resume {run}: ckpt.pt cannot be read ({first_line(e)}); restore it, or start anew"
        ) from None
    needed = ("model", "optimizer", "epoch", "config", "cell", "history")
    missing = [k for k in needed if k not in ckpt] if isinstance(ckpt, dict) else list(needed)
    if missing:
        raise TrainerError(f"--resume {run}: ckpt.pt is not a trainer.py checkpoint (it has no {', '.join(missing)})")
    try:
        record = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return ckpt  # nothing to hold it against
    mine, theirs = ckpt["cell"].get("hash"), record.get("hash") if isinstance(record, dict) else None
    if theirs and mine != theirs:
        raise TrainerError(
            f"--resume {run}: ckpt.pt holds cell {mine[:12]}..., the run's metrics.json cell {theirs[:12]}... "
            "(the checkpoint belongs to another run; restore this run's ckpt.pt)"
        )
    config = record.get("config") or {}
    diffs = [
        f"{k} {ckpt['config'][k]} (metrics.json: {config[k]})"
        for k in SETTINGS
        if k in config and k in ckpt["config"] and config[k] != ckpt["config"][k]
    ]
    if diffs:
        raise TrainerError(
            f"--resume {run}: ckpt.pt's settings differ from the run's metrics.json: {'; '.join(diffs)} "
            "(the checkpoint belongs to another run; restore this run's ckpt.pt)"
        )
    return ckpt


def refuse_contradictions(given: dict, ckpt: dict, run: str) -> None:
    """TrainerError, one line listing them, for command-line flags that contradict the checkpoint: another
    cell, other settings, another --data or --out. Flags that repeat the checkpoint's values pass."""
    saved, diffs = ckpt["config"], []
    cell_flags = [k for k in CELL_FLAGS if k in given]
    if cell_flags:
        spec = {k: given.get(k) for k in CELL_FLAGS} | {"data": given.get("data") or saved.get("data")}
        cell, _ = select_cell(argparse.Namespace(**spec))
        if cell.hash != ckpt["cell"].get("hash"):
            flag = cell_flags[0]
            diffs.append(
                f"--{flag} {given[flag]}: cell {cell.hash[:12]}... differs from the checkpoint's "
                f"{ckpt['cell'].get('hash', '?')[:12]}..."
            )
    for flag, theirs in (("data", saved.get("data")), ("out", run)):
        if flag in given and (theirs is None or Path(given[flag]).resolve() != Path(theirs).resolve()):
            diffs.append(f"--{flag} {given[flag]} differs from the checkpoint's {theirs}")
    on_resume = {f[2:].replace("-", "_") for f in ON_RESUME} | {"resume"}
    for key, value in given.items():
        if key in on_resume or key in CELL_FLAGS or key in ("data", "out"):
            continue
        theirs = saved.get(key, parser().get_default(key))
        theirs = compile_mode(theirs) if key == "compile" else theirs
        if value != theirs:
            diffs.append(f"--{key.replace('_', '-')} {value} differs from the checkpoint's {theirs}")
    if diffs:
        raise TrainerError(
            f"--resume {run}: {'; '.join(diffs)} (drop them to continue the run as it was saved, or start a new "
            "run with another --out)"
        )


def _run(args: argparse.Namespace, ckpt: dict | None, place: Placement) -> dict:
    # -- the cell (a resumed run's is its checkpoint's), where the run goes, the data on the device
    cell, record = on_every_rank(lambda: select_cell(args) if ckpt is None else resumed_cell(args, ckpt), place.world)
    out = output_dir(args, resuming=ckpt is not None)
    theirs = ckpt.get("data") if ckpt is not None else None  # None: from before the data was recorded (CIFAR-10)
    # A checkpoint from before the normalisation was recorded was normalised with NB101's values: kept.
    data = load_to_device(args, place, nb101_norm=ckpt is not None and "normalization" not in (theirs or {}))
    if ckpt is not None:
        # What the checkpoint records must match (an older one records less: the rest is not held against it).
        if {k: data.info.get(k) for k in theirs} != theirs if theirs else len(data.info["classes"]) != 10:
            had = describe(theirs) if theirs else "CIFAR-10's 10 classes"
            raise TrainerError(
                f"--data-root {args.data_root}: {describe(data.info)}, the checkpoint's run had {had} (resume it "
                "with the data it started on)"
            )
    if record is not None and not is_cifar10_info(data.info):
        n, (h, w) = len(data.info["classes"]), data.info["image_size"]
        print(f"note: NB101's record is CIFAR-10's; not shown beside a run on {n} classes of {w}x{h} images")
        record = None
    steps = total_steps(args, len(data.train.x))
    check_image_size(args, data.info["image_size"])

    # -- the network (one output per class of the data), its optimiser and, with --resume, their saved state
    levers = choose_levers(args, place.device)
    raw, opt, n_params = new_network(args, cell, place.device, levers, len(data.info["classes"]))
    state = resume(ckpt, raw, opt, args.resume) if ckpt is not None else RunState()
    net = wrap(raw, opt, args, place)
    info = RunInfo(args, out, cell, record, data.info, n_params, levers, place, steps)
    announce(info, data)

    # -- the loop: every epoch's record, checkpoint and metrics.json written whole
    write_metrics(info, state, "running")
    try:
        for epoch in epochs_to_run(args, state.checkpoint_epoch):
            run_epoch(epoch, info, net, data, state)
    except Interrupted as e:
        with deferred_signals():
            write_metrics(info, state, "interrupted", signal=str(e))
        if place.master:
            saved = state.checkpoint_epoch
            where = f"from epoch {saved}" if saved else "from the start (no checkpoint yet)"
            print(f"interrupted by {e}; `python trainer.py --resume {out}` continues {where}", file=sys.stderr)
        raise
    except Exception as e:
        with deferred_signals():
            write_metrics(info, state, "failed", error=failure_line(e))
        raise

    # -- the report
    done = bool(state.history) and state.history[-1]["epoch"] == args.epochs
    metrics = write_metrics(info, state, "done" if done else "stopped")
    if place.master and state.history:
        print(summary_line(state.history[-1], record, args.epochs))
    return metrics


# ----------------------------------------------------------------------------- the steps of _run


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


def output_dir(args: argparse.Namespace, resuming: bool) -> Path:
    """--out (default runs/train-<timestamp>): a folder that can be written and holds no other run (unless
    this one continues it) nor files of anything else. TrainerError before any work otherwise."""
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    args.out = str(out)
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


def load_to_device(args: argparse.Namespace, place: Placement, nb101_norm: bool = False) -> DeviceData:
    """The data on the device, the training images padded for crops; normalised with NB101's CIFAR-10
    values when nb101_norm (a run resumed from before the normalisation was recorded).

    Rank 0 decodes first, so only it writes the cache; a rank that cannot read the data stops all
    of them. Each rank keeps every world-th valid and test image; the evaluation sums are all-reduced.
    """
    root, (device, rank, world) = Path(args.data_root), place
    first = on_every_rank(lambda: read_cifar10(root, args.download) if rank == 0 else None, world)  # writes the cache
    then = on_every_rank(lambda: None if rank == 0 else read_cifar10(root, False), world)
    d = first if rank == 0 else then
    info = data_info(d, nb101_norm)
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
    x, y = subset(d["train_x"], d["train_y"], args.train_images)
    train = Images(pad_for_crops(on_device(x)), on_device(y), norm)
    evals, n_eval = {}, {}
    for s in EVAL:
        x, y = subset(d[f"{s}_x"], d[f"{s}_y"], args.eval_images)
        evals[s], n_eval[s] = Images(on_device(x[rank::world]), on_device(y[rank::world]), norm), len(x)
    return DeviceData(train, evals, n_eval, info)


def is_cifar10_info(info: dict) -> bool:
    """CIFAR-10's ten classes in 32x32 images: data that NB101's record can stand beside."""
    return tuple(info["classes"]) == CIFAR10_CLASSES and list(info["image_size"]) == [32, 32]


def check_image_size(args: argparse.Namespace, image_size: list[int]) -> None:
    """Each stack after the first halves the image (a 2x2 max-pool): it must stay at least 1 pixel a side."""
    least = 2 ** (args.num_stacks - 1)
    if min(image_size) < least:
        h, w = image_size
        raise TrainerError(
            f"--data-root {args.data_root}: {w}x{h} images are too small for --num-stacks {args.num_stacks} "
            f"(each stack after the first halves them; {least}x{least} at least)"
        )


def read_cifar10(root: Path, download: bool) -> dict[str, np.ndarray]:
    try:
        return load_images(root, download)
    except ImageDataError as e:
        raise TrainerError(str(e)) from None


def total_steps(args: argparse.Namespace, n_train: int) -> int:
    steps = args.epochs * n_train // args.batch_size
    if steps < 1:
        raise TrainerError(f"{args.epochs} epochs of {n_train} images is not one batch of {args.batch_size}")
    return steps


def choose_levers(args: argparse.Namespace, device: torch.device) -> Levers:
    """The speed levers: bf16 autocast, memory layout, CUDA graphs (with --compile); also the evaluation batch."""
    args.eval_batch_size = args.eval_batch_size or (2500 if device.type == "cuda" else 500)
    bf16 = args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda")
    graphs = args.compile in GRAPH_MODES and device.type == "cuda"
    return Levers(bf16=bf16, channels_last=args.channels_last, cuda_graphs=graphs)


def new_network(
    args: argparse.Namespace, cell: Cell, device: torch.device, levers: Levers, num_classes: int = 10
) -> tuple[nn.Module, TFRMSprop, int]:
    """The network with NB101's initialisers (seeded by --seed), its optimiser, and its parameter count."""
    torch.manual_seed(args.seed)
    a = args
    raw = build_network(cell, a.stem_channels, a.num_stacks, a.cells_per_stack, num_classes, bn_momentum=a.bn_momentum)
    init_like_tf(raw)
    freeze_dummies(raw)
    streamline_cells(raw)  # one graph for torch.compile, same outputs
    n_params = count_parameters(raw)
    raw = raw.to(device, memory_format=levers.memory_format)
    params = [p for p in raw.parameters() if p.requires_grad]
    opt = TFRMSprop(params, lr=0.0, decay=args.rms_decay, momentum=args.momentum, eps=args.rms_eps)
    return raw, opt, n_params


def resume(ckpt: dict, raw: nn.Module, opt: TFRMSprop, run: str = "") -> RunState:
    """The network, optimiser and RNGs as ckpt.pt saved them, and what the run had done."""
    try:
        raw.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:  # weights of another network
        raise TrainerError(
            f"--resume {run}: ckpt.pt's weights do not fit the run's network ({first_line(e)})"
        ) from None
    torch.set_rng_state(ckpt["rng"]["torch"])
    np.random.set_state(ckpt["rng"]["numpy"])
    return RunState(ckpt["history"], ckpt["epoch"], ckpt["train_time"], ckpt["wall_time"])


def wrap(raw: nn.Module, opt: TFRMSprop, args: argparse.Namespace, place: Placement) -> Network:
    """The network as it trains: compiled with --compile, in DDP across ranks; and as it evaluates."""
    model = torch.compile(raw, mode=args.compile, dynamic=False) if args.compile else raw  # a graph per shape
    eval_model = model
    if place.world > 1:
        model = DDP(model, device_ids=[place.device.index] if place.device.type == "cuda" else None)
    return Network(raw, model, eval_model, opt)


def announce(info: RunInfo, data: DeviceData) -> None:
    if not info.place.master:
        return
    a, cell = info.args, info.cell
    print(f"cell {cell.hash} {list(cell.ops)} | {params_line(info.n_params, info.network, info.record)}")
    h, w = info.data["image_size"]
    print(
        f"device {info.place.device} x{info.place.world} ({info.device_name}) | {len(data.train.x)} train / "
        f"{data.n_eval['valid']} valid / {data.n_eval['test'] or 'no'} test images of {len(info.data['classes'])} "
        f"classes, {w}x{h} | {a.epochs} epochs = {info.total_steps} steps of {a.batch_size} | out {info.out}"
    )
    print("levers: " + ", ".join(f"{k} {v}" for k, v in info.lever_report.items()))


def epochs_to_run(args: argparse.Namespace, start: int) -> range:
    """From the checkpoint's epoch to --epochs, at most --stop-after of them."""
    return range(start, args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after))


def run_epoch(epoch: int, info: RunInfo, net: Network, data: DeviceData, state: RunState) -> None:
    """Train one epoch, evaluate, then record it in state, ckpt.pt and metrics.json (signals held back)."""
    args, (device, rank, world), t0 = info.args, info.place, time.perf_counter()
    n_train = len(data.train.x)
    plan = torch.from_numpy(epoch_plan(args.seed, epoch, n_train, args.batch_size)).to(device)
    first = epoch * n_train // args.batch_size
    lrs = [lr_at(s, info.total_steps, args.lr) for s in range(first, first + plan.shape[1])]
    local = args.batch_size // world  # this rank's share of every global batch
    mine = plan[:, :, rank * local : (rank + 1) * local]
    bar = f"epoch {epoch + 1}/{args.epochs}" if info.place.master else None
    sums = train_epoch(net.model, net.opt, args.weight_decay, data.train, mine, lrs, info.levers, bar)
    train = summed(sums, world)
    if train.nonfinite.item() > 0:  # checked once per epoch: the checkpoint below is never a NaN state
        saved = state.checkpoint_epoch
        last = f"{info.out / 'ckpt.pt'} (epoch {saved})" if saved else "none (first epoch)"
        raise TrainerError(f"loss became NaN/inf in epoch {epoch + 1}; stopped. Last good checkpoint: {last}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt_train = time.perf_counter() - t0
    if world > 1:  # rank 0's BatchNorm running stats for everyone, as the checkpoint holds rank 0's
        for b in net.raw.buffers():
            dist.broadcast(b, 0)
    bs = args.eval_batch_size
    present = [s for s in EVAL if data.n_eval[s]]  # every rank agrees: a split absent on one is absent on all
    evals = {s: summed(eval_sums(net.eval_model, data.evals[s], bs, info.levers), world) for s in present}
    with deferred_signals():
        state.train_time += dt_train
        state.wall_time += time.perf_counter() - t0
        h = {"epoch": epoch + 1, "step": first + plan.shape[1], "lr": lrs[-1] if lrs else 0.0}
        h |= {"train_loss": train.mean_loss(), "train_acc": train.accuracy()}
        h |= {f"{s}_loss": evals[s].mean_loss() if s in evals else None for s in EVAL}  # None: no such images
        h |= {f"{s}_acc": evals[s].accuracy() if s in evals else None for s in EVAL}
        h |= {"epoch_time_s": time.perf_counter() - t0, "train_time_s": state.train_time}
        h |= {"wall_time_s": state.wall_time}
        state.history.append(h | {"images_per_s": train.count.item() / dt_train})
        if info.place.master:
            print_epoch(state.history[-1])
            save_checkpoint(info, net, state, epoch + 1)
        state.checkpoint_epoch = epoch + 1
        write_metrics(info, state, "running")


def summed(sums: EpochSums, world: int) -> EpochSums:
    """The sums over all ranks (one all_reduce), or this rank's alone."""
    if world > 1:
        dist.all_reduce(sums.values)
    return sums


def print_epoch(h: dict) -> None:
    test = "-" if h["test_acc"] is None else f"{h['test_acc']:.4f}"  # "-": the data has no test images
    print(
        f"epoch {h['epoch']:3d} | train {h['train_loss']:.4f} {h['train_acc']:.4f} | valid "
        f"{h['valid_loss']:.4f} {h['valid_acc']:.4f} | test {test} | "
        f"{h['images_per_s']:,.0f} img/s"
    )


def save_checkpoint(info: RunInfo, net: Network, state: RunState, epoch: int) -> None:
    """<out>/ckpt.pt, atomically: what --resume needs to continue exactly after `epoch`."""
    ckpt = {"model": net.raw.state_dict(), "optimizer": net.opt.state_dict(), "epoch": epoch}
    ckpt |= {"config": vars(info.args), "cell": info.cell.to_json(), "data": info.data, "history": state.history}
    ckpt |= {"train_time": state.train_time, "wall_time": state.wall_time}
    ckpt["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    write_atomic(info.out / "ckpt.pt", lambda f: torch.save(ckpt, f), "wb")


def write_metrics(info: RunInfo, state: RunState, status: str, **extra) -> dict:
    """metrics.json as the run stands (and curves.png once it has ended with an epoch), written on rank 0."""
    history, record = state.history, info.record
    m = {"status": status, **extra, "cell": info.cell.to_json(), "hash": info.cell.hash, "params": info.n_params}
    m |= {"network": info.network, "data": info.data, "config": vars(info.args), "levers": info.lever_report}
    m |= {"checkpoint_epoch": state.checkpoint_epoch}
    m |= {"device": str(info.place.device), "world_size": info.place.world, "device_name": info.device_name}
    m |= {"torch": torch.__version__}
    labels = None if record is None else "SYNTHETIC (demo data)" if record["synthetic"] else "recorded"
    m |= {"nb101": record, "nb101_labels": labels, "epochs": history, "final": history[-1] if history else None}
    m["summary"] = summary_line(history[-1], record, info.args.epochs) if history else None
    if info.place.master:
        write_json(info.out / "metrics.json", m)
        if history and status != "running":
            epochs, name = info.args.epochs, info.device_name
            title = f"cell {info.cell.hash} | {info.n_params:,} params | {epochs}-epoch run on {name}"
            plot_training_curves(info.out / "curves.png", history, record, epochs, title)
    return m


if __name__ == "__main__":
    try:
        exit_on_user_error("trainer.py", main)
    except Interrupted as e:
        sys.exit(128 + e.signum)
