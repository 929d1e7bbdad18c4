"""Search strategies compared on a table: NB101's recorded accuracies answer each query, and each query
costs the cell's recorded training time, so regret can be read against queries and simulated seconds.

    from lib.search.table import Table, compare
    table = Table.from_arrays(load_nb101(path).by_epochs("val"))
    result, curves = compare(table, ["re", "guided"], seeds=20, queries=150, train=train)

A Table holds the pool: its cells, the label each query returns per NB101 epochs and repeat, the
training time each costs, and the truth reported (lib/search/report.Truth). The searches run one at
a time or side by side in worker processes (run_searches); lib/search/report.py summarizes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from lib.nb101.schema import EPOCHS
from lib.search.ask_tell import Pool, Train
from lib.search.neighbourhood import neighbourhood_kind
from lib.search.report import Trace, Truth, pool_summary, summarize
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES, WALKS
from lib.util.devices import usable_cores
from lib.util.errors import UserError
from lib.util.workers import in_workers


@dataclass
class Table:
    """A data file's answers for the pool (row i of every array is pool cell i)."""

    cells: dict[str, np.ndarray]  # adjacency, operations, num_vertices
    labels: np.ndarray  # [P, epochs, repeats] what a query returns (NaN where the file has none)
    seconds: np.ndarray  # [P, epochs, repeats] what it costs
    truth: Truth  # reported: the mean 108-epoch validation and test accuracy
    random_repeat: bool = False  # each query reads one repeat at random, as NB101's API does
    estimated_seconds: bool = False  # some costs are the 108-epoch time scaled by the epochs

    @classmethod
    def from_arrays(cls, arrays: dict) -> Table:
        """The table of dataset.NB101.by_epochs's arrays; given every repeat of a cell, a query reads one."""
        truth = Truth(arrays["hash"], arrays["true_val"], arrays["true_test"])
        cells = {k: arrays[k] for k in ("adjacency", "operations", "num_vertices")}
        random_repeat = arrays["labels"].shape[2] > 1
        return cls(cells, arrays["labels"], arrays["seconds"], truth, random_repeat, arrays["seconds_estimated"])

    @property
    def n(self) -> int:
        return len(self.truth.val)

    def query(self, row: int, epochs: int, rng: np.random.Generator) -> tuple[float, float]:
        """(the label, its cost in seconds) of cell `row` trained for `epochs`."""
        e = EPOCHS.index(epochs)
        repeats = np.flatnonzero(np.isfinite(self.labels[row, e]))
        r = int(rng.choice(repeats)) if self.random_repeat and len(repeats) > 1 else int(repeats[0])
        return float(self.labels[row, e, r]), float(self.seconds[row, e, r])

    def costs(self, epochs: int) -> np.ndarray:
        """[cells, repeats] what a query of each cell for `epochs` may cost (NaN where no repeat answers)."""
        e = EPOCHS.index(epochs)
        return np.where(np.isfinite(self.labels[:, e]), self.seconds[:, e], np.nan)

    def most_seconds(self) -> float:
        """What querying every cell for 108 epochs costs, each at its costliest repeat: more than a search
        that queries each cell once can spend."""
        return float(np.nansum(np.nanmax(self.costs(EPOCHS[-1]), 1)))

    def cheapest(self, epochs: tuple[int, ...]) -> float:
        """The least a first query (for one of `epochs`) can cost."""
        return float(min(np.nanmin(self.costs(e)) for e in epochs if np.isfinite(self.costs(e)).any()))

    def check(self, strategies: list[str]) -> None:
        """The file holds what the strategies will ask for."""
        for name in strategies:
            if name not in STRATEGIES:
                raise UserError(f"--strategy {name}: choose from {' '.join(STRATEGIES)}")
        multi = [s for s in strategies if s in ("sh", "hyperband")]
        missing = [ep for i, ep in enumerate(EPOCHS) if not np.isfinite(self.labels[:, i]).any(1).all()]
        if multi and missing:
            raise UserError(
                f"--strategy {','.join(multi)} queries each of NB101's epochs, but the file has no label at "
                f"{'/'.join(map(str, missing))} epochs for some cells (a nasbench_full file has them all)"
            )


def run_strategy(strategy, table: Table, *, queries: int | None, seconds: float | None, seed: int) -> Trace:
    """Ask, look up, tell, until `queries` queries or `seconds` simulated seconds are spent, or the pool
    is: a strategy that has queried every cell it can asks for nothing, or for a cell it was told already
    (never answered twice)."""
    rng = np.random.default_rng([seed, 2])  # the repeats a query reads: a stream of its own
    rows, epochs, labels, costs = [], [], [], []
    spent, t0 = 0.0, time.perf_counter()
    exhausted = False
    while not exhausted and (queries is None or len(rows) < queries) and (seconds is None or spent < seconds):
        asked = strategy.ask()
        exhausted = not asked
        for row, ep in asked:
            if (queries is not None and len(rows) >= queries) or (seconds is not None and spent >= seconds):
                break
            if (row, ep) in strategy.seen:
                exhausted = True
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
    """Every strategy with seeds 0..seeds-1 (`jobs` searches side by side, run_searches): budget.json's
    pool and per-strategy results, and the curves to plot."""
    table.check(strategies)
    if queries is None and seconds is None:
        raise UserError("give a budget: --budget QUERIES or --budget-time SECONDS")
    loop = dict(train=train, n0=n0, per_round=per_round)
    searches = [
        (name, seed, loop if name in PREDICTOR_STRATEGIES else {}) for name in strategies for seed in range(seeds)
    ]
    traces = run_searches(table, searches, queries=queries, seconds=seconds, device=device, jobs=jobs, quiet=quiet)
    kind = neighbourhood_kind(table.n) if any(n in WALKS for n in strategies) else None
    horizon = seconds or max(t.seconds.sum() for t in traces)
    pool = pool_summary(table.truth, kind, table.random_repeat, table.estimated_seconds)
    result, curves = {"pool": pool, "strategies": {}}, {}
    for name in strategies:
        runs = [t for (n, _, _), t in zip(searches, traces) if n == name]
        result["strategies"][name], curves[name] = summarize(runs, table.truth, horizon)
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
    strategy = STRATEGIES[name](_WORKER["pool"], seed, **kwargs)
    return run_strategy(strategy, _WORKER["table"], queries=queries, seconds=seconds, seed=seed)
