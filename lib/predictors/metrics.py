"""How well predicted accuracies rank and match the true ones; shared by train.py, search.py and bench/.

    from lib.predictors.metrics import prediction_metrics
    m = prediction_metrics(pred, true)  # dict: kendall_tau, spearman, mse, precision_at_k, top1_true, ...

All functions take 1-D arrays of accuracies as fractions (0.93, not 93) and are computed once, on
the final predictions of the whole evaluation set.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

TOP_K = (10, 100)
TOP_FRACTION = 0.01  # "the true top-1%" of pick_summary


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


def prediction_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
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


def true_ranks(acc: np.ndarray) -> np.ndarray:
    """Rank of each accuracy, 1 = best; ties broken by index; NaN (no label) -> 0."""
    ranks = np.zeros(len(acc), np.int64)
    finite = np.flatnonzero(np.isfinite(acc))
    ranks[finite[top_k(acc[finite], len(finite))]] = np.arange(1, len(finite) + 1)
    return ranks


def pick_summary(pick_rows: np.ndarray, val: np.ndarray, hashes: np.ndarray) -> dict:
    """How good a ranked pick is: pick_rows are the picked cells' rows in the labelled file (best first,
    -1 where the file lacks the cell), val the file's true accuracies (NaN: no label), hashes its cells.

    best_true_val / best_true_hash: the best accuracy in the file and its cell;
    top1_true_val and regret (best - top-1; None when the file lacks the top-1); top1pct_size:
    cells in the file's true top-1%; top1pct_hits: how many of them the pick holds;
    top1pct_captured = hits / size (the share of the true top-1% captured); topk_precision = hits / k;
    topk_in_file: how many of the pick the file holds (all of them unless cells come from elsewhere).
    """
    finite = np.flatnonzero(np.isfinite(val))
    if len(finite) == 0:
        return {"labelled": False}
    size = max(1, math.ceil(TOP_FRACTION * len(finite)))
    top_rows = set(finite[top_k(val[finite], size)].tolist())
    hits = sum(int(r) in top_rows for r in pick_rows)
    best_row = int(finite[np.argmax(val[finite])])
    top1 = val[pick_rows[0]] if pick_rows[0] >= 0 else math.nan
    return {
        "labelled": True,
        "n_labelled": len(finite),
        "best_true_val": float(val[best_row]),
        "best_true_hash": str(hashes[best_row]),
        "top1_true_val": float(top1) if math.isfinite(top1) else None,  # JSON has no NaN
        "regret": float(val[best_row] - top1) if math.isfinite(top1) else None,
        "top1pct_size": size,
        "top1pct_hits": hits,
        "top1pct_captured": hits / size,
        "topk_precision": hits / len(pick_rows),
        "topk_in_file": int((pick_rows >= 0).sum()),
    }
