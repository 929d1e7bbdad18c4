"""lib/search/model_free.py on small hand-worked pools (a neighbourhood given as a graph, labels known)."""

import numpy as np
from conftest import Graph, pool_of, step, table_of

from lib.search.ask_tell import FULL, Pool
from lib.search.model_free import Hyperband, LocalSearch, RandomSearch, RegularizedEvolution, SuccessiveHalving
from lib.search.table import run_strategy


def test_local_search_climbs_to_the_local_optimum_and_restarts():
    """A line 0-1-2-3-4-5 with a local optimum at 1 and the global one at 4: from 0, LS queries 1 (better),
    moves there, queries 2 (worse): 1 is a local optimum, so the next query is a random restart."""
    values = np.array([0.1, 0.5, 0.3, 0.2, 0.9, 0.4])
    line = Graph({i: [j for j in (i - 1, i + 1) if 0 <= j < 6] for i in range(6)})
    ls = LocalSearch(pool_of(6, line), seed=0, n_init=1)
    ls.tell(0, FULL, values[0])  # the start
    assert [step(ls, values)[0] for _ in range(2)] == [1, 2]
    assert ls.current == 1 and ls.best == (1, 0.5)
    restart = step(ls, values)[0]
    assert restart in (3, 4, 5) and ls.current is None  # not a neighbour: a fresh start
    assert ls.best == (restart, values[restart])


def test_regularized_evolution_tournament_and_aging():
    """Population 3, tournaments of 3: the parent is the population's best; the oldest dies, not the worst."""
    values = np.array([0.5, 0.9, 0.1, 0.7, 0.2, 0.3, 0.8])
    ring = Graph({i: [(i + 3) % 7] for i in range(7)})
    re = RegularizedEvolution(pool_of(7, ring), seed=1, population=3, sample=3)
    for row in (0, 1, 2):  # the first population, told in this order
        re.ask()
        re.tell(row, FULL, values[row])
    child = step(re, values)[0]
    assert ring.parents == [1] and child == 4  # the best of {0, 1, 2} is 1; its mutation is 4
    assert [m[0] for m in re.population] == [1, 2, 4]  # 0 (older) died, not 2 (worse)


def test_successive_halving_promotes_the_best_third_and_charges_each_epochs_time():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.sort(rng.uniform(0.5, 0.9, (n, 4)), axis=1)  # rising with the epochs
    seconds = np.outer(rng.uniform(100, 200, n), np.array([4, 12, 36, 108]) / 108)
    table = table_of(labels[..., None], seconds[..., None])
    sh = SuccessiveHalving(Pool(table.cells), seed=3)
    trace = run_strategy(sh, table, queries=40, seconds=None, seed=0)
    assert trace.epochs.tolist() == [4] * 27 + [12] * 9 + [36] * 3 + [108]
    rung = trace.rows[:27]
    nine = rung[np.argsort(-labels[rung, 0], kind="stable")[:9]]
    assert sorted(trace.rows[27:36]) == sorted(nine)
    three = nine[np.argsort(-labels[nine, 1], kind="stable")[:3]]
    assert sorted(trace.rows[36:39]) == sorted(three)
    assert trace.rows[39] == three[np.argmax(labels[three, 2])]
    np.testing.assert_allclose(trace.seconds, seconds[trace.rows, np.searchsorted([4, 12, 36, 108], trace.epochs)])
    assert trace.incumbents()[-1] == trace.rows[39]  # the one cell at 108 epochs is the incumbent
    assert trace.incumbents()[0] == rung[0] and len(set(rung)) == 27


def test_hyperband_brackets_and_random_search_distinct():
    n = 200
    labels = np.tile(np.linspace(0.5, 0.9, n)[:, None], (1, 4))
    table = table_of(labels[..., None])
    hb = run_strategy(Hyperband(Pool(table.cells), seed=0), table, queries=60, seconds=None, seed=0)
    counts = [int((hb.epochs[:40] == e).sum()) for e in (4, 12, 36, 108)]
    assert counts == [27, 9, 3, 1] and hb.epochs[40:52].tolist() == [12] * 12  # then the second bracket
    rnd = run_strategy(RandomSearch(Pool(table.cells), seed=0), table, queries=None, seconds=50.5, seed=0)
    assert len(rnd.rows) == 51 and len(set(rnd.rows.tolist())) == 51  # a time budget: queries until it is spent
