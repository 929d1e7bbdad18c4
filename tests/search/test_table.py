"""lib/search/table.py: a table's answers and costs, the incumbent after each query, the per-strategy summary
against queries and simulated seconds, the printed table; dataset.NB101.search_table on files."""

import numpy as np
import pytest
from conftest import table_of

from lib.search import table as B
from lib.util.errors import UserError


def flat(val, repeats: int = 1) -> np.ndarray:
    """Labels [n, epochs, repeats]: val at every epoch count and repeat."""
    return np.tile(np.asarray(val, float)[:, None, None], (1, 4, repeats))


def test_a_query_reads_its_budget_and_repeat_and_costs_its_time():
    t = table_of(flat([0.9, 0.8], 3), seconds=np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3))
    t.labels[0, 3] = (0.91, 0.92, 0.93)
    rng = np.random.default_rng(0)
    assert t.query(0, 108, rng) == (0.91, 9.0)  # the first repeat unless asked otherwise
    assert t.query(1, 12, rng) == (0.8, 15.0)
    t.random_repeat = True
    got = {t.query(0, 108, rng) for _ in range(60)}
    assert got == {(0.91, 9.0), (0.92, 10.0), (0.93, 11.0)}  # each repeat with its own time
    t.labels[0, 3, 1] = np.nan  # a repeat the file lacks is never read
    assert {t.query(0, 108, rng)[0] for _ in range(30)} == {0.91, 0.93}


def test_multi_fidelity_needs_every_budget_and_names_are_checked():
    t = table_of(flat([0.9, 0.8]))
    t.check(["re", "sh"])
    t.labels[1, 0] = np.nan
    with pytest.raises(UserError, match="sh queries every budget, but the file has no label at 4 epochs"):
        t.check(["re", "sh"])
    with pytest.raises(UserError, match="--strategy bogus: choose from random re ls"):
        t.check(["bogus"])


def test_the_incumbent_is_the_best_label_at_the_highest_budget_so_far():
    trace = B.Trace(
        rows=np.array([0, 1, 2, 1, 3]),
        epochs=np.array([4, 4, 12, 108, 108]),
        labels=np.array([0.5, 0.7, 0.6, 0.8, 0.75]),
        seconds=np.ones(5),
    )
    assert trace.incumbents().tolist() == [0, 1, 2, 1, 1]


def test_summary_curves_and_table_on_known_runs():
    val = np.array([0.90, 0.94, 0.92, 0.95, 0.91])
    t = table_of(flat(val), test=np.array([0.89, 0.93, np.nan, 0.94, 0.90]))
    runs = [
        B.Trace(np.array([0, 2, 3]), np.full(3, 108), val[[0, 2, 3]], np.array([10.0, 20.0, 30.0])),
        B.Trace(np.array([4, 1, 0]), np.full(3, 108), val[[4, 1, 0]], np.array([5.0, 5.0, 5.0])),
    ]
    s, curves = B.summarize(runs, t, horizon=60.0)
    assert s["final_val_mean"] == pytest.approx(0.945) and s["final_val_std"] == pytest.approx(0.005)
    assert s["final_test_mean"] == pytest.approx(0.935) and s["found_best_in_pool"] == 1
    assert s["regret_mean"] == pytest.approx(0.005) and s["queries_to_best_median"] == 3
    assert s["curve_val_mean"] == pytest.approx([0.905, 0.93, 0.945])
    assert [(r["best_hash"], r["queries_to_best"], r["seconds"]) for r in s["runs"]] == [
        ("h3", 3, 60.0),
        ("h1", None, 15.0),
    ]
    grid, by_time = curves["time"]
    at = {float(g): list(v) for g, v in zip(grid, by_time.T)}
    assert np.isnan(at[0.0][0]) and np.isnan(at[0.0][1])  # nothing finished at time 0
    assert at[60.0] == pytest.approx([0.95, 0.94])
    i = int(np.searchsorted(grid, 10.0))  # at 10 s: run 0 finished its first query, run 1 its second
    assert by_time[:, i].tolist() == pytest.approx([0.90, 0.94])
    config = {"queries": 3, "seeds": 2}
    result = {"config": config, "pool": B.pool_summary(t, None), "strategies": {"re": s}}
    lines = B.budget_table(result).splitlines()
    assert lines[2].split() == ["re", "94.50", "+-", "0.50", "93.50", "0.50", "1/2", "3", "0.0"]
    assert lines[3].split()[:3] == ["pool", "95.00", "94.00"]


def test_compare_runs_every_strategy_and_seed_within_the_budget():
    t = table_of(flat(np.linspace(0.80, 0.95, 40)))
    result, curves = B.compare(t, ["random", "re"], seeds=3, queries=12, quiet=True)
    assert list(result["strategies"]) == ["random", "re"] and result["pool"]["cells"] == 40
    for name, s in result["strategies"].items():
        assert len(s["runs"]) == 3 and all(len(r["queried"]) == 12 for r in s["runs"])
        assert curves[name]["queries"].shape == (3, 12) and np.all(np.diff(s["curve_val_mean"]) >= 0)
    assert result["pool"]["neighbourhood"] == "10 nearest by path encoding"
    timed, _ = B.compare(t, ["random"], seeds=2, queries=None, seconds=5.0, quiet=True)
    assert [r["seconds"] for r in timed["strategies"]["random"]["runs"]] == [5.0, 5.0]  # 1 s per query
    with pytest.raises(UserError, match="give a budget"):
        B.compare(t, ["random"], seeds=1, queries=None, quiet=True)


def test_search_table_of_a_file(demo_h5):
    from dataset import load_nb101

    data = load_nb101(demo_h5)
    t = data.search_table("val")
    assert t.n == len(data) and t.labels.shape == (len(data), 4, 1)
    np.testing.assert_array_equal(t.labels[:, -1, 0], data.labels("val", 108, 0))
    np.testing.assert_array_equal(t.true_val, data.labels("val", 108, "mean"))
    assert t.estimated_seconds is False  # the demo file has only 108 epochs, so nothing at fewer epochs is asked
    np.testing.assert_allclose(t.seconds[:, 0, 0], t.seconds[:, -1, 0] * 4 / 108)  # what sh would be charged
    r = data.search_table("val", random_repeat=True)
    assert r.labels.shape == (len(data), 4, 3) and r.random_repeat


@pytest.mark.slow
def test_a_pool_of_every_cell_searches_the_space_neighbourhood(space):
    """The full-size path: 423,624 cells, NB101's edit-distance neighbourhood and mutation, 3 repeats read
    at random; the labels are synthetic (a function of the cell), the truth their mean."""
    n = len(space["num_vertices"])
    rng = np.random.default_rng(0)
    base = 0.80 + 0.02 * (space["operations"] == 0).sum(1) + 0.005 * space["adjacency"].sum((1, 2))
    labels = np.repeat((base[:, None] + rng.normal(0, 0.002, (n, 3)))[:, None], 4, 1)
    table = B.Table(
        {k: space[k] for k in ("adjacency", "operations", "num_vertices")},
        labels,
        np.full((n, 4, 3), 100.0),
        labels[:, -1].mean(1),
        labels[:, -1].mean(1) - 0.01,
        space["hash"],
        random_repeat=True,
    )
    result, _ = B.compare(table, ["re", "ls"], seeds=2, queries=60, quiet=True)
    assert result["pool"]["neighbourhood"] == "edit distance 1" and result["pool"]["cells"] == n
    for s in result["strategies"].values():
        assert all(len(set(r["queried"])) == 60 for r in s["runs"])
        assert s["final_val_mean"] > np.quantile(table.true_val, 0.95)  # climbs well above a random cell


def fails_in_a_worker(x, y, seed, start=None):
    """A predictor trainer with a bug (module level: a spawned worker process imports it)."""
    raise ValueError("a bug in round 1")


def dies_in_a_worker(x, y, seed, start=None):
    import os

    os._exit(3)


def sleeps_in_a_worker(x, y, seed, start=None):
    import time

    time.sleep(120)


@pytest.mark.slow
def test_searches_side_by_side_match_one_at_a_time(demo_h5):
    """jobs=2: each search in a worker process of one thread; every Trace is what the same search gives
    alone (a predictor strategy included, its trainer sent to the worker), in the order asked."""
    from dataset import load_nb101
    from model import SearchTrainer, hyperparams

    table = load_nb101(demo_h5).search_table("val")
    train = SearchTrainer("mlp", hyperparams("mlp", {"epochs": 3}))
    loop = dict(train=train, n0=4, per_round=3)
    searches = [("npenas", 0, loop), ("re", 0, {}), ("ls", 1, {}), ("random", 2, {}), ("guided", 1, loop)]
    alone = B.run_searches(table, searches, queries=12, seconds=None, quiet=True)
    side = B.run_searches(table, searches, queries=12, seconds=None, jobs=2, quiet=True)
    for a, s in zip(alone, side):
        np.testing.assert_array_equal(a.rows, s.rows)
        np.testing.assert_array_equal(a.labels, s.labels)
    assert len({tuple(t.rows) for t in side}) == len(searches)  # five different searches, not one five times


@pytest.mark.parametrize(
    "trainer, error",
    [(fails_in_a_worker, "a bug in round 1"), (dies_in_a_worker, "a search worker process died \\(exit code 3\\)")],
)
def test_a_failing_worker_stops_the_searches_and_says_why(demo_h5, trainer, error):
    """An exception in a worker reaches the caller as itself; a worker that dies breaks the pool, which
    says so at once: the other worker, busy with a search of minutes, is stopped, not waited for, and
    no worker is left running."""
    import multiprocessing
    import time

    from dataset import load_nb101

    table = load_nb101(demo_h5).search_table("val")
    failing, slow = dict(train=trainer, n0=2, per_round=2), dict(train=sleeps_in_a_worker, n0=2, per_round=2)
    searches = [("npenas", 0, failing), ("npenas", 1, slow)] + [("re", s, {}) for s in range(3)]
    before = set(multiprocessing.active_children())  # e.g. a fixture's
    t0 = time.perf_counter()
    with pytest.raises(Exception, match=error) as raised:
        B.run_searches(table, searches, queries=8, seconds=None, jobs=2, quiet=True)
    assert time.perf_counter() - t0 < 60  # the sleeping search alone would take 120 s
    if trainer is fails_in_a_worker:  # raised as itself, the worker's traceback chained to it
        assert type(raised.value) is ValueError and "in fails_in_a_worker" in str(raised.value.__cause__)
    assert set(multiprocessing.active_children()) == before


def test_searches_run_side_by_side_only_where_it_pays():
    from lib.util.devices import usable_cores

    assert B.default_jobs(["re", "guided"], "cpu") == usable_cores()
    assert B.default_jobs(["random", "re", "ls", "sh"], "cpu") == 1  # milliseconds a search
    assert B.default_jobs(["guided"], "cuda") == 1
