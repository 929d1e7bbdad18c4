"""How well predicted accuracies rank and match the true ones; shared by train.py, search.py and bench/.

    from metrics import evaluate
    m = evaluate(pred, true)     # dict: kendall_tau, spearman, mse, precision_at_k, top1_true, ...

All functions take 1-D arrays of accuracies as fractions (0.93, not 93) and are computed once, on
the final predictions of the whole evaluation set.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

TOP_K = (10, 100)


def kendall_tau(pred: np.ndarray, true: np.ndarray) -> float:
    """Kendall's tau-b (ties counted as scipy does), O(N log N)."""
    return float(stats.kendalltau(pred, true).statistic)


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    return float(stats.spearmanr(pred, true).statistic)


def mse_pp(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared error in percentage points squared (0.01 accuracy off = 1.0)."""
    return float(np.mean((100 * (np.asarray(pred) - np.asarray(true))) ** 2))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (ties: lower index first)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


def precision_at_k(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    """Fraction of the true top-k cells that are also in the predicted top-k."""
    k = min(k, len(true))
    return len(np.intersect1d(top_k(pred, k), top_k(true, k))) / k


def evaluate(pred: np.ndarray, true: np.ndarray) -> dict:
    """All metrics of metrics.json for predictions `pred` against labels `true` (same cells, same order)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    best = top_k(pred, 10)
    return {
        "kendall_tau": kendall_tau(pred, true),
        "spearman": spearman(pred, true),
        "mse": mse_pp(pred, true),
        "precision_at_k": {str(k): precision_at_k(pred, true, k) for k in TOP_K},
        "top1_true": float(true[best[0]]),  # true accuracy of the cell predicted best
        "top10_true_mean": float(true[best].mean()),
        "best_true": float(true.max()),
        "n_eval": len(true),
    }
