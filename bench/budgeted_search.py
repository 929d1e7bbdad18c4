"""Search strategies compared on NB101's table: regret against queries and against simulated training time.

    python -m bench.budgeted_search                                  # every strategy, 20 seeds, the real 20k pool
    python -m bench.budgeted_search --strategies re,ls,random --seeds 100        # the cheap ones
    python -m bench.budgeted_search --pool full --seeds 3            # the full-size demo file, NB101's protocol
    python -m bench.budgeted_search --first-seed 20                  # held-out seeds 20-39

Protocol (budgeted_search.py --data's: both run lib.search.table's searches and lib.search.report's
summary). `--pool real`: the 20,001 real cells of nb101_real_20k.tfrecord (converted once to
data/real20k.hdf5); a query returns a cell's one-repeat 108-epoch validation accuracy and costs its
recorded 108-epoch training time (fewer epochs: that time x epochs / 108, an estimate). `--pool full`:
all 423,624 cells of a demo file with 3 repeats and synthetic labels (tools/make_demo_data.py --cells
all --epochs 108 --repeats 3, made once into data/demo_only108.hdf5), queried as NB101's API does (a
random repeat per query) and reported as the published results are: the mean test accuracy of the cell
with the best validation accuracy seen. Predictor strategies use --model (pgin); BANANAS also runs with
its own predictor (path encoding + MLP ensemble, `pathmlp`), as the row "bananas-pathmlp". Random search
is the baseline of the same run: each strategy's regret is also given as a ratio to random's, at
--budget queries. Each strategy's summary adds `at_hours`: the incumbent's mean true val accuracy after
HOURS of simulated training. Writes bench/results/budgeted_search[-full].json (budgeted_search.py's
budget.json + machine), the two curve plots beside it, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import REAL_HDF5, REPO, RESULTS, machine, real_hdf5
from dataset import load_nb101
from lib.search.neighbourhood import neighbourhood_kind
from lib.search.report import budget_table, plot_search_curves, pool_summary, summarize
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES, WALKS
from lib.search.table import Table, default_jobs, run_searches
from lib.util.devices import free_cores, pick_device
from lib.util.outputs import write_json
from model import WARM_EPOCHS, SearchTrainer, build_model, hyperparams

FULL_DEMO = REPO / "data" / "demo_only108.hdf5"
HOURS = (10, 25, 50)  # simulated-time budgets: 150 queries of the real pool take about 70 h (random) to 130 h


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", default="real", choices=("real", "full"))
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated (default: all)")
    p.add_argument("--budget", type=int, default=150, help="queries per search")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (20: the held-out ones)")
    p.add_argument("--predictor-seeds", type=int, help="seeds of bananas, npenas, guided (default: --seeds)")
    p.add_argument("--model", default="pgin")
    p.add_argument("--n0", type=int, default=10)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--jobs", type=int, help="searches side by side (default: lib.search.table.default_jobs)")
    p.add_argument("--threads", type=int, help="CPU threads that score cells (default: 1 a job; 1 job: the free cores)")
    p.add_argument("--out", help="JSON (default bench/results/budgeted_search[-full].json)")
    return p.parse_args()


def full_demo() -> Path:
    """data/demo_only108.hdf5: every cell, 108 epochs, 3 repeats, synthetic labels (made once)."""
    if not FULL_DEMO.exists():
        tfrecord = FULL_DEMO.with_suffix(".tfrecord")
        make = [sys.executable, str(REPO / "tools" / "make_demo_data.py"), "--cells", "all", "--epochs", "108"]
        subprocess.run([*make, "--repeats", "3", "--output", str(tfrecord)], check=True)
        convert = [sys.executable, str(REPO / "tools" / "nasbench_tfrecord_converter.py"), "--input", str(tfrecord)]
        subprocess.run([*convert, "--output", str(FULL_DEMO)], check=True)
        tfrecord.unlink()
    return FULL_DEMO


def main() -> None:
    args = parse_args()
    path = real_hdf5(REAL_HDF5) if args.pool == "real" else full_demo()
    data = load_nb101(path)
    table = Table.from_arrays(data.by_epochs("val", every_repeat=args.pool == "full"))
    names = args.strategies.split(",")
    device = pick_device("auto")
    jobs = args.jobs or default_jobs(names, device)
    threads = args.threads or (free_cores() if jobs == 1 else 1)
    hp = hyperparams(args.model)
    trainers = {m: SearchTrainer(m, hyperparams(m), device=device, threads=threads) for m in (args.model, "pathmlp")}
    if any(n in PREDICTOR_STRATEGIES for n in names):
        build_model(args.model).prepare()
    rows = [(n, n, args.model) for n in names]
    rows += [("bananas-pathmlp", "bananas", "pathmlp")] if "bananas" in names and args.model != "pathmlp" else []
    load, t0 = os.getloadavg(), time.perf_counter()
    result = {"config": {"data": str(path), "queries": args.budget, "seeds": args.seeds, "strategies": names}}
    result["config"] |= {"first_seed": args.first_seed, "model": args.model, "hp": hp, "jobs": jobs}
    result["config"] |= {"n0": args.n0, "per_round": args.per_round, "warm_epochs": WARM_EPOCHS}
    searches, labels = [], []  # labels: each search's row name
    for name, strategy, model in rows:
        predictor = strategy in PREDICTOR_STRATEGIES
        seeds = args.predictor_seeds or args.seeds if predictor else args.seeds
        kwargs = dict(train=trainers[model], n0=args.n0, per_round=args.per_round) if predictor else {}
        searches += [(strategy, s, kwargs) for s in range(args.first_seed, args.first_seed + seeds)]
        labels += [name] * seeds
    traces = run_searches(table, searches, queries=args.budget, seconds=None, device=device, jobs=jobs)
    result["strategies"], curves = {}, {}
    kind = neighbourhood_kind(table.n) if any(n in WALKS for n in names) else None
    result["pool"] = pool_summary(table.truth, kind, table.random_repeat, table.estimated_seconds)
    horizon = max(tr.seconds.sum() for tr in traces)
    for name, *_ in rows:
        mine = [(tr, seed) for tr, (_, seed, _), label in zip(traces, searches, labels) if label == name]
        summary, curves[name] = summarize([tr for tr, _ in mine], table.truth, horizon)
        for run, (_, seed) in zip(summary["runs"], mine):  # summarize numbers them from 0
            run["seed"] = seed
        summary["at_hours"] = {str(h): at_time([tr for tr, _ in mine], table, 3600 * h) for h in HOURS}
        result["strategies"][name] = summary
        print(f"{name}: {len(mine)} seeds, {summary['compute_seconds_mean']:.1f} s a search", flush=True)
    base = result["strategies"].get("random")
    for s in result["strategies"].values():
        s["regret_vs_random"] = s["regret_mean"] / base["regret_mean"] if base and base["regret_mean"] else None
    result["bench"] = {"machine": machine(device), "load_before": load, "load_after": os.getloadavg()}
    result["bench"]["seconds"] = time.perf_counter() - t0
    result["synthetic_labels"] = data.synthetic
    out = Path(args.out or RESULTS / f"budgeted_search{'-full' if args.pool == 'full' else ''}.json")
    write_json(out, result)
    title = f"{Path(path).name}, {args.budget} queries" + (" (SYNTHETIC labels)" if data.synthetic else "")
    plots = plot_search_curves(out.parent, curves, result["pool"]["best"]["val"], title)
    for p in plots:  # beside the JSON, named after it
        p.replace(out.with_name(f"{out.stem}_{p.name}"))
    print(budget_table(result))
    print(
        "regret / random's: "
        + ", ".join(
            f"{n} {s['regret_vs_random']:.2f}"
            for n, s in result["strategies"].items()
            if s["regret_vs_random"] is not None
        )
    )
    print(f"saved {out} ({result['bench']['seconds']:.0f} s)")


def at_time(traces, table, seconds: float) -> float | None:
    """The incumbent's mean true val accuracy after `seconds` of simulated training; None when a run
    spent its queries before then (its curve stops short of the time)."""
    vals = []
    for tr in traces:
        done = int(np.searchsorted(np.cumsum(tr.seconds), seconds, side="right"))
        if done == len(tr.rows) and tr.seconds.sum() < seconds:
            return None
        vals.append(float(table.truth.val[tr.incumbents()[done - 1]]) if done else np.nan)
    return float(np.mean(vals))


if __name__ == "__main__":
    main()
