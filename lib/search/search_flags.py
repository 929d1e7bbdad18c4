"""The flags of a search with real training that can be checked before its first trial: the trainer.py
flags of its trials (--trial-args) and of its pick (--train -- ARGS), parsed by trainer.py's own parser,
with the flags the search sets itself refused by name; and, on --resume, the flags given held against
those the search saved.

    from lib.search.search_flags import trial_words, pick_flags, held_against_saved
    words = trial_words(args.trial_args)                   # SearchError naming --trial-args for what it cannot hold
    pick = pick_flags(trainer, extra, out)                 # trainer.py's parse of --train's command line
    held_against_saved(folder, given, now, saved, may_change)   # SearchError naming each flag that differs

The commands themselves come from the caller (budgeted_search.py): lib/ knows no script.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from lib.training import command_line
from lib.training.command_line import flag, run_folder
from lib.util.devices import available_device
from lib.util.errors import UserError

# trainer.py's flags that the search sets for every trial (--trial-args cannot), and the search's flag that does
TRIAL_OWNED = {
    "data_root": "--data-root", "device": "--device", "seed": "--seeds: a trial's seed is its search's",
    "epochs": "--trial-epochs", "stop_after": "--trial-epochs", "stem_channels": "--trial-stem-channels",
    "num_stacks": "--trial-stacks", "cells_per_stack": "--trial-cells-per-stack",
    "train_images": "--trial-train-images", "eval_images": "--trial-eval-images",
    "out": "--out: each trial's folder is under it", "resume": "--resume",
    "download": "--data-root, read before any trial",
    **{k: "--strategy: a trial's cell is the one it asks for" for k in ("arch", "hash", "adjacency", "ops", "data")},
}  # fmt: skip
TRIAL_NAMES = {  # trainer.py's flags as a search's user sets them, for the messages about the data
    "num_stacks": "--trial-stacks", "train_images": "--trial-train-images", "eval_images": "--trial-eval-images",
    "batch_size": "--trial-args '--batch-size N'",
}  # fmt: skip
PICK_OWNED = ("arch", "hash", "adjacency", "ops", "resume", "data_root", "download")  # --train's: the search's
PATHS = ("data_root", "prior", "out")  # flags compared as the files they name (on --resume)


class SearchError(UserError):
    """A search that cannot go on for a reason the user can fix."""


def trainer_flags(command: list[str]) -> argparse.Namespace:
    """trainer.py's parse of `command` (python trainer.py and its flags), its defaults filled in."""
    return command_line.parser(add_help=False).parse_args(command[2:])


def given_flags(words: list[str], what: str) -> dict:
    """The trainer.py flags that `words` give (trainer.py's parser without defaults); SearchError naming
    `what` for what trainer.py would refuse."""
    try:
        return vars(command_line.parser(defaults=False, add_help=False).parse_args(words))
    except UserError as e:
        raise SearchError(f"{what}: trainer.py says: {e}") from None


def trial_words(trial_args: str) -> list[str]:
    """--trial-args split as a shell would, each flag one trainer.py takes and the search does not set
    itself: SearchError naming --trial-args otherwise (a quote left open, an unknown flag, a bad value)."""
    what = f"--trial-args {shown(trial_args)}"
    try:
        words = shlex.split(trial_args)
    except ValueError as e:
        raise SearchError(f"{what}: {e} (give trainer.py's flags as one argument: --trial-args '--lr 0.1')") from None
    owned = [k for k in given_flags(words, what) if k in TRIAL_OWNED]
    if owned:
        k = owned[0]
        raise SearchError(f"{what}: {flag(k)} is the search's own ({TRIAL_OWNED[k]}); drop it from --trial-args")
    return words


def pick_command(trainer: list[str], extra: list[str], out: Path) -> list[str]:
    """--train's command: `trainer` (python trainer.py --arch top1.json --data-root DIR) with the flags after
    `--` (`extra`), into <out>/top1 unless they say otherwise."""
    where = [] if "out" in given_flags(extra, pick_what(extra)) else ["--out", str(out / "top1")]
    return [*trainer, *where, *extra]


def pick_what(extra: list[str]) -> str:
    return f"--train -- {shlex.join(extra)}" if extra else "--train"


def pick_flags(trainer: list[str], extra: list[str], out: Path) -> argparse.Namespace:
    """--train's command line (pick_command) parsed by trainer.py's own parser, its device and folder
    checked: SearchError naming --train for what trainer.py would refuse."""
    what = pick_what(extra)
    owned = [k for k in given_flags(extra, what) if k in PICK_OWNED]
    if owned:
        raise SearchError(
            f"{what}: {flag(owned[0])} is the search's own (the pick is top1.json, on --data-root); drop it, or run "
            "trainer.py --arch OUT/top1.json yourself"
        )
    pick = trainer_flags(pick_command(trainer, extra, out))
    where = Path(pick.out).resolve()
    if where == out.resolve() or where in out.resolve().parents:
        raise SearchError(f"{what}: --out {pick.out} holds the search itself; give the pick a folder of its own")
    if (where / "ckpt.pt").exists():
        raise SearchError(
            f"{what}: {pick.out} holds a run already; give the pick another folder (-- --out DIR), or continue that "
            f"run: trainer.py --resume {pick.out}"
        )
    try:
        available_device(pick.device)
        run_folder(pick, resuming=False)
    except UserError as e:  # it names the flag
        raise SearchError(f"--train: {e}") from None
    return pick


# ----------------------------------------------------------------------------- --resume


def held_against_saved(
    folder: Path, given: set[str], now: argparse.Namespace, saved: dict, may_change: tuple[str, ...]
) -> None:
    """A flag given on --resume must say what the search saved, unless it may change (`may_change`: the
    budget may grow; how and where to run). SearchError naming each that differs, whatever its value:
    a flag given at its default counts as given."""
    differ = [
        f"{flag(k)} {shown(getattr(now, k))} differs from its {shown(folder if k == 'out' else saved.get(k))}"
        for k in sorted(given - set(may_change))
        if not same(k, getattr(now, k), saved.get(k), folder)
    ]
    if differ:
        raise SearchError(
            f"--resume {folder} continues its search with its own flags: {'; '.join(differ)} (drop them, or start a "
            "new search with another --out)"
        )
    if "budget" in given and now.budget < saved["budget"]:
        raise SearchError(
            f"--budget {now.budget}: {folder} was searched with --budget {saved['budget']}; a budget only grows"
        )


def same(dest: str, value, saved, folder: Path) -> bool:
    """Whether a flag given on --resume says what the search saved: paths as the files they name, --out as
    --resume's folder, --trial-args as the words they split into."""
    if dest == "out":
        return Path(value).resolve() == folder.resolve()
    if dest in PATHS:
        return saved is not None and Path(value).resolve() == Path(saved).resolve()
    if dest == "trial_args" and isinstance(saved, str):
        try:
            return shlex.split(value) == shlex.split(saved)
        except ValueError:
            return False
    return value == saved


def shown(value) -> str:
    """A flag's value as a shell takes it back: a list comma-separated, text quoted where it must be (in
    double quotes where it holds a single one: --trial-args "'--lr 0.1")."""
    if isinstance(value, list):
        return ",".join(value)
    if not isinstance(value, str):
        return str(value)
    if "'" in value and not any(c in value for c in '"$`\\!'):
        return f'"{value}"'
    return shlex.quote(value)
