"""Search the NB101 space with a budget of queries: strategies compared on NB101's table, or with real training.

    python budgeted_search.py --budget 150 --data data/real20k.hdf5 --strategy re,ls,npenas,random --seeds 20
    python budgeted_search.py --budget 150 --random-repeat --data data/nasbench_only108.hdf5   # NB101's protocol
    python budgeted_search.py --budget-time 5e5 --data data/nasbench_full.hdf5 --strategy hyperband,re
    python budgeted_search.py --budget 100 --data-root data/my-images      # each query trains the cell
    python budgeted_search.py --budget 100 --data-root data/my-images --engine ray --concurrent 4 --scheduler asha
    python budgeted_search.py --resume runs/search-<time> --budget 150 --train    # continue, then train the pick

--strategy takes a comma-separated list of random, re, ls, bananas, npenas, guided, sh, hyperband
(docs/search.md); each runs --seeds times. The predictor strategies fit --model on every label after
each batch of --per-round cells, each fit continuing from the last (--prior: from a train.py checkpoint).

The table (--data FILE, default data/nasbench.hdf5): each query is answered by the file's recorded
accuracy and costs the cell's recorded training time; --budget QUERIES or --budget-time SECONDS
(simulated); --jobs searches side by side. Writes budget.json and curves_*.png into --out (default
runs/budget-<time>).

Real training (--data-root DIR: image folders train/<class>/*, or CIFAR-10): each query trains the cell
with trainer.py in a process of its own (a reduced network: the --trial-* flags); --budget TRIALS;
--engine local trains one trial at a time, ray several side by side on Ray Tune. A dry run first
checks what needs no training (the trials' and --train's trainer.py flags, the data against them,
--out, --address); a failed trial is then recorded and the search goes on. --resume continues a
killed search. Writes the trials, trials.jsonl, search_config.json, budget.json, curves_*.png and
top1.json into --out (default runs/search-<time>);
--train then trains the pick with trainer.py, with any flags after `--` (docs/real_search.md).
The keys of the outputs: docs/outputs.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from dataset import DEFAULT_DATA, TARGETS, load_nb101
from lib.nb101.schema import EPOCHS
from lib.nb101.space import NUM_CELLS, enumerate_space
from lib.search.ask_tell import Pool
from lib.search.ray_search import check_address, search_on_ray
from lib.search.report import budget_table, plot_search_curves
from lib.search.search_flags import (
    TRIAL_NAMES,
    SearchError,
    held_against_saved,
    pick_command,
    pick_flags,
    trainer_flags,
    trial_words,
)
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES
from lib.search.table import Table, compare, default_jobs
from lib.search.trial_search import TrialSearch, best_record, search_locally, trials_summary
from lib.search.trials import train_pick
from lib.training.command_line import check_fits, flag, outside_data
from lib.training.images import data_info, describe, load_images
from lib.util.checks import at_least, number, output_folder
from lib.util.devices import available_device, free_cores, usable_cores
from lib.util.errors import ArgumentParser, UserError, deferred_signals, exit_on_user_error, interrupted
from lib.util.outputs import write_json
from model import MODELS, Scorer, SearchTrainer, build_model, hyperparams, load_predictor

ROOT = Path(__file__).resolve().parent
DEFAULT_STRATEGY = "guided"  # the lowest regret at every budget measured (bench/README.md)
DEFAULTS = {
    "strategy": DEFAULT_STRATEGY, "device": "auto", "n0": 10, "per_round": 10, "model": "pgin", "target": "val",
    "engine": "local", "scheduler": "none", "max_failures": 2, "trial_epochs": 4, "trial_stem_channels": 16,
    "trial_stacks": 3, "trial_cells_per_stack": 1, "trial_train_images": 0, "trial_eval_images": 0, "trial_args": "",
}  # fmt: skip
TABLE_ONLY = ("data", "budget_time", "jobs", "random_repeat", "target")  # the flags of a search of --data's table
TRIALS_ONLY = (  # the flags of a search with real training
    "engine", "address", "concurrent", "scheduler", "max_failures", "resume", "train", "trial_epochs",
    "trial_stem_channels", "trial_stacks", "trial_cells_per_stack", "trial_train_images", "trial_eval_images",
    "trial_args",
)  # fmt: skip
RAY_ONLY = ("address", "concurrent", "scheduler", "max_failures")  # the flags of --engine ray
FITS_ONLY = ("model", "prior", "n0", "per_round", "epochs", "batch_size_train", "lr", "wd")  # of a predictor's fits
MAX_JOBS = 4 * usable_cores()  # searches side by side: each a process of its own; more only fill the memory
ON_RESUME = ("budget", "train", "engine", "address", "concurrent", "max_failures", "device", "threads", "data_root")


def parser(defaults: bool = True) -> ArgumentParser:
    """The flags. Without defaults a parse holds only the flags the command line gives (what --resume and
    the checks of the flags of the other kind of search hold against the rest)."""
    summary, examples, *_ = __doc__.split("\n\n")
    p = ArgumentParser(
        usage="%(prog)s (--data FILE | --data-root DIR) (--budget N | --budget-time S) [options]",
        description=f"{summary}\n\n{examples}",
        epilog="More in this script's docstring, docs/search.md and docs/real_search.md; outputs: docs/outputs.md.",
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=30),
        argument_default=None if defaults else argparse.SUPPRESS,
    )
    a = p.add_argument
    oracle = p.add_mutually_exclusive_group()
    oracle.add_argument("--data", metavar="FILE", help=f"NB101 HDF5 (default {DEFAULT_DATA})")
    oracle.add_argument("--data-root", metavar="DIR", help="images: each query trains the cell")
    a("--budget", type=at_least(1), metavar="N", help="queries (with --data-root, trials) a search")
    a("--budget-time", type=number(above=0), metavar="S", help="or simulated training seconds a search")
    a("--strategy", metavar="LIST", help=" ".join(STRATEGIES))
    a("--seeds", type=at_least(1), metavar="N", help="searches a strategy (10; 1 with --data-root)")
    a("--out", metavar="DIR", help="default runs/budget-<time> (or search-<time>)")
    a("--device", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    a("--threads", type=at_least(1), metavar="N", help="CPU threads (default: the free cores)")
    a("--n0", type=at_least(1), metavar="N", help="random cells before the first predictor")
    a("--per-round", type=at_least(1), metavar="N", help="cells after each fit (guided: then 5)")
    a("--model", choices=list(MODELS), help="of bananas, npenas, guided")
    a("--prior", metavar="CKPT", help="its train.py checkpoint: the first fit's start")
    a("--epochs", type=at_least(1), metavar="N", help="override the model's DEFAULTS (model.py)")
    a("--batch-size-train", dest="batch_size_train", type=at_least(1), metavar="N", help="override its batch")
    a("--lr", type=number(above=0), help="override its learning rate")
    a("--wd", type=number(low=0), help="override its weight decay")
    t = p.add_argument_group("a search of NB101's table (--data)").add_argument
    t("--target", choices=TARGETS, metavar="T", help="the label a query reads (train.py's)")
    t("--random-repeat", action="store_true", help="each query reads a random repeat (NB101's API)")
    t("--jobs", type=at_least(1, MAX_JOBS), metavar="N", help="searches side by side (docs/search.md)")
    r = p.add_argument_group("a search with real training (--data-root)").add_argument
    r("--engine", choices=("local", "ray"), help="a trial at a time, or on Ray Tune")
    r("--address", help="a Ray cluster: host:port, auto (default: local)")
    r("--concurrent", type=at_least(1), metavar="N", help="trials at once on Ray (default: GPUs/CPUs)")
    r("--scheduler", choices=("none", "asha"), help="asha: stop poor trials early")
    r("--max-failures", type=at_least(0), metavar="N", help="retries of a crashed trial on Ray")
    r("--resume", metavar="DIR", help="continue DIR's search (--budget may grow)")
    r("--train", action="store_true", help="then train the pick: trainer.py [-- ARGS]")
    r("--trial-epochs", type=at_least(1), metavar="N", help="epochs of a full (108-epoch) trial")
    r("--trial-stem-channels", type=at_least(1), metavar="N")
    r("--trial-stacks", type=at_least(1), metavar="N")
    r("--trial-cells-per-stack", type=at_least(1), metavar="N")
    r("--trial-train-images", type=at_least(0), metavar="N", help="a fixed subset (0: all)")
    r("--trial-eval-images", type=at_least(0), metavar="N", help="fixed validation subsets (0: all)")
    r("--trial-args", metavar="ARGS", help="more trainer.py flags: '--batch-size 128'")
    if defaults:
        p.set_defaults(**DEFAULTS)
    return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and whatever follows `--` (handed to trainer.py by --train). Every flag given counts as
    given, whatever its value (found with parser(defaults=False)); one that the search would ignore is refused."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = joined_trial_args(argv[: argv.index("--")] if "--" in argv else argv)
    args = parser().parse_args(ours)
    given = set(vars(parser(defaults=False).parse_args(ours))) - {"resume"}
    args.strategy = strategy_names(args.strategy)
    saved = saved_flags(Path(args.resume)) if args.resume else {}
    args = argparse.Namespace(**vars(args) | saved | {k: getattr(args, k) for k in given})
    if args.budget is None and args.budget_time is None:
        raise UserError("give a budget: --budget QUERIES or --budget-time SECONDS (with --data-root: --budget TRIALS)")
    unused = ignored(args, given | ({"resume"} if args.resume else set()))
    if unused:
        raise UserError(unused)
    if args.resume:
        held_against_saved(Path(args.resume), given, args, saved, ON_RESUME)
        args.out = args.resume
    if extra and not args.train:
        raise UserError(f"arguments after `--` ({' '.join(extra)}) are for trainer.py and need --train")
    args.threads = free_cores() if args.threads is None else args.threads
    args.seeds = args.seeds or (1 if args.data_root else 10)
    return args, extra


def joined_trial_args(argv: list[str]) -> list[str]:
    """argv with `--trial-args ARGS` as `--trial-args=ARGS`: argparse takes a value that starts with a dash
    for a flag of its own unless it holds a space (`--trial-args --compile` would be refused)."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == "--trial-args":
            out[i : i + 2] = [f"--trial-args={out[i + 1]}", None]
    return [a for a in out if a is not None]


def strategy_names(text: str) -> list[str]:
    """--strategy's comma-separated names: each a strategy's, each once."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise UserError(f"--strategy {','.join(unknown) or '(none)'}: choose from {','.join(STRATEGIES)}")
    twice = sorted({s for s in names if names.count(s) > 1})
    if twice:
        raise UserError(f"--strategy {text}: {', '.join(twice)} named twice (each strategy runs --seeds times)")
    return names


def ignored(args: argparse.Namespace, given: set[str]) -> str | None:
    """The message for the flags given that this search would ignore: those of the other kind of search, of
    Ray's engine without it, of a predictor's fits without a predictor strategy. None when there are none."""
    fits = FITS_ONLY + (("device", "threads") if not args.data_root else ("threads",) if args.engine == "ray" else ())
    table = "for a search of NB101's table (--data FILE); with --data-root each query is a training"
    rules = (
        (TABLE_ONLY, args.data_root, table),
        (TRIALS_ONLY, not args.data_root, "for a search with real training (--data-root DIR)"),
        (RAY_ONLY, args.engine != "ray", "for --engine ray (trials side by side on Ray Tune)"),
        (fits, not any(s in PREDICTOR_STRATEGIES for s in args.strategy),
         f"for a predictor's fits ({', '.join(PREDICTOR_STRATEGIES)}); --strategy {','.join(args.strategy)} fits none"),
    )  # fmt: skip
    for dests, applies, why in rules:
        named = [flag(k) for k in sorted(given & set(dests))]
        if applies and named:
            return f"{', '.join(named)}: {why}"
    return None


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    return search_with_training(args, extra) if args.data_root else search_with_table(args)


# ----------------------------------------------------------------------------- the table


def search_with_table(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    device = available_device(args.device)
    out = Path(args.out) if args.out else Path("runs") / f"budget-{time.strftime('%Y%m%d-%H%M%S')}"
    search_folder(out, "--out", "choose another --out")
    prior = load_prior(args, device) if args.prior else None
    data = load_nb101(args.data or DEFAULT_DATA)
    table = Table.from_arrays(data.by_epochs(args.target, every_repeat=args.random_repeat))
    if table.n < 2:
        raise SearchError(f"--data {data.path}: {table.n} cell(s) with a {args.target} label at 108 epochs to search")
    check_table_budget(args, table, data.path)
    table.check(args.strategy)
    hp = predictor_hyperparams(args)
    predictor = any(s in PREDICTOR_STRATEGIES for s in args.strategy)
    jobs = min(args.jobs or default_jobs(args.strategy, device), len(args.strategy) * args.seeds)
    train = predictor_trainer(args, device, args.threads if jobs == 1 else 1, prior) if predictor else None

    loop = dict(seeds=args.seeds, queries=args.budget, seconds=args.budget_time, n0=args.n0, per_round=args.per_round)
    runs, curves = compare(table, args.strategy, train=train, device=device, jobs=jobs, **loop)
    config = {"data": str(data.path), "fingerprint": data.fingerprint, "strategies": args.strategy, **loop}
    config |= {"model": args.model, "hp": hp, "target": args.target, "device": str(device), "threads": args.threads}
    config |= {"jobs": jobs}
    result = {"config": config, **runs, "seconds": time.perf_counter() - t0, "synthetic_labels": data.synthetic}

    title = f"{', '.join(args.strategy)} on {Path(data.path).name}"
    title = f"SYNTHETIC labels (demo data): {title}" if data.synthetic else title
    with deferred_signals():  # the plots, then budget.json (what says a search is there): all or none of them
        out.mkdir(parents=True, exist_ok=True)
        plots = plot_search_curves(out, curves, result["pool"]["best"]["val"], title)
        write_json(out / "budget.json", result)
    print(budget_table(result))
    if data.synthetic:
        print(f"SYNTHETIC labels: {data.path} is demo data; these accuracies are made up, not NB101's")
    short = unspent(args, result)
    if short:
        print(f"note: {short} of {len(args.strategy) * args.seeds} searches queried every cell they could before "
              f"their budget was spent (each search queries a cell once; budget.json has what each spent)")  # fmt: skip
    print(f"saved {out}/budget.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    return result


def check_table_budget(args: argparse.Namespace, table: Table, path: Path) -> None:
    """A budget the pool can fill, and that buys a query: never a search that would query a cell twice."""
    if args.budget is not None and args.budget > table.n:
        raise SearchError(f"--budget {args.budget}: more queries than the {table.n:,} labelled cells of {path}")
    if args.budget_time is not None:
        most = table.most_seconds()
        if args.budget_time > most:
            raise SearchError(
                f"--budget-time {args.budget_time:g}: more simulated seconds than querying all {table.n:,} cells of "
                f"{path} costs ({most:.4g} s at 108 epochs); give at most that"
            )
        first = EPOCHS if any(s in ("sh", "hyperband") for s in args.strategy) else EPOCHS[-1:]
        least = table.cheapest(first)
        if args.budget_time < least:
            raise SearchError(
                f"--budget-time {args.budget_time:g}: less than the cheapest query of {path} costs ({least:.4g} s); "
                "no query would end within it"
            )
    check_random_start(args)


def unspent(args: argparse.Namespace, result: dict) -> int:
    """The searches that ran out of cells before their budget was spent (lib.search.table.run_strategy)."""
    runs = [r for m in result["strategies"].values() for r in m["runs"]]
    if args.budget is not None:
        return sum(len(r["queried"]) < args.budget for r in runs)
    return sum(r["seconds"] < args.budget_time for r in runs)


# ----------------------------------------------------------------------------- real training


def search_with_training(args: argparse.Namespace, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    out, trial, pick = dry_run(args, extra)  # everything that can be known without training: one line, nothing written
    device = available_device(args.device)
    prior = load_prior(args, device) if args.prior else None
    images = check_images(args, trial, pick, out)
    predictor = [s for s in args.strategy if s in PREDICTOR_STRATEGIES]
    train = predictor_trainer(args, device, args.threads, prior) if predictor else None
    pool = Pool(enumerate_space(hashes=False), device)
    config = trials_config(args, images)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "search_config.json", config)  # --resume's flags (budget grown)
    what = f"{args.data_root} ({describe(images)})"
    print(f"searching {what}: {args.budget} trials per search, {args.engine} engine, trials in {out}/trials")

    records = {}  # {strategy: [each seed's trial records]}
    for name in args.strategy:
        for seed in range(args.seeds):
            kwargs = dict(train=train, n0=args.n0, per_round=args.per_round) if name in PREDICTOR_STRATEGIES else {}
            search = TrialSearch(
                name, seed, STRATEGIES[name](pool, seed, **kwargs), args.budget, trial_command(args, seed), out,
                args.trial_epochs, threads=args.threads if args.engine == "local" else 1,
            )  # fmt: skip
            try:
                records.setdefault(name, []).append(run_engine(args, search))
            except KeyboardInterrupt as e:
                raise interrupted(e, f"`python budgeted_search.py --resume {out}` continues it") from None
    summary, curves = trials_summary(records)
    result = {"config": config, **summary, "seconds": time.perf_counter() - t0, "synthetic_labels": False}
    top1 = best_trial(records)
    title = f"{', '.join(args.strategy)} on {what}"
    with deferred_signals():  # the search's results, all or none of them
        plots = plot_search_curves(out, curves, result["pool"]["best"]["val"], title, measured=True)
        write_json(out / "top1.json", top1)
        write_json(out / "budget.json", result)
    print(budget_table(result))
    print(f"best cell {top1['hash']}: val {100 * top1['val']:.2f}% (trial {top1['run_dir']})")
    print(f"saved {out}/budget.json, top1.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    if pick is not None:  # at trainer.py's defaults (108 epochs, the full network), into <out>/top1 unless told
        train_pick(pick_command(pick_trainer(args, out), extra, out))
    return result


def dry_run(args: argparse.Namespace, extra: list[str]) -> tuple[Path, argparse.Namespace, argparse.Namespace | None]:
    """The checks of a search with real training that need neither the data nor a trial: its folder, its
    budget, --address, and the command lines of its trials and of --train, parsed by trainer.py's own
    parser. Returns the folder and the two command lines parsed (None without --train)."""
    out = trials_folder(args)
    outside_data(out, "--resume" if args.resume else "--out", args.data_root)
    if args.budget > NUM_CELLS:
        raise SearchError(f"--budget {args.budget}: more trials than the {NUM_CELLS:,} cells of the NB101 space")
    check_random_start(args)
    if args.engine == "ray" and args.address:
        check_address(args.address)  # a one-line error within seconds, before any other work
    trial = trainer_flags(trial_command(args, seed=0))
    pick = pick_flags(pick_trainer(args, out), extra, out) if args.train else None
    if pick is not None and pick.data:
        try:
            load_nb101(pick.data)
        except UserError as e:  # it names the file
            raise SearchError(f"--train -- --data: {e}") from None
    return out, trial, pick


def check_random_start(args: argparse.Namespace) -> None:
    """A budget of queries beyond the predictor strategies' random start (else they are random search)."""
    predictor = [s for s in args.strategy if s in PREDICTOR_STRATEGIES]
    if predictor and args.budget is not None and args.budget <= args.n0:
        raise SearchError(
            f"--budget {args.budget}: {','.join(predictor)} trains --n0 {args.n0} random cells before its first "
            "predictor; give a larger --budget or a smaller --n0"
        )


def trials_folder(args: argparse.Namespace) -> Path:
    """--resume's folder, or --out (default runs/search-<time>) where no search is yet."""
    if args.resume:
        return output_folder(args.resume, "--resume", "its trials and budget.json are written there")
    out = Path(args.out) if args.out else Path("runs") / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "search_config.json").exists():
        raise SearchError(f"--out {out} holds a search already; continue it with --resume {out}")
    return search_folder(out, "--out", "choose another --out")


def search_folder(out: Path, what: str, hint: str) -> Path:
    """A folder that can be written and holds no search's results (budget.json): never written over."""
    output_folder(out, what)
    if (out / "budget.json").exists() or (out / "search_config.json").exists():
        raise SearchError(f"{what} {out} holds a search already; {hint}")
    return out


def check_images(
    args: argparse.Namespace, trial: argparse.Namespace, pick: argparse.Namespace | None, out: Path
) -> dict:
    """Read (and cache) the images once, before any trial: every trial then loads the decoded cache, and
    an empty folder, one class or an unreadable image stops the search here; so do trials (and the
    pick's training) that the data cannot hold. What the data is (lib.training.images.data_info), as
    search_config.json records it; a resumed search's must be the one it started on."""
    info = data_info(load_images(Path(args.data_root)))
    if args.resume:
        saved = json.loads((out / "search_config.json").read_text())["data"]
        if any(saved.get(k) != info[k] for k in ("classes", "images", "image_size")):
            raise SearchError(
                f"--data-root {args.data_root}: {describe(info)}, but the search in {out} started on "
                f"{describe(saved)}; resume it with the data it started on"
            )
    check_fits(argparse.Namespace(**vars(trial) | {"data_root": args.data_root}), info, TRIAL_NAMES)  # as typed
    if pick is not None:
        try:
            check_fits(pick, info)
        except UserError as e:
            raise SearchError(f"--train: {e}") from None
    return info


def trial_command(args: argparse.Namespace, seed: int) -> list[str]:
    """trainer.py and the flags of every trial (the engine adds the cell, --epochs and --out)."""
    root = str(Path(args.data_root).resolve())  # trials may run in another folder (a Ray worker)
    cmd = [sys.executable, str(ROOT / "trainer.py"), "--data-root", root, "--device", args.device]
    cmd += ["--stem-channels", str(args.trial_stem_channels), "--num-stacks", str(args.trial_stacks)]
    cmd += ["--cells-per-stack", str(args.trial_cells_per_stack), "--seed", str(seed)]
    cmd += ["--train-images", str(args.trial_train_images), "--eval-images", str(args.trial_eval_images)]
    return cmd + trial_words(args.trial_args)


def pick_trainer(args: argparse.Namespace, out: Path) -> list[str]:
    """trainer.py on the search's pick and data; --train's flags follow (lib.search.search_flags.pick_command):
    trainer.py's defaults (108 epochs, the full network) unless they say otherwise."""
    return [sys.executable, str(ROOT / "trainer.py"), "--arch", str(out / "top1.json"), "--data-root", args.data_root]


def run_engine(args: argparse.Namespace, search: TrialSearch) -> list[dict]:
    if args.engine == "local":
        return search_locally(search)
    scheduler = None if args.scheduler == "none" else args.scheduler
    return search_on_ray(
        search, address=args.address, scheduler=scheduler, concurrent=args.concurrent, max_failures=args.max_failures
    )


def best_trial(records: dict[str, list[list[dict]]]) -> dict:
    """top1.json: the cell with the best validation accuracy at the most epochs any search trained."""
    b = best_record([r for runs in records.values() for run in runs for r in run])
    if b is None:
        raise SearchError("every trial failed (their errors are above and in budget.json); nothing to pick")
    return {k: b[k] for k in ("adjacency", "ops", "hash", "val", "test", "epochs", "run_dir", "strategy", "seed")}


def trials_config(args: argparse.Namespace, images: dict) -> dict:
    """search_config.json: the flags (--resume starts from them) and what the data is."""
    keep = {k: v for k, v in vars(args).items() if k != "resume"}
    keep["data_root"] = str(Path(args.data_root).resolve())  # --resume may run from another folder
    data = {"root": str(args.data_root), **images}
    return {"data": data, "strategies": args.strategy, "budget": args.budget, "seeds": args.seeds, "argv": keep}


def saved_flags(folder: Path) -> dict:
    """The flags of the search in --resume's folder (search_config.json), those this parser knows."""
    try:
        saved = json.loads((folder / "search_config.json").read_text())["argv"]
    except (OSError, ValueError, KeyError, TypeError):
        if (folder / "budget.json").exists() and not (folder / "search_config.json").exists():
            raise UserError(
                f"--resume {folder}: a search of a table (budget.json), which runs again in seconds; only a search "
                "with --data-root is resumed"
            ) from None
        raise UserError(f"--resume {folder}: no search_config.json of a search with --data-root there") from None
    known = vars(parser().parse_args([]))
    return {k: v for k, v in saved.items() if k in known}


# ----------------------------------------------------------------------------- the predictor strategies


def predictor_hyperparams(args: argparse.Namespace) -> dict:
    return hyperparams(args.model, {**vars(args), "batch_size": args.batch_size_train})


def predictor_trainer(
    args: argparse.Namespace, device: torch.device, threads: int, prior: Scorer | None = None
) -> SearchTrainer:
    """The train(x, y, seed) the predictor strategies call every round (model.SearchTrainer), scoring
    on `threads` threads; with a prior (--prior, load_prior) its first fit continues from that
    checkpoint's weights, as later fits do from the last."""
    build_model(args.model).prepare()  # e.g. a first pgin pretraining (a minute) says so here, not in round 1
    return SearchTrainer(args.model, predictor_hyperparams(args), device=device, threads=threads, prior=prior)


def load_prior(args: argparse.Namespace, device: torch.device) -> Scorer:
    """--prior: a train.py checkpoint of --model, as the fit the first round continues from."""
    model, _ = load_predictor(args.prior, device, "--prior")
    if model.name != args.model:
        raise SearchError(
            f"--prior {args.prior}: a {model.name} predictor, but --model is {args.model} (give --model {model.name})"
        )
    return Scorer(model, args.threads)


if __name__ == "__main__":
    exit_on_user_error("budgeted_search.py", main)
