"""lib/budget.py: the guided and random searches (through the train(x, y, seed) callable they are
given), the per-method summary, the table."""

import numpy as np
import pytest
import torch

from lib import budget as B
from lib.errors import UserError
from lib.features import cell_features
from lib.nb101_space import NUM_CELLS
from model import search_trainer


def test_budgeted_search_queries_distinct_cells_within_budget(space):
    rows = np.random.default_rng(2).choice(NUM_CELLS, 80, replace=False)
    x = cell_features(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows])
    y = np.linspace(0.85, 0.95, 80)
    hp = {"epochs": 2, "batch_size": 5, "lr": 1e-3, "wd": 0.0, "loss": "mse"}
    train = search_trainer("mlp", hp)
    for budget, n0, per_round in ((27, 10, 4), (10, 10, 3), (80, 5, 50)):
        q = B.budgeted_search(x, y, train=train, budget=budget, n0=n0, per_round=per_round, seed=1)
        assert len(q) == budget == len(set(q.tolist())) and q.min() >= 0 and q.max() < 80
        assert np.array_equal(q[:n0], np.random.default_rng(1).choice(80, n0, replace=False))
    again = B.budgeted_search(x, y, train=train, budget=27, n0=10, per_round=4, seed=1)
    first = B.budgeted_search(x, y, train=train, budget=27, n0=10, per_round=4, seed=1)
    assert np.array_equal(first, again)  # seeded: the same queries
    with pytest.raises(UserError, match="budget"):
        B.budgeted_search(x, y, train=train, budget=81, n0=10, per_round=4)
    r = B.random_search(80, 30, seed=3)
    assert len(set(r.tolist())) == 30
    best = B.best_so_far(q, y)
    assert np.array_equal(y[best], np.maximum.accumulate(y[q]))


def test_summary_curves_and_table_on_known_runs():
    val = np.array([0.90, 0.94, 0.92, 0.95, 0.91])
    test = np.array([0.89, 0.93, np.nan, 0.94, 0.90])
    hashes = np.array(["a", "b", "c", "d", "e"])
    runs = {"guided": [np.array([0, 2, 3]), np.array([4, 1, 0])], "random": [np.array([2, 0, 4])] * 2}
    r = B.summarize_runs(runs, val, test, hashes)
    assert r["best_in_pool"] == {"hash": "d", "val": 0.95, "test": 0.94}
    g = r["guided"]
    assert g["final_val_mean"] == pytest.approx(0.945) and g["final_val_std"] == pytest.approx(0.005)
    assert g["final_test_mean"] == pytest.approx(0.935) and g["found_best_in_pool"] == 1
    assert g["curve_val_mean"] == pytest.approx([0.905, 0.93, 0.945])
    assert [(x["seed"], x["best_hash"], x["queried"]) for x in g["runs"]] == [
        (0, "d", ["a", "c", "d"]),
        (1, "b", ["e", "b", "a"]),
    ]
    assert r["random"]["final_test_mean"] is None and r["random"]["runs"][0]["best_test"] is None  # NaN -> null
    curves = B.val_curves(runs, val)
    assert curves["guided"].tolist() == [[0.90, 0.92, 0.95], [0.91, 0.94, 0.94]]
    config = {"budget": 3, "seeds": 2, "pool": 5, "n0": 1, "per_round": 1, "model": "mlp", "hp": {"epochs": 2}}
    table = B.budget_table({"config": config, **r}).splitlines()
    assert table[2].split() == ["guided", "94.50", "+-", "0.50", "93.50", "1/2"]
    assert table[3].split() == ["random", "92.00", "+-", "0.00", "-", "0/2"]
    assert table[4].split()[:3] == ["pool", "95.00", "94.00"]


def test_guided_search_queries_what_the_trained_predictor_ranks_best():
    """An oracle predictor (the true labels, whatever it was trained on): after n0 random cells, each
    round queries the best unqueried cells, so the pool's top cells come next, in order."""
    y = np.random.default_rng(0).permutation(np.linspace(0.80, 0.95, 40))
    seeds = []

    def train(x_sub, y_sub, seed):
        assert np.array_equal(y[x_sub["row"]], y_sub)  # trained on the queried cells and their labels
        seeds.append(seed)
        return lambda features: y[features["row"]]

    x = {"row": torch.arange(40)}
    q = B.budgeted_search(x, y, train=train, budget=16, n0=6, per_round=4, seed=2)
    rest = [i for i in np.argsort(-y) if i not in q[:6]]
    assert q[6:].tolist() == rest[:10] and seeds == [2000, 2001, 2002]  # 3 rounds: 4 + 4 + 2 cells
