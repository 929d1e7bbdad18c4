"""Search strategies compared on a table: NB101's recorded accuracies answer each query, and each query
costs the cell's recorded training time, so regret can be read against queries and simulated seconds.

    from lib.search.table import compare, budget_table
    result, curves = compare(table, ["re", "guided"], seeds=20, queries=150, train=train)
    print(budget_table(result))                  # budget.json: config, pool, per strategy its curves

`table` (a Table, made by dataset.NB101.search_table) holds the pool: its cells, the label each
query returns per budget and repeat, the training time each costs, and the truth reported (mean
108-epoch validation and test accuracy over the repeats). The incumbent after each query is the cell
with the best label seen at the highest budget queried so far, as a search itself would know it; its
true accuracy is what the curves show.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lib.nb101.schema import EPOCHS
from lib.search.neighbourhood import neighbourhood_kind
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES, WALKS, Pool, Train
from lib.util.devices import usable_cores
from lib.util.errors import UserError
from lib.util.outputs import json_number, pct, write_atomic
from lib.util.workers import in_workers

TIME_POINTS = 200  # points of the curves against simulated seconds


@dataclass
class Table:
    """A data file's answers for the pool (row i of every array is pool cell i)."""

    cells: dict[str, np.ndarray]  # adjacency, operations, num_vertices
    labels: np.ndarray  # [P, budgets, repeats] what a query returns (NaN where the file has none)
    seconds: np.ndarray  # [P, budgets, repeats] what it costs
    true_val: np.ndarray  # [P] reported: mean 108-epoch validation accuracy
    true_test: np.ndarray  # [P] mean 108-epoch test accuracy (NaN where absent)
    hashes: np.ndarray  # [P]
    random_repeat: bool = False  # each query reads one repeat at random, as NB101's API does
    estimated_seconds: bool = False  # some costs are the 108-epoch time scaled by the budget

    @property
    def n(self) -> int:
        return len(self.true_val)

    def query(self, row: int, epochs: int, rng: np.random.Generator) -> tuple[float, float]:
        """(the label, its cost in seconds) of cell `row` trained for `epochs`."""
        b = EPOCHS.index(epochs)
        repeats = np.flatnonzero(np.isfinite(self.labels[row, b]))
        r = int(rng.choice(repeats)) if self.random_repeat and len(repeats) > 1 else int(repeats[0])
        return float(self.labels[row, b, r]), float(self.seconds[row, b, r])

    def check(self, strategies: list[str]) -> None:
        """The file holds what the strategies will ask for."""
        for name in strategies:
            if name not in STRATEGIES:
                raise UserError(f"--strategy {name}: choose from {' '.join(STRATEGIES)}")
        multi = [s for s in strategies if s in ("sh", "hyperband")]
        missing = [b for i, b in enumerate(EPOCHS) if not np.isfinite(self.labels[:, i]).any(1).all()]
        if multi and missing:
            raise UserError(
                f"--strategy {','.join(multi)} queries every budget, but the file has no label at "
                f"{'/'.join(map(str, missing))} epochs for some cells (a nasbench_full file has them all)"
            )


@dataclass
class Trace:
    """One search: each query's pool row, epochs, label and cost, in order."""

    rows: np.ndarray
    epochs: np.ndarray
    labels: np.ndarray
    seconds: np.ndarray
    compute: float = 0.0  # wall seconds the search itself took (its strategy's asks and tells)

    def incumbents(self) -> np.ndarray:
        """Pool row of the incumbent after each query: the best label at the highest budget so far."""
        out, best, top = np.empty(len(self.rows), np.int64), None, -1
        for q, (row, ep, y) in enumerate(zip(self.rows, self.epochs, self.labels)):
            if ep > top or (ep == top and y > best[1]):
                best, top = (row, y), ep
            out[q] = best[0]
        return out


def run_strategy(strategy, table: Table, *, queries: int | None, seconds: float | None, seed: int) -> Trace:
    """Ask, look up, tell, until `queries` queries or `seconds` simulated seconds are spent."""
    rng = np.random.default_rng([seed, 2])  # the repeats a query reads: a stream of its own
    rows, epochs, labels, costs = [], [], [], []
    spent, t0 = 0.0, time.perf_counter()
    while (queries is None or len(rows) < queries) and (seconds is None or spent < seconds):
        for row, ep in strategy.ask():
            if (queries is not None and len(rows) >= queries) or (seconds is not None and spent >= seconds):
                break
            y, cost = table.query(row, ep, rng)
            strategy.tell(row, ep, y)
            rows.append(row), epochs.append(ep), labels.append(y), costs.append(cost)
            spent += cost
    compute = time.perf_counter() - t0
    return Trace(np.array(rows, np.int64), np.array(epochs), np.array(labels), np.array(costs), compute)


def compare(
    table: Table,
    strategies: list[str],
    *,
    seeds: int,
    queries: int | None,
    seconds: float | None = None,
    train: Train | None = None,
    n0: int = 10,
    per_round: int = 10,
    device="cpu",
    jobs: int = 1,
    quiet: bool = False,
) -> tuple[dict, dict]:
    """Every strategy with seeds 0..seeds-1 (`jobs` searches side by side, lib/search/table.run_searches):
    budget.json's per-strategy results and the curves to plot."""
    table.check(strategies)
    if queries is None and seconds is None:
        raise UserError("give a budget: --budget QUERIES or --budget-time SECONDS")
    loop = dict(train=train, n0=n0, per_round=per_round)
    searches = [
        (name, seed, loop if name in PREDICTOR_STRATEGIES else {}) for name in strategies for seed in range(seeds)
    ]
    traces = run_searches(table, searches, queries=queries, seconds=seconds, device=device, jobs=jobs, quiet=quiet)
    near = neighbourhood_kind(table.n) if any(n in WALKS for n in strategies) else None
    horizon = seconds or max(t.seconds.sum() for t in traces)
    result = {"pool": pool_summary(table, near), "strategies": {}}
    curves = {}
    for name in strategies:
        runs = [t for (n, _, _), t in zip(searches, traces) if n == name]
        result["strategies"][name], curves[name] = summarize(runs, table, horizon)
    return result, curves


def default_jobs(strategies: list[str], device) -> int:
    """Searches side by side unless asked: one per core when a predictor strategy runs on a CPU (each of
    its searches takes seconds); else one (a random, RE or local search takes milliseconds, less than a
    worker process's start, and a GPU is best left to one process)."""
    cpu = torch.device(device).type == "cpu"
    return usable_cores() if cpu and any(s in PREDICTOR_STRATEGIES for s in strategies) else 1


def run_searches(
    table: Table,
    searches: list[tuple[str, int, dict]],
    *,
    queries: int | None,
    seconds: float | None,
    device="cpu",
    jobs: int = 1,
    quiet: bool = False,
) -> list[Trace]:
    """Each (strategy, seed, its keyword arguments) run on the table, its Trace in the order given. With
    jobs > 1 the searches run side by side in worker processes of one thread each (lib/util/workers; a
    search is sequential, and a predictor's round is too small to use more threads), predictor
    strategies first; a search's Trace is the same on any number of jobs at one thread. An error in a
    worker stops the rest."""
    bar = tqdm(total=len(searches), desc="search", unit="run", disable=quiet)
    order = sorted(range(len(searches)), key=lambda i: searches[i][0] not in PREDICTOR_STRATEGIES)
    tasks = [(searches[i], queries, seconds) for i in order]
    traces: list[Trace | None] = [None] * len(searches)
    setup = dict(init=start_worker, init_args=(table, device, jobs > 1))
    try:
        for k, trace in in_workers(search_task, tasks, workers=jobs, what="search", ordered=False, **setup):
            traces[order[k]] = trace
            bar.set_description(f"{tasks[k][0][0]} seed {tasks[k][0][1]}")
            bar.update()
    finally:
        bar.close()
        _WORKER.clear()
    return traces


_WORKER: dict = {}  # where the searches run (a worker, or here with one job): the table and its Pool, built once


def start_worker(table: Table, device, one_thread: bool) -> None:
    if one_thread:
        torch.set_num_threads(1)
    _WORKER.update(table=table, pool=Pool(table.cells, device))


def search_task(task: tuple) -> Trace:
    (name, seed, kwargs), queries, seconds = task
    return search(_WORKER["pool"], _WORKER["table"], name, seed, kwargs, queries, seconds)


def search(pool: Pool, table: Table, name: str, seed: int, kwargs: dict, queries, seconds) -> Trace:
    strategy = STRATEGIES[name](pool, seed, **kwargs)
    return run_strategy(strategy, table, queries=queries, seconds=seconds, seed=seed)


def pool_summary(table: Table, neighbourhood: str | None) -> dict:
    best = int(np.argmax(table.true_val))
    return {
        "cells": table.n,
        "best": {
            "hash": str(table.hashes[best]),
            "val": float(table.true_val[best]),
            "test": json_number(table.true_test[best]),
        },
        "neighbourhood": neighbourhood,
        "random_repeat": table.random_repeat,
        "seconds_estimated": table.estimated_seconds,
    }


def summarize(runs: list[Trace], table: Table, horizon: float) -> tuple[dict, dict]:
    """Per strategy: the final incumbent's truth (mean, std over seeds), regret, how many seeds found the
    pool's best and after how many queries, curves against queries and simulated seconds, each run."""
    best = int(np.argmax(table.true_val))
    length = max(len(t.rows) for t in runs)
    by_query, by_time, per_run, last = [], [], [], []  # last: each run's final incumbent
    grid = np.linspace(0, horizon, TIME_POINTS)
    for seed, t in enumerate(runs):
        inc = t.incumbents()
        last.append(inc[-1])
        val = table.true_val[inc]
        by_query.append(np.pad(val, (0, length - len(val)), mode="edge"))
        done = np.searchsorted(np.cumsum(t.seconds), grid, side="right")  # queries finished by each time
        by_time.append(np.where(done > 0, val[np.maximum(done - 1, 0)], np.nan))
        found = np.flatnonzero(inc == best)
        per_run.append(
            {
                "seed": seed,
                "best_hash": str(table.hashes[inc[-1]]),
                "best_val": float(val[-1]),
                "best_test": json_number(table.true_test[inc[-1]]),
                "queries_to_best": int(found[0]) + 1 if len(found) else None,
                "seconds": float(t.seconds.sum()),
                "queried": table.hashes[t.rows].tolist(),
                "epochs": t.epochs.tolist(),
            }
        )
    by_query, by_time = np.array(by_query), np.array(by_time)
    final = by_query[:, -1]
    test = table.true_test[np.array(last)]
    to_best = [r["queries_to_best"] for r in per_run if r["queries_to_best"] is not None]
    with warnings.catch_warnings():  # before any seed's first query ends, a time point has no value
        warnings.simplefilter("ignore", RuntimeWarning)
        time_mean, time_std = np.nanmean(by_time, 0), np.nanstd(by_time, 0)
    summary = {
        "final_val_mean": float(final.mean()),
        "final_val_std": float(final.std()),
        "final_test_mean": json_number(float(np.mean(test))),
        "regret_mean": float(table.true_val[best] - final.mean()),
        "found_best_in_pool": len(to_best),
        "queries_to_best_median": float(np.median(to_best)) if to_best else None,
        "seconds_mean": float(np.mean([r["seconds"] for r in per_run])),
        "compute_seconds_mean": float(np.mean([t.compute for t in runs])),
        "curve_val_mean": by_query.mean(0).tolist(),  # index q-1: after q queries
        "curve_val_std": by_query.std(0).tolist(),
        "curve_time": {
            "seconds": grid.tolist(),
            "val_mean": list(map(json_number, time_mean)),
            "val_std": list(map(json_number, time_std)),
        },
        "runs": per_run,
    }
    return summary, {"queries": by_query, "time": (grid, by_time)}


def budget_table(r: dict) -> str:
    """The final incumbent per strategy and the pool's best, as search.py prints it."""
    c, p = r["config"], r["pool"]
    if "kind" in p:  # real training: the values are measured, the "pool" is the cells trained
        head = f"best val accuracy measured in {c['budget']} trials, {c['seeds']} seeds, {p['cells']:,} cells trained"
    else:
        budget = f"{c['queries']} queries" if c.get("queries") else f"{c['seconds']:.3g} simulated seconds"
        near = f", neighbourhood: {p['neighbourhood']}" if p["neighbourhood"] else ""
        head = f"best true val accuracy found with {budget}, {c['seeds']} seeds, pool of {p['cells']:,}{near}"
    hours = "hours" if "kind" in p else "sim. hours"
    w = max([10, *map(len, r["strategies"])])  # the name column
    lines = [
        head,
        f"{'strategy':<{w}} {'val % mean +- std':>18} {'test % mean':>12} {'regret pp':>9} {'found best':>11} "
        f"{'median q':>8} {hours:>10}",
    ]
    for name, m in r["strategies"].items():
        median = "-" if m["queries_to_best_median"] is None else f"{m['queries_to_best_median']:.0f}"
        lines.append(
            f"{name:<{w}} {100 * m['final_val_mean']:>10.2f} +- {100 * m['final_val_std']:.2f} "
            f"{pct(m['final_test_mean'], 12)} {100 * m['regret_mean']:>9.2f} "
            f"{m['found_best_in_pool']:>7}/{len(m['runs']):<3} {median:>8} {m['seconds_mean'] / 3600:>10.1f}"
        )
    b = p["best"]
    lines.append(f"{'pool':<{w}} {100 * b['val']:>10.2f}         {pct(b['test'], 12)}   (best cell {b['hash'][:12]})")
    if p["seconds_estimated"]:
        lines.append("simulated seconds: estimated where the file lacks a budget's time (108-epoch time x epochs/108)")
    return "\n".join(lines)


def plot_search_curves(out: Path, curves: dict, best: float, title: str, measured: bool = False) -> list[Path]:
    """curves_queries.png and curves_time.png: the incumbent's true val accuracy, mean line and +-std
    band per strategy, the pool's best dashed (measured: real trials, their val accuracy against trials
    and training hours). Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for axis in ("queries", "time"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        lows = []
        for name, c in curves.items():
            x, y = (np.arange(1, c["queries"].shape[1] + 1), c["queries"]) if axis == "queries" else c["time"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                m, s = 100 * np.nanmean(y, 0), 100 * np.nanstd(y, 0)
            ax.plot(x / (3600 if axis == "time" else 1), m, label=f"{name} ({y.shape[0]} seeds)")
            ax.fill_between(x / (3600 if axis == "time" else 1), m - s, m + s, alpha=0.2)
            lows.append(np.nanpercentile(m, 10))
        where = "trained" if measured else "in pool"
        ax.axhline(100 * best, color="k", ls="--", lw=0.8, label=f"best {where} {100 * best:.2f}%")
        if measured:
            xlabel = "trials" if axis == "queries" else "training time, trials summed (hours)"
        else:
            xlabel = "queries" if axis == "queries" else "simulated training time (hours)"
        ylabel = "val accuracy of the incumbent (%)" if measured else "true val accuracy of the incumbent (%)"
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_ylim(max(min(lows) - 0.5, 0), 100 * best + 0.3)
        ax.grid(ls="--", alpha=0.5)
        ax.legend(loc="lower right", fontsize=8)
        path = Path(out) / f"curves_{axis}.png"
        write_atomic(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
        plt.close(fig)
        paths.append(path)
    return paths
