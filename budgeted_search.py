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
--engine local trains one trial at a time, ray several side by side on Ray Tune. A failed trial is
recorded and the search goes on. --resume continues a killed search. Writes the trials, trials.jsonl,
search_config.json, budget.json, curves_*.png and top1.json into --out (default runs/search-<time>);
--train then trains the pick with trainer.py, with any flags after `--` (docs/real_search.md).
The keys of the outputs: docs/outputs.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from dataset import DEFAULT_DATA, TARGETS, load_nb101
from lib.nb101.space import enumerate_space
from lib.search.ask_tell import Pool
from lib.search.ray_search import check_reachable, search_on_ray
from lib.search.report import budget_table, plot_search_curves
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES
from lib.search.table import Table, compare, default_jobs
from lib.search.trial_search import TrialSearch, best_record, search_locally, trials_summary
from lib.search.trials import train_pick
from lib.training.images import ImageDataError, data_info, describe, load_images
from lib.util.checks import at_least, number, output_folder
from lib.util.devices import available_device, free_cores
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error
from lib.util.outputs import write_json
from model import MODELS, Scorer, SearchTrainer, build_model, hyperparams, load_predictor

ROOT = Path(__file__).resolve().parent
DEFAULT_STRATEGY = "guided"  # the lowest regret at every budget measured (bench/README.md)
TABLE_ONLY = ("budget_time", "jobs", "random_repeat", "target")  # the flags of a search of --data's table
TRIALS_ONLY = (  # the flags of a search with real training
    "engine", "address", "concurrent", "scheduler", "max_failures", "resume", "train", "trial_epochs",
    "trial_stem_channels", "trial_stacks", "trial_cells_per_stack", "trial_train_images", "trial_eval_images",
    "trial_args",
)  # fmt: skip
ON_RESUME = ("budget", "train", "engine", "address", "concurrent", "max_failures", "device", "threads")  # may change


class SearchError(UserError):
    """A search that cannot go on for a reason the user can fix."""


def parser() -> ArgumentParser:
    summary, examples, *_ = __doc__.split("\n\n")
    p = ArgumentParser(
        usage="%(prog)s (--data FILE | --data-root DIR) (--budget N | --budget-time S) [options]",
        description=f"{summary}\n\n{examples}",
        epilog="More in this script's docstring, docs/search.md and docs/real_search.md; outputs: docs/outputs.md.",
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=30),
    )
    a = p.add_argument
    oracle = p.add_mutually_exclusive_group()
    oracle.add_argument("--data", metavar="FILE", help=f"NB101 HDF5 (default {DEFAULT_DATA})")
    oracle.add_argument("--data-root", metavar="DIR", help="images: each query trains the cell")
    a("--budget", type=at_least(1), metavar="N", help="queries (with --data-root, trials) a search")
    a("--budget-time", type=number(above=0), metavar="S", help="or simulated training seconds a search")
    a("--strategy", default=DEFAULT_STRATEGY, metavar="LIST", help=" ".join(STRATEGIES))
    a("--seeds", type=at_least(1), metavar="N", help="searches a strategy (10; 1 with --data-root)")
    a("--out", metavar="DIR", help="default runs/budget-<time> (or search-<time>)")
    a("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    a("--threads", type=at_least(1), metavar="N", help="CPU threads (default: the free cores)")
    a("--n0", type=at_least(1), default=10, metavar="N", help="random cells before the first predictor")
    a("--per-round", type=at_least(1), default=10, metavar="N", help="cells after each fit (guided: then 5)")
    a("--model", default="pgin", choices=list(MODELS), help="of bananas, npenas, guided")
    a("--prior", metavar="CKPT", help="its train.py checkpoint: the first fit's start")
    a("--epochs", type=at_least(1), metavar="N", help="override the model's DEFAULTS (model.py)")
    a("--batch-size-train", dest="batch_size_train", type=at_least(1), metavar="N", help="override its batch")
    a("--lr", type=number(above=0), help="override its learning rate")
    a("--wd", type=number(low=0), help="override its weight decay")
    t = p.add_argument_group("a search of NB101's table (--data)").add_argument
    t("--target", default="val", choices=TARGETS, metavar="T", help="the label a query reads (train.py's)")
    t("--random-repeat", action="store_true", help="each query reads a random repeat (NB101's API)")
    t("--jobs", type=at_least(1), metavar="N", help="searches side by side (docs/search.md)")
    r = p.add_argument_group("a search with real training (--data-root)").add_argument
    r("--engine", default="local", choices=("local", "ray"), help="a trial at a time, or on Ray Tune")
    r("--address", help="a running Ray cluster (default: a local one)")
    r("--concurrent", type=at_least(1), metavar="N", help="trials at once on Ray (default: GPUs/CPUs)")
    r("--scheduler", default="none", choices=("none", "asha"), help="asha: stop poor trials early")
    r("--max-failures", type=at_least(0), default=2, metavar="N", help="retries of a crashed trial on Ray")
    r("--resume", metavar="DIR", help="continue DIR's search (--budget may grow)")
    r("--train", action="store_true", help="then train the pick: trainer.py [-- ARGS]")
    r("--trial-epochs", type=at_least(1), default=4, metavar="N", help="epochs of a full (108-epoch) trial")
    r("--trial-stem-channels", type=at_least(1), default=16, metavar="N")
    r("--trial-stacks", type=at_least(1), default=3, metavar="N")
    r("--trial-cells-per-stack", type=at_least(1), default=1, metavar="N")
    r("--trial-train-images", type=at_least(0), default=0, metavar="N", help="a fixed subset (0: all)")
    r("--trial-eval-images", type=at_least(0), default=0, metavar="N", help="fixed validation subsets (0: all)")
    r("--trial-args", default="", metavar="ARGS", help="more trainer.py flags: '--batch-size 128'")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and whatever follows `--` (handed to trainer.py by --train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    p = parser()
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.resume:
        args = resumed_args(p, args)
    if args.data_root and (flags := given(p, args, TABLE_ONLY)):
        p.error(f"{flags}: for a search of NB101's table (--data FILE); with --data-root each query is a training")
    if not args.data_root and (flags := given(p, args, TRIALS_ONLY)):
        p.error(f"{flags}: for a search with real training (--data-root DIR)")
    if args.budget is None and args.budget_time is None:
        p.error("give a budget: --budget QUERIES or --budget-time SECONDS (with --data-root: --budget TRIALS)")
    ray_only = [f for f, v in (("--address", args.address), ("--concurrent", args.concurrent)) if v is not None]
    ray_only += ["--scheduler asha"] if args.scheduler != "none" else []
    if ray_only and args.engine != "ray":
        p.error(f"{', '.join(ray_only)}: for --engine ray (trials side by side on Ray Tune)")
    if extra and not args.train:
        p.error(f"arguments after `--` ({' '.join(extra)}) are for trainer.py and need --train")
    args.strategy = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in args.strategy if s not in STRATEGIES]
    if unknown or not args.strategy:
        p.error(f"--strategy {','.join(unknown) or '(none)'}: choose from {','.join(STRATEGIES)}")
    args.threads = free_cores() if args.threads is None else args.threads
    args.seeds = args.seeds or (1 if args.data_root else 10)
    return args, extra


def given(p: ArgumentParser, args: argparse.Namespace, dests: tuple[str, ...]) -> str:
    """Those of the flags `dests` that are given (not at their default), as they are typed."""
    return ", ".join("--" + k.replace("_", "-") for k in sorted(dests) if getattr(args, k) != p.get_default(k))


def main(argv: list[str] | None = None) -> dict:
    args, extra = parse_args(argv)
    return search_with_training(args, extra) if args.data_root else search_with_table(args)


# ----------------------------------------------------------------------------- the table


def search_with_table(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    device = available_device(args.device)
    out = output_folder(args.out, "--out") if args.out else Path("runs") / f"budget-{time.strftime('%Y%m%d-%H%M%S')}"
    data = load_nb101(args.data or DEFAULT_DATA)
    table = Table.from_arrays(data.by_epochs(args.target, every_repeat=args.random_repeat))
    if table.n < 2:
        raise SearchError(f"--data {data.path}: {table.n} cell(s) with a {args.target} label at 108 epochs to search")
    if args.budget is not None and args.budget > table.n:
        raise SearchError(f"--budget {args.budget}: more queries than the {table.n:,} labelled cells of {data.path}")
    table.check(args.strategy)
    hp = predictor_hyperparams(args)
    predictor = any(s in PREDICTOR_STRATEGIES for s in args.strategy)
    jobs = min(args.jobs or default_jobs(args.strategy, device), len(args.strategy) * args.seeds)
    train = predictor_trainer(args, device, threads=args.threads if jobs == 1 else 1) if predictor else None

    loop = dict(seeds=args.seeds, queries=args.budget, seconds=args.budget_time, n0=args.n0, per_round=args.per_round)
    runs, curves = compare(table, args.strategy, train=train, device=device, jobs=jobs, **loop)
    config = {"data": str(data.path), "fingerprint": data.fingerprint, "strategies": args.strategy, **loop}
    config |= {"model": args.model, "hp": hp, "target": args.target, "device": str(device), "threads": args.threads}
    config |= {"jobs": jobs}
    result = {"config": config, **runs, "seconds": time.perf_counter() - t0, "synthetic_labels": data.synthetic}

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "budget.json", result)
    title = f"{', '.join(args.strategy)} on {Path(data.path).name}"
    title = f"SYNTHETIC labels (demo data): {title}" if data.synthetic else title
    plots = plot_search_curves(out, curves, result["pool"]["best"]["val"], title)
    print(budget_table(result))
    if data.synthetic:
        print(f"SYNTHETIC labels: {data.path} is demo data; these accuracies are made up, not NB101's")
    print(f"saved {out}/budget.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    return result


# ----------------------------------------------------------------------------- real training


def search_with_training(args: argparse.Namespace, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    out = trials_folder(args)
    device = available_device(args.device)
    predictor = [s for s in args.strategy if s in PREDICTOR_STRATEGIES]
    if predictor and args.budget <= args.n0:
        raise SearchError(
            f"--budget {args.budget}: {','.join(predictor)} trains --n0 {args.n0} random cells before its first "
            "predictor; give a larger --budget or a smaller --n0"
        )
    if args.engine == "ray" and args.address:
        check_reachable(args.address)  # a one-line error within seconds, before any other work
    train = predictor_trainer(args, device, args.threads) if predictor else None
    images = check_images(args)
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
            except KeyboardInterrupt:
                print(f"budgeted_search.py: interrupted; `python budgeted_search.py --resume {out}` continues it",
                      file=sys.stderr)  # fmt: skip
                sys.exit(130)
    summary, curves = trials_summary(records)
    result = {"config": config, **summary, "seconds": time.perf_counter() - t0, "synthetic_labels": False}
    top1 = best_trial(records)
    write_json(out / "budget.json", result)
    write_json(out / "top1.json", top1)
    title = f"{', '.join(args.strategy)} on {what}"
    plots = plot_search_curves(out, curves, result["pool"]["best"]["val"], title, measured=True)
    print(budget_table(result))
    print(f"best cell {top1['hash']}: val {100 * top1['val']:.2f}% (trial {top1['run_dir']})")
    print(f"saved {out}/budget.json, top1.json, {', '.join(p.name for p in plots)} ({result['seconds']:.0f} s)")
    if args.train:  # at trainer.py's defaults (108 epochs, the full network), into <out>/top1 unless told otherwise
        where = [] if "--out" in extra else ["--out", str(out / "top1")]
        trainer = [sys.executable, str(ROOT / "trainer.py"), "--arch", str(out / "top1.json")]
        train_pick([*trainer, "--data-root", args.data_root, *where, *extra])
    return result


def trials_folder(args: argparse.Namespace) -> Path:
    """--resume's folder, or --out (default runs/search-<time>) where no search is yet."""
    if args.resume:
        return output_folder(args.resume, "--resume", "its trials and budget.json are written there")
    out = Path(args.out) if args.out else Path("runs") / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
    output_folder(out, "--out")
    if (out / "search_config.json").exists():
        raise SearchError(f"--out {out} holds a search already; continue it with --resume {out}")
    return out


def check_images(args: argparse.Namespace) -> dict:
    """Read (and cache) the images once, before any trial: every trial then loads the decoded cache, and
    an empty folder, one class or an unreadable image stops the search here. What the data is
    (lib.training.images.data_info), as search_config.json records it."""
    try:
        data = load_images(Path(args.data_root))
    except ImageDataError as e:
        raise SearchError(f"--data-root {e}") from None
    info = data_info(data)
    for flag, asked, split in (
        ("--trial-train-images", args.trial_train_images, "train"),
        ("--trial-eval-images", args.trial_eval_images, "valid"),
    ):
        if asked > info["images"][split]:
            raise SearchError(
                f"{flag} {asked}: the data holds {info['images'][split]:,} such images (0 takes them all)"
            )
    return info


def trial_command(args: argparse.Namespace, seed: int) -> list[str]:
    """trainer.py and the flags of every trial (the engine adds the cell, --epochs and --out)."""
    root = str(Path(args.data_root).resolve())  # trials may run in another folder (a Ray worker)
    cmd = [sys.executable, str(ROOT / "trainer.py"), "--data-root", root, "--device", args.device]
    cmd += ["--stem-channels", str(args.trial_stem_channels), "--num-stacks", str(args.trial_stacks)]
    cmd += ["--cells-per-stack", str(args.trial_cells_per_stack), "--seed", str(seed)]
    cmd += ["--train-images", str(args.trial_train_images), "--eval-images", str(args.trial_eval_images)]
    return cmd + shlex.split(args.trial_args)


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


def resumed_args(p: ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The saved flags of the search in --resume's folder, with the engine flags given now."""
    folder = Path(args.resume)
    try:
        saved = json.loads((folder / "search_config.json").read_text())["argv"]
    except (OSError, ValueError, KeyError):
        p.error(f"--resume {folder}: no search_config.json of a search with --data-root there")
    given = {k for k, v in vars(args).items() if v != p.get_default(k) and k != "resume"}
    refused = sorted(given - set(ON_RESUME))
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        p.error(f"--resume continues {folder} with its own flags; {flags} cannot change (only {', '.join(ON_RESUME)})")
    if "budget" in given and args.budget < saved["budget"]:
        p.error(f"--budget {args.budget}: {folder} was searched with --budget {saved['budget']}; a budget only grows")
    saved = {k: v for k, v in saved.items() if k in vars(args)}  # flags this parser knows
    restored = vars(args) | saved | {k: getattr(args, k) for k in given} | {"resume": str(folder), "out": str(folder)}
    return argparse.Namespace(**restored | {"strategy": ",".join(saved.get("strategy", []))})  # split again after


# ----------------------------------------------------------------------------- the predictor strategies


def predictor_hyperparams(args: argparse.Namespace) -> dict:
    return hyperparams(args.model, {**vars(args), "batch_size": args.batch_size_train})


def predictor_trainer(args: argparse.Namespace, device: torch.device, threads: int) -> SearchTrainer:
    """The train(x, y, seed) the predictor strategies call every round (model.SearchTrainer), scoring
    on `threads` threads; with --prior its first fit continues from that checkpoint's weights, as later
    fits do from the last."""
    prior = load_prior(args, device) if args.prior else None
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
