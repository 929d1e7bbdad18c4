"""What a comparison of searches reports: per strategy the final incumbent's truth over seeds, regret,
the pool's best found or not, curves against queries and against (simulated or measured) seconds; the
printed table and the curve plots. budget.json's keys: docs/outputs.md.

    from lib.search.report import Trace, Truth, summarize, budget_table
    summary, curves = summarize(traces, truth, horizon)      # traces: one strategy's searches, a seed each

A search is a Trace (the pool rows it queried, in order, and what each returned and cost); the report
measures it against the Truth of the pool's cells, which is all it needs of where the answers came from:
NB101's mean 108-epoch accuracies for a table (lib/search/table.py), the accuracy measured for real
trials (lib/search/trial_search.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.util.outputs import json_number, pct, write_atomic

TIME_POINTS = 200  # points of the curves against seconds


@dataclass
class Trace:
    """One search: each query's pool row, epochs, label and cost, in order."""

    rows: np.ndarray
    epochs: np.ndarray
    labels: np.ndarray
    seconds: np.ndarray
    compute: float = 0.0  # wall seconds the search itself took (its strategy's asks and tells)

    def incumbents(self) -> np.ndarray:
        """Pool row of the incumbent after each query: the best label at the most epochs queried so far."""
        out, best, most = np.empty(len(self.rows), np.int64), None, -1
        for q, (row, ep, y) in enumerate(zip(self.rows, self.epochs, self.labels)):
            if ep > most or (ep == most and y > best[1]):
                best, most = (row, y), ep
            out[q] = best[0]
        return out


@dataclass
class Truth:
    """What the searches are measured against, per pool row: its hash, its true val accuracy and its
    test accuracy (NaN where none is known)."""

    hashes: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def best(self) -> int:
        return int(np.argmax(self.val))


def pool_summary(
    truth: Truth, neighbourhood: str | None, random_repeat: bool = False, seconds_estimated: bool = False
) -> dict:
    """budget.json's "pool": its size, its best cell, and how its answers were read."""
    best = truth.best
    return {
        "cells": len(truth.val),
        "best": {"hash": str(truth.hashes[best]), "val": float(truth.val[best]), "test": json_number(truth.test[best])},
        "neighbourhood": neighbourhood,
        "random_repeat": random_repeat,
        "seconds_estimated": seconds_estimated,
    }


def summarize(runs: list[Trace], truth: Truth, horizon: float) -> tuple[dict, dict]:
    """Per strategy: the final incumbent's truth (mean, std over seeds), regret, how many seeds found the
    pool's best and after how many queries, curves against queries and seconds, each run."""
    best = truth.best
    length = max(len(t.rows) for t in runs)
    by_query, by_time, per_run, last = [], [], [], []  # last: each run's final incumbent
    grid = np.linspace(0, horizon, TIME_POINTS)
    for seed, t in enumerate(runs):
        inc = t.incumbents()
        last.append(inc[-1])
        val = truth.val[inc]
        by_query.append(np.pad(val, (0, length - len(val)), mode="edge"))
        done = np.searchsorted(np.cumsum(t.seconds), grid, side="right")  # queries finished by each time
        by_time.append(np.where(done > 0, val[np.maximum(done - 1, 0)], np.nan))
        found = np.flatnonzero(inc == best)
        per_run.append(
            {
                "seed": seed,
                "best_hash": str(truth.hashes[inc[-1]]),
                "best_val": float(val[-1]),
                "best_test": json_number(truth.test[inc[-1]]),
                "queries_to_best": int(found[0]) + 1 if len(found) else None,
                "seconds": float(t.seconds.sum()),
                "queried": truth.hashes[t.rows].tolist(),
                "epochs": t.epochs.tolist(),
            }
        )
    by_query, by_time = np.array(by_query), np.array(by_time)
    final = by_query[:, -1]
    test = truth.test[np.array(last)]
    to_best = [r["queries_to_best"] for r in per_run if r["queries_to_best"] is not None]
    with warnings.catch_warnings():  # before any seed's first query ends, a time point has no value
        warnings.simplefilter("ignore", RuntimeWarning)
        time_mean, time_std = np.nanmean(by_time, 0), np.nanstd(by_time, 0)
    summary = {
        "final_val_mean": float(final.mean()),
        "final_val_std": float(final.std()),
        "final_test_mean": json_number(float(np.mean(test))),
        "regret_mean": float(truth.val[best] - final.mean()),
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
    """budget.json as budgeted_search.py prints it: the final incumbent per strategy, the pool's best."""
    c, p = r["config"], r["pool"]
    if "kind" in p:  # real training: the values are measured, the "pool" is the cells trained
        head = f"best val accuracy measured in {c['budget']} trials, {c['seeds']} seeds, {p['cells']:,} cells trained"
    else:
        budget = f"{c['queries']} queries" if c.get("queries") else f"{c['seconds']:.3g} simulated seconds"
        named = f", neighbourhood: {p['neighbourhood']}" if p["neighbourhood"] else ""
        head = f"best true val accuracy found with {budget}, {c['seeds']} seeds, pool of {p['cells']:,}{named}"
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
        lines.append("simulated seconds: estimated where the file lacks a training time (108-epoch time x epochs/108)")
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
            if np.isfinite(m).any():  # none before any search's first query has ended (a budget that short)
                lows.append(np.nanpercentile(m, 10))
        where = "trained" if measured else "in pool"
        ax.axhline(100 * best, color="k", ls="--", lw=0.8, label=f"best {where} {100 * best:.2f}%")
        if measured:
            xlabel = "trials" if axis == "queries" else "training time, trials summed (hours)"
        else:
            xlabel = "queries" if axis == "queries" else "simulated training time (hours)"
        ylabel = "val accuracy of the incumbent (%)" if measured else "true val accuracy of the incumbent (%)"
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_ylim(max(min(lows, default=100 * best) - 0.5, 0), 100 * best + 0.3)
        ax.grid(ls="--", alpha=0.5)
        ax.legend(loc="lower right", fontsize=8)
        path = Path(out) / f"curves_{axis}.png"
        write_atomic(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
        plt.close(fig)
        paths.append(path)
    return paths
