"""lib/search/table.py: a table's answers and costs (made from a hand-written file with dataset.NB101.by_epochs),
the query loop, every strategy and seed compared, searches side by side in worker processes."""

import multiprocessing

import numpy as np
import pytest
from conftest import final_accuracies, table_of, write_h5

from lib.search import table as T
from lib.search.report import Truth
from lib.util.errors import UserError


def flat(val, repeats: int = 1) -> np.ndarray:
    """Labels [n, epochs, repeats]: val for every epochs and repeat."""
    return np.tile(np.asarray(val, float)[:, None, None], (1, 4, repeats))


def test_a_query_reads_its_epochs_and_repeat_and_costs_its_time():
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


def test_the_table_of_a_file(tmp_path):
    """Three cells written by hand: cell 0 has a blown repeat at 108 epochs and no 4-epoch time; cell 1
    lacks repeat 0 at 108 epochs (its time too); cell 2 has no label at all and is no query's answer."""
    nan = np.nan
    val = [[0.90, 0.10, 0.92], [nan, 0.80, 0.82], [nan, nan, nan]]  # after 108 epochs, each repeat
    m = final_accuracies(val, [[0.89, nan, 0.91]] + [[nan] * 3] * 2)
    m[0, 0, :, 1, 2], m[1, 0, :, 1, 2] = (0.50, 0.52, nan), (0.40, 0.41, 0.42)  # val after 4 epochs
    m[0, 3, :, 1, 0], m[1, 3, :, 1, 0] = (100, 110, 120), (nan, 200, 210)  # training time, 108 epochs
    m[1, 0, :, 1, 0] = (8, 9, 10)  # and 4 epochs
    from dataset import load_nb101

    data = load_nb101(write_h5(tmp_path / "d.hdf5", m))
    t = T.Table.from_arrays(data.by_epochs("val"))
    assert t.n == 2 and t.truth.hashes.tolist() == [f"{i:032x}" for i in (0, 1)] and not t.random_repeat
    np.testing.assert_allclose(t.truth.val, [0.91, 0.81])  # the mean over the usable repeats
    np.testing.assert_allclose(t.truth.test, [0.90, nan])
    rng = np.random.default_rng(0)
    assert t.query(0, 108, rng) == pytest.approx((0.90, 100.0))
    assert t.query(1, 108, rng) == pytest.approx((0.80, 148.0))  # the next repeat; no time: the file's mean
    assert t.query(0, 4, rng) == pytest.approx((0.50, 100 * 4 / 108))  # no time: the 108-epoch one, scaled
    assert t.query(1, 4, rng) == pytest.approx((0.40, 8.0))
    assert t.estimated_seconds
    with pytest.raises(UserError, match="sh queries each of NB101's epochs, but the file has no label at 12/36"):
        t.check(["sh"])
    every = T.Table.from_arrays(data.by_epochs("val", every_repeat=True))
    assert every.random_repeat and every.labels.shape == (2, 4, 3)
    read = {every.query(0, 108, rng) for _ in range(40)}
    assert {(round(y, 6), cost) for y, cost in read} == {(0.90, 100.0), (0.92, 120.0)}  # never the blown run


def test_strategy_names_are_checked():
    with pytest.raises(UserError, match="--strategy bogus: choose from random re ls"):
        table_of(flat([0.9, 0.8])).check(["bogus"])


def test_compare_runs_every_strategy_and_seed_within_the_budget():
    t = table_of(flat(np.linspace(0.80, 0.95, 40)))
    result, curves = T.compare(t, ["random", "re"], seeds=3, queries=12, quiet=True)
    assert list(result["strategies"]) == ["random", "re"] and result["pool"]["cells"] == 40
    for name, s in result["strategies"].items():
        assert len(s["runs"]) == 3 and all(len(r["queried"]) == 12 for r in s["runs"])
        assert curves[name]["queries"].shape == (3, 12) and np.all(np.diff(s["curve_val_mean"]) >= 0)
    assert result["pool"]["neighbourhood"] == "10 nearest by path encoding"
    timed, _ = T.compare(t, ["random"], seeds=2, queries=None, seconds=5.0, quiet=True)
    assert [r["seconds"] for r in timed["strategies"]["random"]["runs"]] == [5.0, 5.0]  # 1 s per query
    with pytest.raises(UserError, match="give a budget"):
        T.compare(t, ["random"], seeds=1, queries=None, quiet=True)


@pytest.mark.slow
def test_a_pool_of_every_cell_searches_the_space_neighbourhood(space):
    """The full-size path: 423,624 cells, NB101's edit-distance neighbourhood and mutation, 3 repeats read
    at random; the labels are synthetic (a function of the cell), the truth their mean."""
    n = len(space["num_vertices"])
    rng = np.random.default_rng(0)
    base = 0.80 + 0.02 * (space["operations"] == 0).sum(1) + 0.005 * space["adjacency"].sum((1, 2))
    labels = np.repeat((base[:, None] + rng.normal(0, 0.002, (n, 3)))[:, None], 4, 1)
    truth = Truth(space["hash"], labels[:, -1].mean(1), labels[:, -1].mean(1) - 0.01)
    cells = {k: space[k] for k in ("adjacency", "operations", "num_vertices")}
    table = T.Table(cells, labels, np.full((n, 4, 3), 100.0), truth, random_repeat=True)
    result, _ = T.compare(table, ["re", "ls"], seeds=2, queries=60, quiet=True)
    assert result["pool"]["neighbourhood"] == "edit distance 1" and result["pool"]["cells"] == n
    for s in result["strategies"].values():
        assert all(len(set(r["queried"])) == 60 for r in s["runs"])
        assert s["final_val_mean"] > np.quantile(truth.val, 0.95)  # climbs well above a random cell


def fails_in_a_worker(x, y, seed, start=None):
    """A predictor trainer with a bug (module level: a spawned worker process imports it)."""
    raise ValueError("a bug in round 1")


def dies_in_a_worker(x, y, seed, start=None):
    import os

    os._exit(3)


def busy_for_ever(x, y, seed, start=None):
    import threading

    threading.Event().wait()


@pytest.mark.slow
def test_searches_side_by_side_match_one_at_a_time(demo_h5):
    """jobs=2: each search in a worker process of one thread; every Trace is what the same search gives
    alone (a predictor strategy included, its trainer sent to the worker), in the order asked."""
    from dataset import load_nb101
    from model import SearchTrainer, hyperparams

    table = T.Table.from_arrays(load_nb101(demo_h5).by_epochs("val"))
    train = SearchTrainer("mlp", hyperparams("mlp", {"epochs": 3}))
    loop = dict(train=train, n0=4, per_round=3)
    searches = [("npenas", 0, loop), ("re", 0, {}), ("ls", 1, {}), ("random", 2, {}), ("guided", 1, loop)]
    alone = T.run_searches(table, searches, queries=12, seconds=None, quiet=True)
    side = T.run_searches(table, searches, queries=12, seconds=None, jobs=2, quiet=True)
    for a, s in zip(alone, side):
        np.testing.assert_array_equal(a.rows, s.rows)
        np.testing.assert_array_equal(a.labels, s.labels)
    assert len({tuple(t.rows) for t in side}) == len(searches)  # five different searches, not one five times


@pytest.mark.slow
@pytest.mark.timeout(300)  # waiting for the search that never ends would hang here: fail instead
@pytest.mark.parametrize(
    "trainer, error",
    [(fails_in_a_worker, "a bug in round 1"), (dies_in_a_worker, "a search worker process died \\(exit code 3\\)")],
)
def test_a_failing_worker_stops_the_searches_and_says_why(demo_h5, trainer, error):
    """An exception in a worker reaches the caller as itself; a worker that dies breaks the pool, which
    says so at once: the other worker, busy with a search that never ends, is stopped, not waited for,
    and no worker is left running."""
    from dataset import load_nb101

    table = T.Table.from_arrays(load_nb101(demo_h5).by_epochs("val"))
    failing, endless = dict(train=trainer, n0=2, per_round=2), dict(train=busy_for_ever, n0=2, per_round=2)
    searches = [("npenas", 0, failing), ("npenas", 1, endless)] + [("re", s, {}) for s in range(3)]
    before = set(multiprocessing.active_children())  # e.g. a fixture's
    with pytest.raises(Exception, match=error) as raised:
        T.run_searches(table, searches, queries=8, seconds=None, jobs=2, quiet=True)
    if trainer is fails_in_a_worker:  # raised as itself, the worker's traceback chained to it
        assert type(raised.value) is ValueError and "in fails_in_a_worker" in str(raised.value.__cause__)
    assert set(multiprocessing.active_children()) == before


def test_searches_run_side_by_side_only_where_it_pays():
    from lib.util.devices import usable_cores

    assert T.default_jobs(["re", "guided"], "cpu") == usable_cores()
    assert T.default_jobs(["random", "re", "ls", "sh"], "cpu") == 1  # milliseconds a search
    assert T.default_jobs(["guided"], "cuda") == 1


@pytest.mark.parametrize("name", ["random", "re", "ls", "sh", "hyperband"])
def test_a_search_ends_when_its_pool_is_spent(name):
    """A budget larger than the pool can fill: the search ends once its strategy has trained every cell it
    can, in queries and in simulated seconds alike; no (cell, epochs) is answered, or paid for, twice."""
    t = table_of(flat(np.linspace(0.80, 0.95, 6)))
    for budget in (dict(queries=10_000), dict(queries=None, seconds=1e9)):
        trace = T.run_strategy(T.STRATEGIES[name](T.Pool(t.cells), 0), t, seed=0, **{"seconds": None, **budget})
        asked = list(zip(trace.rows.tolist(), trace.epochs.tolist()))
        assert len(asked) == len(set(asked)) and {r for r, _ in asked} == set(range(6))  # every cell, once each
        assert trace.seconds.sum() == len(asked)  # 1 s a query: each paid once


def test_what_the_pool_can_cost():
    """most_seconds: every labelled cell at 108 epochs at its costliest repeat (a repeat without a label
    costs nothing); cheapest: the least a first query of the epochs asked can cost."""
    labels = flat([0.9, 0.8], 2)
    labels[1, 3, 1] = np.nan  # cell 1 has no second 108-epoch repeat
    seconds = np.array([[[1, 2], [3, 4], [5, 6], [10, 30]], [[0.5, 9], [7, 8], [9, 9], [20, 99]]], float)
    t = table_of(labels, seconds)
    assert t.most_seconds() == 30 + 20
    assert t.cheapest((108,)) == 10 and t.cheapest((4, 12, 36, 108)) == 0.5
