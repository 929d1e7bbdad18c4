"""ckpt.pt, what trainer.py saves after every epoch, and --resume, which continues a run exactly: the checkpoint
read and held against the run's metrics.json, the command line against its config, the data against its data.

    from lib.training.checkpoint import Progress, check_data, read_checkpoint, restore, resumed_config, save_checkpoint
    save_checkpoint(out / "ckpt.pt", epoch, net, opt, progress, config=vars(args), cell=cell.to_json(), data=info)
    ckpt = read_checkpoint(run)                          # ResumeError: absent, unreadable, not continuable
    config = resumed_config(ckpt, given, defaults, cell)  # its config; ResumeError for flags that contradict it
    check_data(ckpt, info, data_root)                    # ResumeError: data that is not the run's
    progress = restore(ckpt, net, opt, run)              # its weights, optimiser state and RNGs; what it had done

A checkpoint is continued only where it records all a run needs to continue exactly (CKPT_KEYS, the
data's DATA_KEYS, a readable cell, a compile mode that torch.compile knows); any other is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lib.nb101.cell import Cell
from lib.training.images import describe
from lib.training.protocol import COMPILE_MODES
from lib.util.errors import UserError, first_line
from lib.util.outputs import write_atomic

CKPT_KEYS = ("model", "optimizer", "epoch", "config", "cell", "data", "history", "train_time", "wall_time", "rng")
DATA_KEYS = ("classes", "images", "image_size", "valid_split", "normalization")  # lib.training.images.data_info's
CELL_FLAGS = ("arch", "hash", "adjacency", "ops")
# What a resumed run may be told: where the data now is, how to run; everything else is the checkpoint's.
MAY_CHANGE = ("data_root", "download", "device", "ddp_timeout", "stop_after")
SETTINGS = (  # what makes the run the run it is: a checkpoint is refused where these differ from its metrics.json's
    "stem_channels num_stacks cells_per_stack bn_momentum epochs batch_size lr momentum rms_decay rms_eps "
    "weight_decay train_images eval_images seed dtype channels_last"
).split()


class ResumeError(UserError):
    """--resume cannot continue the run: the message says why, and what to do."""


@dataclass
class Progress:
    """What the run has done: ckpt.pt holds it, --resume starts from it, metrics.json reports it."""

    history: list[dict] = field(default_factory=list)  # one entry per epoch done
    checkpoint_epoch: int = 0  # the epoch ckpt.pt holds: what --resume continues from
    train_time: float = 0.0  # seconds, cumulative over invocations
    wall_time: float = 0.0


def save_checkpoint(
    path: Path, epoch: int, raw: nn.Module, opt: torch.optim.Optimizer, progress: Progress, **run: dict
) -> None:
    """ckpt.pt, atomically: what --resume needs to continue exactly after `epoch`. run: the run's config, its
    cell (Cell.to_json) and its data (data_info)."""
    ckpt = {"model": raw.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
    ckpt |= {"config": run["config"], "cell": run["cell"], "data": run["data"], "history": progress.history}
    ckpt |= {"train_time": progress.train_time, "wall_time": progress.wall_time}
    ckpt["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    write_atomic(path, lambda f: torch.save(ckpt, f), "wb")


def read_checkpoint(run: Path) -> dict:
    """<run>/ckpt.pt, refused (ResumeError) when it cannot be read, is not a trainer.py checkpoint, records
    too little to be continued, or belongs to another run than the one the folder's metrics.json records."""
    path = run / "ckpt.pt"
    if not path.is_file():
        raise ResumeError(f"--resume {run}: no ckpt.pt there")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a cut or foreign file: pickle and torch raise many kinds
        raise ResumeError(
            f"--resume {run}: ckpt.pt cannot be read ({first_line(e)}); restore it, or start anew"
        ) from None
    missing = [k for k in CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(CKPT_KEYS)
    if missing:
        raise ResumeError(f"--resume {run}: ckpt.pt is not a trainer.py checkpoint (it has no {', '.join(missing)})")
    lacking = what_it_lacks(ckpt)
    if lacking:
        raise ResumeError(
            f"--resume {run}: ckpt.pt cannot be continued ({'; '.join(lacking)}); start a new run with another --out"
        )
    same_run_as_metrics(ckpt, run)
    return ckpt


def what_it_lacks(ckpt: dict) -> list[str]:
    """What a trainer.py checkpoint does not record that a run needs to continue exactly."""
    data, cell, config = ckpt["data"], ckpt["cell"], ckpt["config"]
    lacking = [f"no {k} of the data" for k in DATA_KEYS if not isinstance(data, dict) or k not in data]
    if not isinstance(cell, dict) or not {"adjacency", "ops", "hash"} <= cell.keys():
        lacking.append("no readable cell")
    if not isinstance(config, dict):
        lacking.append("no readable config")
    elif config.get("compile") not in (None, *COMPILE_MODES):
        lacking.append(f"compile {config['compile']!r} is not a mode of torch.compile")
    return lacking


def same_run_as_metrics(ckpt: dict, run: Path) -> None:
    """ResumeError when the folder's metrics.json records another cell or other settings than ckpt.pt:
    the checkpoint was copied from another run."""
    try:
        record = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return  # nothing to hold it against
    if not isinstance(record, dict):
        return
    mine, theirs = ckpt["cell"]["hash"], record.get("hash")
    if theirs and mine != theirs:
        raise ResumeError(
            f"--resume {run}: ckpt.pt holds cell {mine[:12]}..., the run's metrics.json cell {theirs[:12]}... "
            "(the checkpoint belongs to another run; restore this run's ckpt.pt)"
        )
    config, saved = record.get("config") or {}, ckpt["config"]
    diffs = [
        f"{k} {saved[k]} (metrics.json: {config[k]})" for k in SETTINGS if k in config and config[k] != saved.get(k)
    ]
    if diffs:
        raise ResumeError(
            f"--resume {run}: ckpt.pt's settings differ from the run's metrics.json: {'; '.join(diffs)} "
            "(the checkpoint belongs to another run; restore this run's ckpt.pt)"
        )


def resumed_config(ckpt: dict, given: dict, defaults: dict, given_cell: Cell | None = None) -> dict:
    """The config a resumed run continues with: the checkpoint's (over `defaults`, trainer.py's), and from
    `given` (the flags on the command line, given["resume"] the run) what MAY_CHANGE; --stop-after counts
    this invocation's epochs, so it is never the checkpoint's.

    ResumeError listing every given flag that contradicts the checkpoint: another cell (given_cell, the one
    the cell flags name), other settings, another --data or --out. Flags that repeat its values pass."""
    run, saved, diffs = given["resume"], defaults | ckpt["config"], []
    if given_cell is not None and given_cell.hash != ckpt["cell"]["hash"]:
        flag = next(k for k in CELL_FLAGS if k in given)
        diffs.append(
            f"--{flag} {given[flag]}: cell {given_cell.hash[:12]}... differs from the checkpoint's "
            f"{ckpt['cell']['hash'][:12]}..."
        )
    for key, theirs in (("data", saved.get("data")), ("out", run)):
        if key in given and (theirs is None or Path(given[key]).resolve() != Path(theirs).resolve()):
            diffs.append(f"--{key} {given[key]} differs from the checkpoint's {theirs}")
    for key, value in given.items():
        if key not in (*MAY_CHANGE, *CELL_FLAGS, "data", "out", "resume") and value != saved.get(key):
            diffs.append(f"--{key.replace('_', '-')} {value} differs from the checkpoint's {saved.get(key)}")
    if diffs:
        raise ResumeError(
            f"--resume {run}: {'; '.join(diffs)} (drop them to continue the run as it was saved, or start a new "
            "run with another --out)"
        )
    told = {k: given[k] for k in MAY_CHANGE if k in given}
    return saved | told | {"stop_after": given.get("stop_after"), "resume": run, "out": run}


def check_data(ckpt: dict, info: dict, data_root: str) -> None:
    """ResumeError when the data (lib.training.images.data_info's) is not the data the checkpoint's run had."""
    theirs = ckpt["data"]
    differ = [k for k in DATA_KEYS if info[k] != theirs[k]]
    if differ:
        raise ResumeError(
            f"--data-root {data_root}: {describe(info)}, the checkpoint's run had {describe(theirs)} (its "
            f"{', '.join(differ)} differ; resume it with the data it started on)"
        )


def restore(ckpt: dict, raw: nn.Module, opt: torch.optim.Optimizer, run: str) -> Progress:
    """The network, optimiser and RNGs as ckpt.pt saved them, and what the run had done."""
    try:
        raw.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:  # weights of another network
        raise ResumeError(f"--resume {run}: ckpt.pt's weights do not fit the run's network ({first_line(e)})") from None
    torch.set_rng_state(ckpt["rng"]["torch"])
    np.random.set_state(ckpt["rng"]["numpy"])
    return Progress(ckpt["history"], ckpt["epoch"], ckpt["train_time"], ckpt["wall_time"])
