"""trainer.py's command line: its parser and defaults, and the checks of its flags that need no training
(the run's folder, and the flags against what the data is). trainer.py runs them before its first
epoch; a search with real training runs them on its trials' command line and on --train's before its
first trial, so that a mistake costs one line, not a failed trial.

    from lib.training.command_line import parser, check_fits, run_folder
    args = parser().parse_args(argv)                          # trainer.py's flags, its defaults filled in
    given = vars(parser(defaults=False).parse_args(argv))     # only the flags the command line gives
    run_folder(args, resuming=False)                          # --out: a folder for a new run
    check_fits(args, info)                                    # the flags against lib.training.images.data_info

The messages name trainer.py's flags; a caller that sets them under other names passes those (`names`:
{"num_stacks": "--trial-stacks"}), so that the message names the flag its user typed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lib.training.checkpoint import MAY_CHANGE
from lib.training.protocol import COMPILE_MODES
from lib.util.checks import SEED, at_least, number, output_folder
from lib.util.errors import ArgumentParser, UserError

DEFAULTS = {  # NB101's network and protocol (nasbench lib/config.py), then the run's
    "stem_channels": 128, "num_stacks": 3, "cells_per_stack": 3, "bn_momentum": 0.003,
    "epochs": 108, "batch_size": 256, "lr": 0.2, "momentum": 0.9, "rms_decay": 0.9, "rms_eps": 1.0,
    "weight_decay": 1e-4, "data_root": "data", "train_images": 0, "eval_images": 0,
    "seed": 0, "device": "auto", "dtype": "auto", "channels_last": True, "eval_batch_size": 0, "ddp_timeout": 600,
}  # fmt: skip
EVAL = ("valid", "test")  # evaluated after every epoch


class TrainerError(UserError):
    """A user-facing failure: bad cell, missing data, NaN loss. Printed as one line, exit status 2."""


def parser(defaults: bool = True, description: str | None = None, add_help: bool = True) -> ArgumentParser:
    """trainer.py's flags. Without defaults a parse holds only the flags the command line gives (--resume
    holds them against the checkpoint; a search, its trials' flags against those it sets itself)."""
    usage = "%(prog)s (--arch FILE | --hash H --data FILE | --adjacency M --ops A,B,..) [options]\n"
    usage += "       %(prog)s --resume DIR [options]"
    suppress = None if defaults else argparse.SUPPRESS
    p = ArgumentParser(
        prog="trainer.py", usage=usage, description=description, argument_default=suppress, add_help=add_help
    )
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
    opt.add_argument("--epochs", type=at_least(1), metavar="N", help="108; NB101 trained 4, 12, 36 and 108")
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


def flag(dest: str) -> str:
    """A parser's destination as the flag is typed: num_stacks -> --num-stacks."""
    return "--" + dest.replace("_", "-")


# ----------------------------------------------------------------------------- checks before any work


def run_folder(args: argparse.Namespace, resuming: bool) -> Path:
    """--out (default runs/train-<timestamp>), or the run that --resume continues: a folder that can be written
    and holds no other run (unless this one continues it) nor files of anything else, outside --data-root.
    TrainerError otherwise."""
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    if resuming:
        output_folder(out, "--resume", "the run's checkpoint and metrics.json are rewritten there")
        return out
    if (out / "ckpt.pt").exists():
        raise TrainerError(f"--out {out} already holds a run; continue it with --resume {out}")
    output_folder(out, "--out")
    outside_data(out, "--out", args.data_root)
    ours = {"metrics.json", "curves.png"}  # what a run that failed before its first checkpoint leaves
    files = out.iterdir() if out.is_dir() else ()
    foreign = sorted(p.name for p in files if p.name not in ours and not p.name.endswith(".tmp"))
    if foreign:
        more = ", ..." if len(foreign) > 3 else ""
        raise TrainerError(
            f"--out {out} holds files of something else ({', '.join(foreign[:3])}{more}); choose another"
        )
    return out


DATA_FOLDERS = ("train", "test", "cifar-10-batches-py")  # what a --data-root holds that is read as data


def outside_data(out: Path | str, what: str, data_root: Path | str) -> None:
    """UserError when the folder `out` is --data-root or lies in its data (train/, test/, the batches): a run
    folder among the class folders would be read as a class, and its curves.png as an image, by every later
    run."""
    where, root = Path(out).resolve(), Path(data_root).resolve()
    inside = [root / name for name in DATA_FOLDERS if where == root / name or root / name in where.parents]
    if where == root or inside:
        place = f"in {inside[0].name}/ of --data-root" if inside else "the folder of --data-root"
        raise UserError(
            f"{what} {out}: {place} {data_root} (a folder there would be read as data); choose a folder outside it"
        )


def check_fits(args: argparse.Namespace, info: dict, names: dict[str, str] | None = None) -> None:
    """The flags against the data (lib.training.images.data_info): the image subsets within the data, the
    images large enough for the stacks, a batch within the training images. UserError naming the flag (by
    `names` where the caller gives it another name) and the data otherwise."""
    name = (names or {}).get
    for dest, splits in (("train_images", ["train"]), ("eval_images", [s for s in EVAL if info["images"][s]])):
        have, asked = min(info["images"][s] for s in splits), getattr(args, dest)
        if asked > have:
            raise TrainerError(
                f"{name(dest, flag(dest))} {asked}: the data holds {have} {'/'.join(splits)} images (0 takes them all)"
            )
    least = 2 ** (args.num_stacks - 1)  # each stack after the first halves the image (a 2x2 max-pool)
    if min(info["image_size"]) < least:
        (h, w), stacks = info["image_size"], name("num_stacks", "--num-stacks")
        raise TrainerError(
            f"--data-root {args.data_root}: {w}x{h} images are too small for {stacks} {args.num_stacks} "
            f"(each stack after the first halves them; {least}x{least} at least)"
        )
    n_train = args.train_images or info["images"]["train"]
    total_steps(args.epochs, n_train, args.batch_size, name("batch_size", "--batch-size"))


def total_steps(epochs: int, n_train: int, batch_size: int, batch_flag: str = "--batch-size") -> int:
    """The run's optimiser steps (NB101's int(epochs * n / batch)). TrainerError for a batch of more than the
    training images: an epoch would train no batch, and have no loss to report."""
    if batch_size > n_train:
        raise TrainerError(
            f"a batch of {batch_size} is more than the {n_train} training images ({batch_flag} sets it: at most "
            f"{n_train})"
        )
    return epochs * n_train // batch_size
