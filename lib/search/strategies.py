"""Search strategies as ask/tell: each proposes cells of a pool (with the epoch budget to train them
for) and is told what they scored. Table lookups (lib/search/table.py) or real training drive them alike.

    from lib.search.strategies import STRATEGIES, Pool
    pool = Pool(cells)                                   # padded arrays of the cells a search may query
    s = STRATEGIES["re"](pool, seed=0)                   # predictor strategies also take train=...
    for row, epochs in s.ask():
        s.tell(row, epochs, accuracy)                    # validation accuracy after `epochs` epochs

- random: uniform over the cells not yet queried.
- re: regularised evolution (Real et al. 2019): population 50, tournaments of 10, the oldest dies;
  NB101's mutation (lib/search/neighbourhood).
- ls: local search (White et al. 2021): from the best of 10 random cells, query the current cell's
  whole neighbourhood, move to the best cell found, restart at random at a local optimum.
- bananas: BANANAS (White et al. 2021): 10 random cells; then an ensemble fitted on every label,
  200 candidates around the top 5, independent Thompson sampling picks 10 before the next fit.
- npenas: NPENAS (Wei et al. 2022): as bananas, the candidates ranked by the predicted mean.
- guided: predictor-guided search (Neural Predictor) with a local step: n0 random cells; a fit on twice
  as many labels as the last ranking ranks every unqueried cell of the pool and keeps a shortlist of
  the best, the fits between score only the shortlist and the incumbent's neighbours; the first batch
  (per_round cells) is the best predicted, each later one (fewer cells) the best predicted neighbours
  of the incumbent first, then the best predicted of the rest.
- bananas, npenas and guided refit their predictor from the previous round's weights (a short warm
  fit), not from scratch.
- sh: successive halving (eta 3) over NB101's budgets 4, 12, 36, 108: 27 random cells at 4 epochs,
  the best third goes on to the next budget, 1 reaches 108; repeated.
- hyperband: Hyperband (Li et al. 2018) on the same budgets: brackets of 27 cells at 4 epochs, 12 at
  12, 6 at 36 and 4 at 108, in turn.
Departures from the reference implementations: docs/search.md.

A failed trial (real training that crashed or diverged) is told as NaN: the cell counts as queried,
never as a label, a parent or a promotion.

The predictor strategies never build a predictor: they call `train(x, y, seed)`, given to them, which
returns score(x) -> accuracies [cells, members] (model.SearchTrainer); from the second fit on they
pass the previous score as `start=`, the fit to continue from.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch

from lib.nb101.schema import EPOCHS
from lib.predictors.features import cell_features
from lib.search.neighbourhood import neighbourhood_of

FULL = EPOCHS[-1]  # 108 epochs: the label every single-fidelity strategy asks for
Score = Callable[[dict[str, torch.Tensor]], np.ndarray]
Train = Callable[..., Score]  # train(x, y, seed, start=None): start, a previous score to continue from


class Pool:
    """The cells a search may query (padded arrays, their row = their index) and what strategies need
    of them: features for a predictor, a neighbourhood (lib/search/neighbourhood), random unqueried cells."""

    def __init__(self, cells: dict[str, np.ndarray], device: str | torch.device = "cpu"):
        self.cells = {k: cells[k] for k in ("adjacency", "operations", "num_vertices")}
        self.n = len(self.cells["num_vertices"])
        self.device = device

    @cached_property
    def near(self):
        return neighbourhood_of(self.cells)

    def features(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows)
        return cell_features(*(self.cells[k][rows] for k in ("adjacency", "operations", "num_vertices")), self.device)


class Strategy:
    """ask() -> [(row, epochs)], tell(row, epochs, accuracy). Remembers what it was told in `seen`."""

    name = ""

    def __init__(self, pool: Pool, seed: int = 0):
        self.pool, self.rng = pool, np.random.default_rng(seed)
        self.seen: dict[tuple[int, int], float] = {}
        self.queried = np.zeros(pool.n, bool)  # queried at 108 epochs
        self.touched = np.zeros(pool.n, bool)  # queried at any budget

    def ask(self) -> list[tuple[int, int]]:
        raise NotImplementedError

    def tell(self, row: int, epochs: int, accuracy: float) -> None:
        self.seen[(row, epochs)] = accuracy
        self.claim(row, epochs)

    def claim(self, row: int, epochs: int) -> None:
        """Cell `row` is queried (told, or training now beside other trials): it is not asked again."""
        self.touched[row] = True
        if epochs == FULL:
            self.queried[row] = True

    def random_cell(self) -> int:
        """A cell not queried at 108 epochs yet (any cell once the pool is exhausted)."""
        for _ in range(64):
            row = int(self.rng.integers(self.pool.n))
            if not self.queried[row]:
                return row
        left = np.flatnonzero(~self.queried)
        return int(self.rng.choice(left)) if len(left) else int(self.rng.integers(self.pool.n))

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows told at 108 epochs and their accuracies, in the order told (failed trials left out)."""
        pairs = [(row, acc) for (row, epochs), acc in self.seen.items() if epochs == FULL and np.isfinite(acc)]
        rows, acc = zip(*pairs) if pairs else ((), ())
        return np.array(rows, np.int64), np.array(acc, np.float64)


class RandomSearch(Strategy):
    name = "random"

    def ask(self):
        return [(self.random_cell(), FULL)]


class RegularizedEvolution(Strategy):
    """Population `population`, tournaments of `sample`, aging: the oldest member dies, not the worst."""

    name = "re"

    def __init__(self, pool: Pool, seed: int = 0, population: int = 50, sample: int = 10):
        super().__init__(pool, seed)
        self.size, self.sample = population, sample
        self.population: deque[tuple[int, float]] = deque()
        self.started = 0  # random cells asked for while the population fills

    def ask(self):
        if self.started < self.size:
            self.started += 1
            return [(self.random_cell(), FULL)]
        contenders = self.rng.choice(len(self.population), min(self.sample, len(self.population)), replace=False)
        parent = max((self.population[i] for i in contenders), key=lambda member: member[1])[0]
        for _ in range(20):  # a child never queried; NB101's example would query a repeat again
            child = self.pool.near.mutate(parent, self.rng)
            if not self.queried[child]:
                return [(child, FULL)]
        return [(self.random_cell(), FULL)]

    def tell(self, row, epochs, accuracy):
        super().tell(row, epochs, accuracy)
        if np.isnan(accuracy):
            return
        self.population.append((row, accuracy))
        if len(self.population) > self.size:
            self.population.popleft()


class LocalSearch(Strategy):
    """From the best of `n_init` random cells: query the whole neighbourhood of the current cell, move to
    the best cell found if it beats the current one, else (a local optimum) restart at a random cell."""

    name = "ls"

    def __init__(self, pool: Pool, seed: int = 0, n_init: int = 10):
        super().__init__(pool, seed)
        self.n_init = n_init
        self.current: int | None = None
        self.best: tuple[int, float] | None = None  # the best of this climb, the current cell included
        self.todo: list[int] = []

    def ask(self):
        while not self.todo:
            if len(self.seen) < self.n_init or self.best is None:
                return [(self.random_cell(), FULL)]
            if self.current is not None and self.best[0] == self.current:  # no neighbour beats it
                self.current, self.best = None, None
                return [(self.random_cell(), FULL)]  # restart
            self.current = self.best[0]
            near = self.pool.near.neighbours(self.current)
            self.todo = [int(r) for r in self.rng.permutation(near) if not self.queried[r]]
            if not self.todo:  # every neighbour known already: a local optimum too
                self.best = (self.current, self.best[1])
        return [(self.todo.pop(), FULL)]

    def tell(self, row, epochs, accuracy):
        super().tell(row, epochs, accuracy)
        if not np.isnan(accuracy) and (self.best is None or accuracy > self.best[1]):
            self.best = (row, accuracy)
        if len(self.seen) == self.n_init:  # the start: the best of the random cells
            rows, acc = self.labelled()
            self.best = (int(rows[np.argmax(acc)]), float(acc.max())) if len(acc) else None


class PredictorSearch(Strategy):
    """What bananas, npenas and guided share: n0 random cells, then a predictor fitted on every label
    (train(x, y, seed)), and a batch of `per_round` cells picked with it before the next fit. With
    `warm`, every fit after the first continues from the previous one (train(..., start=score))."""

    def __init__(
        self, pool: Pool, seed: int = 0, *, train: Train, n0: int = 10, per_round: int = 10, warm: bool = True
    ):
        super().__init__(pool, seed)
        self.train, self.n0, self.per_round, self.warm = train, n0, per_round, warm
        self.seed, self.fits = seed, 0
        self.batch: list[int] = []
        self.score: Score | None = None  # the last fit

    def ask(self):
        if len(self.seen) < self.n0:
            return [(self.random_cell(), FULL)]
        if not self.batch:
            rows, acc = self.labelled()
            if len(acc) < 2:  # every trial so far failed: nothing to fit yet
                return [(self.random_cell(), FULL)]
            self.score = self.fit(rows, acc)
            self.batch = [int(r) for r in self.pick(self.score, rows, acc)]
        return [(self.batch.pop(0) if self.batch else self.random_cell(), FULL)]  # no candidate left: random

    def fit(self, rows: np.ndarray, acc: np.ndarray) -> Score:
        start = {"start": self.score} if self.warm and self.score is not None else {}
        score = self.train(self.pool.features(rows), acc, 1000 * self.seed + self.fits, **start)
        self.fits += 1
        return score

    def pick(self, score: Score, rows: np.ndarray, acc: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def candidates(self, rows: np.ndarray, acc: np.ndarray, top: int = 5, count: int = 200) -> np.ndarray:
        """Up to `count` unqueried cells around the `top` best: their neighbours, then the neighbours'
        neighbours while there are too few (a pool with few neighbours per cell)."""
        frontier = rows[np.argsort(-acc, kind="stable")[:top]].tolist()
        found: dict[int, None] = {}
        for _ in range(3):
            ring = [int(r) for f in frontier for r in self.pool.near.neighbours(f)]
            found.update((r, None) for r in ring if not self.queried[r])
            if len(found) >= count:
                break
            frontier = ring
        out = np.array(list(found), np.int64)
        return out if len(out) <= count else self.rng.choice(out, count, replace=False)


class Bananas(PredictorSearch):
    """Independent Thompson sampling: each candidate's value drawn from a normal with the ensemble's
    mean and spread over its members; the `per_round` highest draws are queried."""

    name = "bananas"

    def pick(self, score, rows, acc):
        cand = self.candidates(rows, acc)
        members = score(self.pool.features(cand))  # [candidates, members]
        draw = self.rng.normal(members.mean(1), members.std(1))
        return cand[np.argsort(-draw, kind="stable")[: self.per_round]]


class NPENAS(PredictorSearch):
    """The candidates ranked by the ensemble's mean prediction."""

    name = "npenas"

    def pick(self, score, rows, acc):
        cand = self.candidates(rows, acc)
        return cand[np.argsort(-score(self.pool.features(cand)).mean(1), kind="stable")[: self.per_round]]


class Guided(PredictorSearch):
    """The pool ranked by the predictor's mean, and the neighbourhood of the best cells found.

    A fit on twice as many labels as the last ranking (the first fit included) ranks every unqueried
    cell of the pool and keeps the best `shortlist`: between those, a round's predictor moves little
    and scores only the shortlist's unqueried cells and the unqueried neighbours of the `top` best
    labelled cells. Each batch after the first takes up to `local` of those neighbours, best predicted
    first (the best cells of a pool sit near each other), and fills up with the best predicted of the
    rest. The first batch has `per_round` cells; later ones `later`, so the predictor sees the news
    sooner."""

    name = "guided"

    def __init__(self, pool, seed=0, *, later=5, local=2, top=1, shortlist=2000, **kwargs):
        super().__init__(pool, seed, **kwargs)
        self.later, self.local, self.top, self.shortlist = later, local, top, shortlist
        self.ranked: np.ndarray | None = None  # the shortlist, best first
        self.ranked_with = 0  # labels of the fit that ranked the pool

    def pick(self, score, rows, acc):
        first = self.ranked is None
        if len(acc) >= 2 * self.ranked_with:
            self.ranked, self.ranked_with = self.rank_pool(score)[: self.shortlist], len(acc)
        # before the first batch the best cell is a random one: its neighbours are no better than the pool
        near = np.zeros(0, np.int64) if first else self.near_best(rows, acc)
        cand = np.concatenate([near, self.ranked[~self.queried[self.ranked]]])
        cand = cand[np.sort(np.unique(cand, return_index=True)[1])]  # first occurrence, order kept
        pred = self.predict(score, cand)
        is_near = np.isin(cand, near)
        order = np.argsort(-pred, kind="stable")
        local = order[is_near[order]][: self.local]
        rest = order[~np.isin(order, local)]
        return cand[np.concatenate([local, rest])[: self.per_round if first else self.later]]

    def rank_pool(self, score) -> np.ndarray:
        left = np.flatnonzero(~self.queried)
        return left[np.argsort(-self.predict(score, left), kind="stable")]

    def predict(self, score, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        chunks = np.array_split(rows, -(-len(rows) // 65536))  # a pool may be the whole space
        return np.concatenate([score(self.pool.features(c)).mean(1) for c in chunks])

    def near_best(self, rows, acc) -> np.ndarray:
        """Unqueried neighbours of the `top` best labelled cells."""
        best = rows[np.argsort(-acc, kind="stable")[: self.top]]
        near = np.unique(np.concatenate([self.around(int(r)) for r in best])) if len(best) else []
        near = np.asarray(near, np.int64)
        return near[~self.queried[near]]

    def around(self, row: int, cap: int = 300) -> np.ndarray:
        """The cell's neighbours; in a partial pool every cell as near as its k-th nearest (path-encoding
        distances tie often, and a tie broken by row number says nothing about the cell), nearest first."""
        near = self.pool.near
        if not hasattr(near, "codes"):
            return near.neighbours(row)
        d = near.sizes + near.sizes[row] - 2 * (near.codes @ near.codes[row])
        d[row] = np.inf
        order = np.argsort(d, kind="stable")
        radius = d[order[near.k - 1]]
        return order[: min(cap, int((d <= radius).sum()))]


class SuccessiveHalving(Strategy):
    """Brackets of random cells evaluated at a budget; the best 1/eta of each rung go on to the next
    budget, up to 108 epochs. `brackets` lists (cells, index of the first budget) in turn."""

    name = "sh"
    BRACKETS = ((27, 0),)
    ETA = 3

    def __init__(self, pool: Pool, seed: int = 0):
        super().__init__(pool, seed)
        self.bracket = 0
        self.rung: list[int] = []  # the cells of the rung being evaluated
        self.level = 0
        self.waiting: list[tuple[int, int]] = []

    def ask(self):
        if not self.waiting and any((r, EPOCHS[self.level]) not in self.seen for r in self.rung):
            return []  # trials of the rung still in flight (trials side by side): nothing to promote yet
        if not self.waiting:
            if self.rung and self.level < len(EPOCHS) - 1 and len(self.rung) > 1:
                scores = np.nan_to_num([self.seen[(r, EPOCHS[self.level])] for r in self.rung], nan=-np.inf)
                keep = max(1, len(self.rung) // self.ETA)
                self.rung = [self.rung[i] for i in np.argsort(scores, kind="stable")[::-1][:keep]]
                self.level += 1
            else:
                cells, self.level = self.BRACKETS[self.bracket % len(self.BRACKETS)]
                self.bracket += 1
                fresh = np.flatnonzero(~self.touched)  # never evaluated at any budget
                self.rung = self.rng.choice(fresh, min(cells, len(fresh)), replace=False).tolist()
                if not self.rung:  # the pool is exhausted
                    self.rung = [self.random_cell()]
            self.waiting = [(r, EPOCHS[self.level]) for r in self.rung if (r, EPOCHS[self.level]) not in self.seen]
            if not self.waiting:  # every cell of the rung known at this budget already
                return self.ask()
        return [self.waiting.pop(0)]


class Hyperband(SuccessiveHalving):
    name = "hyperband"
    BRACKETS = ((27, 0), (12, 1), (6, 2), (4, 3))


STRATEGIES = {cls.name: cls for cls in (RandomSearch, RegularizedEvolution, LocalSearch, Bananas, NPENAS, Guided)} | {
    "sh": SuccessiveHalving,
    "hyperband": Hyperband,
}
PREDICTOR_STRATEGIES = ("bananas", "npenas", "guided")
WALKS = ("re", "ls", "bananas", "npenas", "guided")  # the strategies that move through the neighbourhood
