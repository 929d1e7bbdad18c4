"""lib/search/strategies.py on small hand-worked pools (a neighbourhood given as a graph, labels known), and
lib/search/neighbourhood.py and lib/predictors/path_encoding.py on real cells."""

import numpy as np
import pytest
import torch
from conftest import blank_cells, table_of

from lib.nb101.cell import LABEL_TO_OP, make_cell
from lib.nb101.space import NUM_CELLS
from lib.predictors.path_encoding import PATHS, path_encoding, path_index
from lib.search import strategies as S
from lib.search.neighbourhood import EditDistance, NearestByPaths, neighbourhood_of
from lib.search.table import run_strategy


class Graph:
    """A neighbourhood given by hand; mutate() takes the first neighbour and records the parent."""

    kind = "a graph"

    def __init__(self, edges: dict[int, list[int]]):
        self.edges, self.parents = edges, []

    def neighbours(self, row):
        return np.array(self.edges[row])

    def mutate(self, row, rng):
        self.parents.append(row)
        return self.edges[row][0]


def pool_of(n: int, near=None) -> S.Pool:
    pool = S.Pool(blank_cells(n))
    if near is not None:
        pool.__dict__["near"] = near  # the cached property, given
    return pool


def step(strategy, values) -> tuple[int, int]:
    (row, epochs), *_ = strategy.ask()
    strategy.tell(row, epochs, values[row])
    return row, epochs


def test_local_search_climbs_to_the_local_optimum_and_restarts():
    """A line 0-1-2-3-4-5 with a local optimum at 1 and the global one at 4: from 0, LS queries 1 (better),
    moves there, queries 2 (worse): 1 is a local optimum, so the next query is a random restart."""
    values = np.array([0.1, 0.5, 0.3, 0.2, 0.9, 0.4])
    line = Graph({i: [j for j in (i - 1, i + 1) if 0 <= j < 6] for i in range(6)})
    ls = S.LocalSearch(pool_of(6, line), seed=0, n_init=1)
    ls.tell(0, S.FULL, values[0])  # the start
    assert [step(ls, values)[0] for _ in range(2)] == [1, 2]
    assert ls.current == 1 and ls.best == (1, 0.5)
    restart = step(ls, values)[0]
    assert restart in (3, 4, 5) and ls.current is None  # not a neighbour: a fresh start
    assert ls.best == (restart, values[restart])


def test_regularized_evolution_tournament_and_aging():
    """Population 3, tournaments of 3: the parent is the population's best; the oldest dies, not the worst."""
    values = np.array([0.5, 0.9, 0.1, 0.7, 0.2, 0.3, 0.8])
    ring = Graph({i: [(i + 3) % 7] for i in range(7)})
    re = S.RegularizedEvolution(pool_of(7, ring), seed=1, population=3, sample=3)
    for row in (0, 1, 2):  # the first population, told in this order
        re.ask()
        re.tell(row, S.FULL, values[row])
    child = step(re, values)[0]
    assert ring.parents == [1] and child == 4  # the best of {0, 1, 2} is 1; its mutation is 4
    assert [m[0] for m in re.population] == [1, 2, 4]  # 0 (older) died, not 2 (worse)


class Draws:
    """A generator whose normal() returns fixed draws for the cells whose means it is given."""

    def __init__(self, rng, means, draws):
        self.rng, self.means, self.draws = rng, means, draws

    def normal(self, mean, std):
        assert np.allclose(std, 0)  # the members agree here
        return self.draws[np.abs(self.means[None] - mean[:, None]).argmin(1)]

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_bananas_queries_the_best_draws_and_npenas_the_best_means():
    """After n0 cells, one fit; the candidates around the best are scored by the ensemble; BANANAS takes
    the highest Thompson draws, NPENAS the highest means."""
    n = 12
    star = Graph({i: [j for j in range(n) if j != i] for i in range(n)})  # every cell next to every other
    means = np.linspace(0.80, 0.91, n)
    fits = []

    def train(x, y, seed):
        fits.append((len(y), seed))
        return lambda feats: np.stack([means[feats["row"]]] * 3, 1)  # 3 members that agree

    for cls in (S.Bananas, S.NPENAS):
        pool = pool_of(n, star)
        pool.features = lambda rows: {"row": torch.as_tensor(rows)}
        s = cls(pool, seed=4, train=train, n0=2, per_round=3)
        for row in (0, 1):
            s.ask()
            s.tell(row, S.FULL, means[row])
        draws = np.full(n, -1.0)
        draws[[3, 7, 5]] = (0.99, 0.98, 0.97)  # the draws BANANAS sees: not the order of the means
        s.rng = Draws(s.rng, means, draws)
        picked = [s.ask()[0][0] for _ in range(3)]
        for row in picked:
            s.tell(row, S.FULL, means[row])
        assert picked == ([3, 7, 5] if cls is S.Bananas else [11, 10, 9])
    assert fits == [(2, 4000), (2, 4000)]


def test_successive_halving_promotes_the_best_third_and_charges_each_budget():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.sort(rng.uniform(0.5, 0.9, (n, 4)), axis=1)  # rising with the budget
    seconds = np.outer(rng.uniform(100, 200, n), np.array([4, 12, 36, 108]) / 108)
    table = table_of(labels[..., None], seconds[..., None])
    sh = S.SuccessiveHalving(S.Pool(table.cells), seed=3)
    trace = run_strategy(sh, table, queries=40, seconds=None, seed=0)
    assert trace.epochs.tolist() == [4] * 27 + [12] * 9 + [36] * 3 + [108]
    first = trace.rows[:27]
    nine = first[np.argsort(-labels[first, 0], kind="stable")[:9]]
    assert sorted(trace.rows[27:36]) == sorted(nine)
    three = nine[np.argsort(-labels[nine, 1], kind="stable")[:3]]
    assert sorted(trace.rows[36:39]) == sorted(three)
    assert trace.rows[39] == three[np.argmax(labels[three, 2])]
    np.testing.assert_allclose(trace.seconds, seconds[trace.rows, np.searchsorted([4, 12, 36, 108], trace.epochs)])
    assert trace.incumbents()[-1] == trace.rows[39]  # the one cell at 108 epochs is the incumbent
    assert trace.incumbents()[0] == first[0] and len(set(first)) == 27


def test_hyperband_brackets_and_random_search_distinct():
    n = 200
    labels = np.tile(np.linspace(0.5, 0.9, n)[:, None], (1, 4))
    table = table_of(labels[..., None])
    hb = run_strategy(S.Hyperband(S.Pool(table.cells), seed=0), table, queries=60, seconds=None, seed=0)
    counts = [int((hb.epochs[:40] == b).sum()) for b in (4, 12, 36, 108)]
    assert counts == [27, 9, 3, 1] and hb.epochs[40:52].tolist() == [12] * 12  # then the second bracket
    rnd = run_strategy(S.RandomSearch(S.Pool(table.cells), seed=0), table, queries=None, seconds=50.5, seed=0)
    assert len(rnd.rows) == 51 and len(set(rnd.rows.tolist())) == 51  # a time budget: queries until it is spent


# ----------------------------------------------------------------------------- neighbourhoods, path encoding


def test_path_encoding_equals_a_path_walk(space):
    rows = np.random.default_rng(0).choice(NUM_CELLS, 300, replace=False)
    codes = path_encoding(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows])
    for r, code in zip(rows, codes):
        n, adj, ops = space["num_vertices"][r], space["adjacency"][r], space["operations"][r]
        want = np.zeros(PATHS, np.uint8)

        def walk(v, seq, n=n, adj=adj, ops=ops, want=want):
            if v == n - 1:
                want[path_index(seq)] = 1
            for w in range(v + 1, n):
                if adj[v, w]:
                    walk(w, seq + ([int(ops[w])] if w < n - 1 else []))

        walk(0, [])
        assert (code == want).all()
    assert path_index([]) == 0 and path_index([2, 2, 2, 2, 2]) == PATHS - 1


def edits(a: dict, b: dict) -> int:
    """Edge flips plus op changes between two cells of equal size."""
    return int((a["adjacency"] != b["adjacency"]).sum() + (a["operations"] != b["operations"]).sum())


@pytest.mark.slow
def test_the_space_neighbourhood_is_one_edit_and_mutations_are_valid(space):
    near = neighbourhood_of(space)
    assert isinstance(near, EditDistance) and near.kind == "edit distance 1"
    rng = np.random.default_rng(1)
    for row in rng.choice(NUM_CELLS, 5, replace=False).tolist():
        nb = near.neighbours(row)
        assert len(nb) > 3 and row not in nb
        edges = space["adjacency"][nb].sum((1, 2)).astype(int) - int(space["adjacency"][row].sum())
        same = space["num_vertices"][nb] == space["num_vertices"][row]  # no vertex pruned away: one edit
        assert same.any() and (np.abs(edges[same]) <= 1).all()
        child = near.mutate(row, rng)
        assert 0 <= child < NUM_CELLS and child != row
    n = 5  # a hand-made cell and one of its one-edit variants are neighbours
    adj = np.triu(np.ones((n, n), np.int8), 1)
    adj[0, 4] = adj[1, 3] = 0
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]
    cell = make_cell(adj, ops)
    other = make_cell(adj, [*ops[:1], "conv1x1-bn-relu", *ops[2:]])
    rows = near._rows([(c.padded()[0][:n, :n], c.padded()[1][:n]) for c in (cell, other)])
    assert rows[1] in near.neighbours(int(rows[0]))
    assert LABEL_TO_OP[int(space["operations"][rows[1], 1])] == "conv1x1-bn-relu"


def test_a_partial_pool_has_its_k_nearest_by_path_encoding(space):
    rows = np.random.default_rng(2).choice(NUM_CELLS, 500, replace=False)
    cells = {k: space[k][rows] for k in ("adjacency", "operations", "num_vertices")}
    near = neighbourhood_of(cells)
    assert isinstance(near, NearestByPaths) and near.kind == "10 nearest by path encoding"
    codes = path_encoding(cells["adjacency"], cells["operations"], cells["num_vertices"])
    d = (codes != codes[7]).sum(1)
    d[7] = 10**6
    nb = near.neighbours(7)
    assert len(nb) == 10 and 7 not in nb and d[nb].max() <= np.sort(d)[9]  # none nearer left out
    assert near.mutate(7, np.random.default_rng(0)) in nb


def test_guided_ranks_every_cell_of_a_full_space_pool_in_chunks(space):
    """A pool of all 423,624 cells: guided scores the unqueried ones in chunks of 65,536 and queries
    the best; a score known in closed form (conv3x3 count, then edges) says which those are."""
    pool = S.Pool(space)
    real = np.arange(7)[None] < space["num_vertices"][:, None]  # padding vertices hold label 0 too
    key = ((space["operations"] == 0) & real).sum(1) * 10 + space["adjacency"].sum((1, 2))

    def train(x, y, seed):
        return lambda f: (f["operations"][..., 2].sum(1) * 10 + f["adjacency"].sum((1, 2))).numpy()[:, None]

    guided = S.Guided(pool, seed=0, train=train, n0=3, per_round=5, local=0)
    for _ in range(3):
        row, epochs = guided.ask()[0]
        guided.tell(row, epochs, 0.9)
    picked = [guided.ask()[0][0] for _ in range(5)]
    left = np.flatnonzero(~guided.queried)
    want = left[np.argsort(-key[left], kind="stable")[:5]]
    assert picked == want.tolist()


@pytest.mark.parametrize("name", ["random", "re", "ls", "npenas", "guided", "sh"])
def test_failed_trials_told_as_nan_are_never_labels_parents_or_promoted(name):
    """Real training fails now and then: a NaN tell marks the cell queried and nothing else."""
    pool = S.Pool(blank_cells(60))
    kwargs = {
        "train": lambda x, y, seed, start=None: lambda f: np.tile(np.arange(len(f["num_vertices"]))[:, None], (1, 2))
    }
    s = S.STRATEGIES[name](pool, 0, **(kwargs if name in S.PREDICTOR_STRATEGIES else {}))
    told = []
    for q in range(40):
        (row, epochs), *_ = s.ask()
        acc = float("nan") if q % 3 == 0 else 0.5 + 0.01 * (row % 7)
        s.tell(row, epochs, acc)
        told.append((row, epochs, acc))
    rows, acc = s.labelled()
    assert np.isfinite(acc).all()
    assert sorted(rows.tolist()) == sorted(r for r, e, a in told if e == 108 and np.isfinite(a))
    failed = [r for r, e, a in told if np.isnan(a)]
    assert all(s.touched[r] for r in failed)
    if name == "re":
        assert not {r for r, _ in s.population} & set(failed)


# ----------------------------------------------------------------------------- guided


class Paths:
    """A partial pool's neighbourhood (lib/search/neighbourhood.NearestByPaths) on hand-made 0/1 codes."""

    kind = "paths"

    def __init__(self, codes, k):
        self.codes, self.k = np.asarray(codes, np.float32), k
        self.sizes = self.codes.sum(1)

    def neighbours(self, row):
        d = self.sizes + self.sizes[row] - 2 * (self.codes @ self.codes[row])
        d[row] = np.inf
        return np.sort(np.argsort(d, kind="stable")[: self.k])


def test_guided_neighbours_of_a_partial_pool_keep_every_tie_of_the_kth_nearest():
    """Cell 0's distances: 1 to cell 1, 2 to cells 2, 3, 4, 5, 5 to cell 6. With k = 2 the second nearest
    is at distance 2, so all four cells at distance 2 are neighbours, not the lowest-numbered one only."""
    codes = [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 1, 1, 1, 0], [0, 1, 1, 0, 0]]
    codes.append([0, 0, 1, 1, 1])
    pool = pool_of(7, Paths(codes, k=2))
    guided = S.Guided(pool, seed=0, train=None)
    assert pool.near.neighbours(0).tolist() == [1, 2]  # the tie broken by row
    assert guided.around(0).tolist() == [1, 2, 3, 4, 5]  # nearest first, every tie kept
    assert guided.around(0, cap=3).tolist() == [1, 2, 3]


def test_guided_batches_mix_the_pool_ranking_and_the_neighbourhood_of_the_best():
    """A pool of 30: the predictor's mean is the row number (cell 29 best) and the truth likes cells
    0-2. The fits on 3 labels (the first) and on 7 (at least twice 3) rank the whole pool and keep its
    best 6; the fit on 10 scores only those and the neighbours of the best labelled cell (0: tied with
    1 and 2, told first). The first batch is the shortlist's best 4; each later one takes the best
    predicted neighbour first (`local` = 1), then the best predicted of the rest, 3 cells in all."""
    n = 30
    truth = np.where(np.arange(n) < 3, 0.95, 0.80)
    near = Graph({i: [(i + 5) % n, (i + 10) % n, (i + 15) % n] for i in range(n)})
    scored, starts = [], []

    def train(x, y, seed, start=None):
        starts.append(start)

        def score(f):
            scored.append(sorted(f["row"].tolist()))
            return np.stack([f["row"].numpy().astype(float)] * 2, 1)

        return score

    pool = pool_of(n, near)
    pool.features = lambda rows: {"row": torch.as_tensor(np.asarray(rows))}
    g = S.Guided(pool, seed=0, train=train, n0=3, per_round=4, later=3, local=1, top=1, shortlist=6)
    for row in (0, 1, 2):  # the random start, given
        g.tell(row, S.FULL, truth[row])
    first = [step(g, truth)[0] for _ in range(4)]
    assert len(scored[0]) == n - 3 and g.ranked.tolist() == [29, 28, 27, 26, 25, 24]
    assert scored[1] == [24, 25, 26, 27, 28, 29] and first == [29, 28, 27, 26]  # no neighbours yet
    second = [step(g, truth)[0] for _ in range(3)]
    assert len(scored[2]) == n - 7 and g.ranked.tolist() == [25, 24, 23, 22, 21, 20]  # ranked anew
    assert scored[3] == [5, 10, 15, 20, 21, 22, 23, 24, 25]  # cell 0's neighbours and the shortlist
    assert second == [15, 25, 24]  # the neighbour predicted best, then the shortlist's best
    third = [step(g, truth)[0] for _ in range(3)]
    assert scored[4] == [5, 10, 20, 21, 22, 23]  # not ranked anew: 10 labels, fewer than twice 7
    assert third == [10, 23, 22] and g.ranked_with == 7
    assert starts[0] is None and starts[1] is not None  # the second fit continues from the first


def test_a_warm_fit_continues_from_the_previous_predictor():
    """SearchTrainer(..., start=score): one more epoch from a fitted MLP predicts almost as it
    did, where one epoch from a fresh start does not; the start itself is left untouched."""
    from model import SearchTrainer, hyperparams

    rng = np.random.default_rng(0)
    cells = blank_cells(40)
    cells["num_vertices"] = rng.integers(2, 8, 40)
    x = S.Pool(cells).features(np.arange(40))
    y = 0.80 + 0.02 * cells["num_vertices"] + rng.normal(0, 0.002, 40)
    hp = hyperparams("mlp", {"epochs": 150, "batch_size": 20, "lr": 1e-3})
    train = SearchTrainer("mlp", hp, warm_epochs=1)
    first = train(x, y, 0)
    before = first(x).ravel()
    warm = train(x, y, 1, start=first)(x).ravel()
    cold = SearchTrainer("mlp", dict(hp, epochs=1))(x, y, 1)(x).ravel()
    np.testing.assert_array_equal(first(x).ravel(), before)
    assert np.abs(before - y).mean() < 0.01
    assert np.abs(warm - before).mean() < 0.5 * np.abs(cold - before).mean()


@pytest.mark.parametrize("warm", [True, False])
def test_each_fit_after_the_first_starts_from_the_last_unless_told_not_to(warm):
    n = 40
    star = Graph({i: [j for j in range(n) if j != i] for i in range(n)})
    starts, scores = [], []

    def train(x, y, seed, start=None):
        starts.append(start)
        scores.append(lambda f: np.tile(f["row"].numpy()[:, None].astype(float), (1, 2)))
        return scores[-1]

    pool = pool_of(n, star)
    pool.features = lambda rows: {"row": torch.as_tensor(np.asarray(rows))}
    s = S.NPENAS(pool, seed=0, train=train, n0=2, per_round=2, warm=warm)
    for _ in range(8):
        step(s, np.linspace(0.8, 0.9, n))
    assert len(starts) == 3  # after the 2 random cells and after each batch of 2
    assert starts == ([None, scores[0], scores[1]] if warm else [None, None, None])
