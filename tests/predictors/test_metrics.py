"""lib/predictors/metrics.py: rank correlations against independent O(N^2) definitions, the metrics of
metrics.json, true ranks and the summary of a ranked pick."""

import json
import math

import numpy as np
import pytest

from lib.predictors import metrics as MT


def tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b from its definition: (concordant - discordant) / sqrt((n0 - n1) (n0 - n2)),
    n0 all pairs, n1 / n2 the pairs tied in x / in y."""
    conc = disc = tied_x = tied_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            tied_x += dx == 0
            tied_y += dy == 0
            conc += dx * dy > 0
            disc += dx * dy < 0
    pairs = n * (n - 1) // 2
    return (conc - disc) / math.sqrt((pairs - tied_x) * (pairs - tied_y))


def mid_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    return np.array([(x < v).sum() + ((x == v).sum() + 1) / 2 for v in x])


def test_kendall_and_spearman_on_known_input():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    assert MT.kendall_tau(true, true) == 1.0 and MT.kendall_tau(-true, true) == -1.0
    # one discordant pair out of six: (5 - 1) / 6
    assert MT.kendall_tau(np.array([1.0, 3.0, 2.0, 4.0]), true) == pytest.approx(4 / 6)
    # ranks 1,3,2,4 vs 1,2,3,4: rho = 1 - 6 * 2 / (4 * 15)
    assert MT.spearman(np.array([10.0, 30.0, 20.0, 40.0]), true) == pytest.approx(0.8)


def test_tau_b_with_ties_on_a_hand_count():
    # pairs: (0,1) tied in x; (0,2) conc; (0,3) conc; (1,2) conc; (1,3) tied in y; (2,3) disc
    x, y = np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 2.0])
    assert tau_b(x, y) == pytest.approx((3 - 1) / math.sqrt(5 * 5))
    assert MT.kendall_tau(x, y) == pytest.approx(2 / 5, abs=1e-12)


def test_rank_correlations_match_their_definitions_with_ties():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 20, 300) / 20  # many ties
    pred = true + rng.normal(0, 0.3, 300)
    pred[:40] = 0.5  # ties in the prediction too
    assert MT.kendall_tau(pred, true) == pytest.approx(tau_b(pred, true), abs=1e-12)
    rho = np.corrcoef(mid_ranks(pred), mid_ranks(true))[0, 1]  # Spearman: Pearson of the mid-ranks
    assert MT.spearman(pred, true) == pytest.approx(rho, abs=1e-12)


def test_precision_at_k_mse_and_top_values():
    true = np.array([0.90, 0.95, 0.80, 0.93, 0.91])
    pred = np.array([0.92, 0.90, 0.85, 0.94, 0.80])  # predicted order 3, 0, 1, 2, 4
    assert MT.precision_at_k(pred, true, 1) == 0.0  # true best is 1
    assert MT.precision_at_k(pred, true, 2) == 0.5  # {3, 0} vs {1, 3}
    assert MT.precision_at_k(pred, true, 3) == pytest.approx(2 / 3)  # {3, 0, 1} vs {1, 3, 4}
    assert MT.precision_at_k(pred, true, 100) == 1.0  # k beyond N: all cells
    assert MT.mse_pp(np.array([0.90, 0.92]), np.array([0.91, 0.92])) == pytest.approx(0.5)  # (1 pp)^2 / 2
    m = MT.prediction_metrics(pred, true)
    assert m["top1_true"] == 0.93 and m["best_true"] == 0.95 and m["n_eval"] == 5
    assert m["top10_true_mean"] == pytest.approx(true.mean())
    assert set(m["precision_at_k"]) == {"10", "100"}
    json.dumps(m)  # plain JSON types


def test_top_k_and_true_ranks_break_ties_by_index():
    acc = np.array([0.9, np.nan, 0.95, 0.9, 0.8])
    assert MT.top_k(np.array([1.0, 3.0, 3.0, 2.0]), 3).tolist() == [1, 2, 3]
    assert MT.true_ranks(acc).tolist() == [2, 0, 1, 3, 4]


def test_pick_summary_regret_and_top1pct():
    val = np.linspace(0.80, 0.95, 301)  # 300 labelled cells, row 300 the best; top-1% = rows 298..300
    val[0] = np.nan
    hashes = np.array([f"h{i}" for i in range(301)])
    s = MT.pick_summary(np.array([299, 10, 300, -1]), val, hashes)
    assert s["labelled"] and s["n_labelled"] == 300 and s["top1pct_size"] == 3
    assert s["best_true_val"] == 0.95 and s["best_true_hash"] == "h300"
    assert s["top1_true_val"] == pytest.approx(val[299]) and s["regret"] == pytest.approx(0.95 - val[299])
    assert s["top1pct_hits"] == 2 and s["top1pct_captured"] == pytest.approx(2 / 3)
    assert s["topk_precision"] == 0.5 and s["topk_in_file"] == 3
    unknown = MT.pick_summary(np.array([-1, 300]), val, hashes)  # the top-1 is not in the file
    assert unknown["top1_true_val"] is None and unknown["regret"] is None and unknown["top1pct_hits"] == 1
    assert MT.pick_summary(np.array([0]), np.full(3, np.nan), hashes[:3]) == {"labelled": False}
