"""Budgeted search on a labelled pool: predictor-guided (Neural Predictor / BANANAS style) against random.

    from lib.budget import budget_table, guided_vs_random
    train = model.search_trainer("gcn", hp)        # train(x, y, seed) -> score(features) -> accuracies
    result, curves = guided_vs_random(x, y, truth, train=train, seeds=10, budget=150, n0=50, per_round=10)
    print(budget_table({"config": config, **result}))     # budget.json: config, best_in_pool, guided, random

Everything indexes the pool (dataset.NB101.search_pool): x its features, y the label the predictor
learns, truth["val"] / truth["test"] / truth["hash"] the benchmark's truth, in pool order. The
strategies never build a predictor themselves: they call the `train` they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lib.errors import UserError
from lib.metrics import top_k
from lib.outputs import json_number, pct, write_atomic

METHODS = ("guided", "random")
Train = Callable[[dict[str, torch.Tensor], np.ndarray, int], Callable[[dict[str, torch.Tensor]], np.ndarray]]


# ----------------------------------------------------------------------------- the comparison


def guided_vs_random(
    x: dict[str, torch.Tensor],
    y: np.ndarray,
    truth: dict[str, np.ndarray],
    *,
    train: Train,
    seeds: int,
    budget: int,
    n0: int,
    per_round: int,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Guided and random search over the pool with seeds 0..seeds-1: budget.json's results
    (best_in_pool, guided, random) and the true val curves to plot."""
    runs = run_seeds(x, y, train=train, seeds=seeds, budget=budget, n0=n0, per_round=per_round)
    return summarize_runs(runs, truth["val"], truth["test"], truth["hash"]), val_curves(runs, truth["val"])


# ----------------------------------------------------------------------------- strategies


def budgeted_search(
    x: dict[str, torch.Tensor], y: np.ndarray, *, train: Train, budget: int, n0: int, per_round: int, seed: int = 0
) -> np.ndarray:
    """Predictor-guided search over a pool (features x, labels y): indices of the `budget` queried
    cells, in query order. n0 random cells first; then, until the budget is spent, a fresh predictor
    (train(queried features, their labels, seed)) picks the `per_round` best-predicted cells not yet queried."""
    if not 0 < n0 <= budget <= len(y):
        raise UserError(f"need 0 < --n0 ({n0}) <= --budget ({budget}) <= labelled cells ({len(y)})")
    rng = np.random.default_rng(seed)
    queried = rng.choice(len(y), n0, replace=False).tolist()
    seen = np.zeros(len(y), bool)
    seen[queried] = True
    rnd = 0
    while len(queried) < budget:
        idx = torch.as_tensor(queried)
        train_x = {k: v[idx] for k, v in x.items()}
        score = train(train_x, y[queried], 1000 * seed + rnd)
        pred = score(x)
        pred[seen] = -np.inf
        new = top_k(pred, min(per_round, budget - len(queried)))
        queried += new.tolist()
        seen[new] = True
        rnd += 1
    return np.asarray(queried)


def random_search(n: int, budget: int, seed: int = 0) -> np.ndarray:
    """`budget` distinct cells of a pool of n, uniformly at random (a stream apart from the guided one)."""
    return np.random.default_rng([seed, 1]).choice(n, budget, replace=False)


def best_so_far(queried: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index (into the pool) of the best cell found after each query."""
    v = y[queried]
    improved = v >= np.maximum.accumulate(v)  # this query matched or beat every earlier one
    return queried[np.maximum.accumulate(np.where(improved, np.arange(len(v)), 0))]


def run_seeds(
    x: dict[str, torch.Tensor], y: np.ndarray, *, train: Train, seeds: int, budget: int, n0: int, per_round: int
) -> dict[str, list[np.ndarray]]:
    """Guided and random search with seeds 0..seeds-1: the queried pool indices of each, per method."""
    runs = {name: [] for name in METHODS}
    for seed in tqdm(range(seeds), desc="seeds", unit="seed"):
        guided = budgeted_search(x, y, train=train, budget=budget, n0=n0, per_round=per_round, seed=seed)
        runs["guided"].append(guided)
        runs["random"].append(random_search(len(y), budget, seed))
    return runs


# ----------------------------------------------------------------------------- results


def summarize_runs(
    runs: dict[str, list[np.ndarray]], true_val: np.ndarray, true_test: np.ndarray, hashes: np.ndarray
) -> dict:
    """best_in_pool {hash, val, test} and, per method, the final best found (mean, std over seeds),
    how many seeds found the pool's best, the best-so-far curve and each seed's run."""
    best = int(np.argmax(true_val))
    result = {
        "best_in_pool": {"hash": str(hashes[best]), "val": float(true_val[best]), "test": json_number(true_test[best])}
    }
    for name, queries in runs.items():
        found = [best_so_far(q, true_val) for q in queries]  # pool index of the best cell after each query
        val = np.array([true_val[f] for f in found])  # [seeds, budget]
        test = np.array([true_test[f[-1]] for f in found])
        result[name] = {
            "final_val_mean": float(val[:, -1].mean()),
            "final_val_std": float(val[:, -1].std()),
            "final_test_mean": json_number(float(np.mean(test))),
            "found_best_in_pool": int(sum(f[-1] == best for f in found)),
            "curve_val_mean": val.mean(0).tolist(),  # index q-1: after q queries
            "curve_val_std": val.std(0).tolist(),
            "runs": [
                {
                    "seed": seed,
                    "best_hash": str(hashes[f[-1]]),
                    "best_val": float(v[-1]),
                    "best_test": json_number(t),
                    "queried": hashes[q].tolist(),
                }
                for seed, (q, f, v, t) in enumerate(zip(queries, found, val, test))
            ],
        }
    return result


def val_curves(runs: dict[str, list[np.ndarray]], true_val: np.ndarray) -> dict[str, np.ndarray]:
    """Best true val accuracy found after each query, [seeds, budget] per method (for plot_search_curves)."""
    return {name: np.array([true_val[best_so_far(q, true_val)] for q in queries]) for name, queries in runs.items()}


def budget_table(r: dict) -> str:
    """The final best val (and test) accuracy per method and the pool's best, as printed by search.py."""
    c, b = r["config"], r["best_in_pool"]
    lines = [
        f"best true val accuracy found with {c['budget']} queries, {c['seeds']} seeds, pool of {c['pool']:,} "
        f"(n0 {c['n0']}, {c['per_round']} per round, {c['model']} {c['hp']['epochs']} epochs)",
        f"{'method':<8} {'val % mean +- std':>18} {'test % mean':>12} {'found the best':>15}",
    ]
    for name in METHODS:
        m = r[name]
        lines.append(
            f"{name:<8} {100 * m['final_val_mean']:>10.2f} +- {100 * m['final_val_std']:.2f} "
            f"{pct(m['final_test_mean'], 12)} {m['found_best_in_pool']:>8}/{c['seeds']}"
        )
    lines.append(f"{'pool':<8} {100 * b['val']:>10.2f}         {pct(b['test'], 12)}   (best cell {b['hash'][:12]})")
    return "\n".join(lines)


def plot_search_curves(path: Path, curves: dict[str, np.ndarray], best: float, title: str, n0: int = 0) -> None:
    """Best true accuracy found vs queries: mean line, +-std shaded, per method; the pool's best dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        q = np.arange(1, c.shape[1] + 1)
        m, s = 100 * c.mean(0), 100 * c.std(0)
        ax.plot(q, m, label=f"{name} ({c.shape[0]} seeds)")
        ax.fill_between(q, m - s, m + s, alpha=0.25)
    ax.axhline(100 * best, color="k", ls="--", lw=0.8, label=f"best in pool {100 * best:.2f}%")
    if n0:
        ax.axvline(n0, color="gray", ls=":", lw=0.8, label=f"first predictor ({n0} random cells)")
    ax.set(xlabel="queries (labelled cells)", ylabel="best true val accuracy found (%)", title=title)
    lo = min(100 * c.mean(0)[min(9, c.shape[1] - 1)] for c in curves.values())
    ax.set_ylim(max(lo - 1, 0), 100 * best + 0.3)
    ax.grid(ls="--", alpha=0.5)
    ax.legend(loc="lower right")
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
    plt.close(fig)
