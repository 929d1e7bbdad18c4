"""lib/search/with_predictor.py on small hand-worked pools (a neighbourhood given as a graph or as codes,
the predictor a known function), and the whole space; the warm fit the strategies continue from
(model.SearchTrainer)."""

import numpy as np
import pytest
import torch
from conftest import Graph, blank_cells, pool_of, step

from lib.search.ask_tell import FULL, Pool
from lib.search.with_predictor import NPENAS, Bananas, Guided


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

    for cls in (Bananas, NPENAS):
        pool = pool_of(n, star)
        pool.features = lambda rows: {"row": torch.as_tensor(rows)}
        s = cls(pool, seed=4, train=train, n0=2, per_round=3)
        for row in (0, 1):
            s.ask()
            s.tell(row, FULL, means[row])
        draws = np.full(n, -1.0)
        draws[[3, 7, 5]] = (0.99, 0.98, 0.97)  # the draws BANANAS sees: not the order of the means
        s.rng = Draws(s.rng, means, draws)
        picked = [s.ask()[0][0] for _ in range(3)]
        for row in picked:
            s.tell(row, FULL, means[row])
        assert picked == ([3, 7, 5] if cls is Bananas else [11, 10, 9])
    assert fits == [(2, 4000), (2, 4000)]


def test_guided_ranks_every_cell_of_a_full_space_pool_in_chunks(space):
    """A pool of all 423,624 cells: guided scores the unqueried ones in chunks of 65,536 and queries
    the best; a score known in closed form (conv3x3 count, then edges) says which those are."""
    pool = Pool(space)
    real = np.arange(7)[None] < space["num_vertices"][:, None]  # padding vertices hold label 0 too
    key = ((space["operations"] == 0) & real).sum(1) * 10 + space["adjacency"].sum((1, 2))

    def train(x, y, seed):
        return lambda f: (f["operations"][..., 2].sum(1) * 10 + f["adjacency"].sum((1, 2))).numpy()[:, None]

    guided = Guided(pool, seed=0, train=train, n0=3, per_round=5, local=0)
    for _ in range(3):
        row, epochs = guided.ask()[0]
        guided.tell(row, epochs, 0.9)
    picked = [guided.ask()[0][0] for _ in range(5)]
    left = np.flatnonzero(~guided.queried)
    want = left[np.argsort(-key[left], kind="stable")[:5]]
    assert picked == want.tolist()


class Paths:
    """A partial pool's neighbourhood (lib/search/neighbourhood.NearestByPaths) on hand-made 0/1 codes."""

    kind = "paths"

    def __init__(self, codes, k):
        self.codes, self.k = np.asarray(codes, np.float32), k
        self.sizes = self.codes.sum(1)

    def distances(self, row):
        d = self.sizes + self.sizes[row] - 2 * (self.codes @ self.codes[row])
        d[row] = np.inf
        return d

    def neighbours(self, row):
        return np.sort(np.argsort(self.distances(row), kind="stable")[: self.k])


def test_guided_neighbours_of_a_partial_pool_keep_every_tie_of_the_kth_nearest():
    """Cell 0's distances: 1 to cell 1, 2 to cells 2, 3, 4, 5, 5 to cell 6. With k = 2 the second nearest
    is at distance 2, so all four cells at distance 2 are neighbours, not the lowest-numbered one only."""
    codes = [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 1, 1, 1, 0], [0, 1, 1, 0, 0]]
    codes.append([0, 0, 1, 1, 1])
    pool = pool_of(7, Paths(codes, k=2))
    guided = Guided(pool, seed=0, train=None)
    assert pool.neighbourhood.neighbours(0).tolist() == [1, 2]  # the tie broken by row
    assert guided.neighbours_with_ties(0).tolist() == [1, 2, 3, 4, 5]  # nearest first, every tie kept
    assert guided.neighbours_with_ties(0, cap=3).tolist() == [1, 2, 3]


def test_guided_batches_mix_the_pool_ranking_and_the_neighbourhood_of_the_best():
    """A pool of 30: the predictor's mean is the row number (cell 29 best) and the truth likes cells
    0-2. The fits on 3 labels (the first) and on 7 (at least twice 3) rank the whole pool and keep its
    best 6; the fit on 10 scores only those and the neighbours of the best labelled cell (0: tied with
    1 and 2, told first). The first batch is the shortlist's best 4; each later one takes the best
    predicted neighbour first (`local` = 1), then the best predicted of the rest, 3 cells in all."""
    n = 30
    truth = np.where(np.arange(n) < 3, 0.95, 0.80)
    neighbourhood = Graph({i: [(i + 5) % n, (i + 10) % n, (i + 15) % n] for i in range(n)})
    scored, starts = [], []

    def train(x, y, seed, start=None):
        starts.append(start)

        def score(f):
            scored.append(sorted(f["row"].tolist()))
            return np.stack([f["row"].numpy().astype(float)] * 2, 1)

        return score

    pool = pool_of(n, neighbourhood)
    pool.features = lambda rows: {"row": torch.as_tensor(np.asarray(rows))}
    g = Guided(pool, seed=0, train=train, n0=3, per_round=4, later=3, local=1, top=1, shortlist=6)
    for row in (0, 1, 2):  # the random start, given
        g.tell(row, FULL, truth[row])
    batch1 = [step(g, truth)[0] for _ in range(4)]
    assert len(scored[0]) == n - 3 and g.ranked.tolist() == [29, 28, 27, 26, 25, 24]
    assert scored[1] == [24, 25, 26, 27, 28, 29] and batch1 == [29, 28, 27, 26]  # no neighbours yet
    batch2 = [step(g, truth)[0] for _ in range(3)]
    assert len(scored[2]) == n - 7 and g.ranked.tolist() == [25, 24, 23, 22, 21, 20]  # ranked anew
    assert scored[3] == [5, 10, 15, 20, 21, 22, 23, 24, 25]  # cell 0's neighbours and the shortlist
    assert batch2 == [15, 25, 24]  # the neighbour predicted best, then the shortlist's best
    batch3 = [step(g, truth)[0] for _ in range(3)]
    assert scored[4] == [5, 10, 20, 21, 22, 23]  # not ranked anew: 10 labels, fewer than twice 7
    assert batch3 == [10, 23, 22] and g.ranked_with == 7
    assert starts[0] is None and starts[1] is not None  # the second fit continues from the first


def test_a_warm_fit_continues_from_the_previous_predictor():
    """SearchTrainer(..., start=score): one more epoch from a fitted MLP predicts almost as it
    did, where one epoch from a fresh start does not; the start itself is left untouched."""
    from model import SearchTrainer, hyperparams

    rng = np.random.default_rng(0)
    cells = blank_cells(40)
    cells["num_vertices"] = rng.integers(2, 8, 40)
    x = Pool(cells).features(np.arange(40))
    y = 0.80 + 0.02 * cells["num_vertices"] + rng.normal(0, 0.002, 40)
    hp = hyperparams("mlp", {"epochs": 150, "batch_size": 20, "lr": 1e-3})
    train = SearchTrainer("mlp", hp, warm_epochs=1)
    fitted = train(x, y, 0)
    before = fitted(x).ravel()
    warm = train(x, y, 1, start=fitted)(x).ravel()
    cold = SearchTrainer("mlp", dict(hp, epochs=1))(x, y, 1)(x).ravel()
    np.testing.assert_array_equal(fitted(x).ravel(), before)
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
    s = NPENAS(pool, seed=0, train=train, n0=2, per_round=2, warm=warm)
    for _ in range(8):
        step(s, np.linspace(0.8, 0.9, n))
    assert len(starts) == 3  # after the 2 random cells and after each batch of 2
    assert starts == ([None, scores[0], scores[1]] if warm else [None, None, None])
