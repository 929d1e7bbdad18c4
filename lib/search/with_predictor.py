"""The strategies that fit a predictor to the labels so far and query the cells it rates best: BANANAS,
NPENAS and guided (lib/search/strategies.py lists them all; docs/search.md, the designs).

They never build a predictor: they call `train(x, y, seed)`, given to them, which returns score(x) ->
accuracies [cells, members] (model.SearchTrainer); from the second fit on they pass the previous score
as `start=`, the fit to continue from (a short warm fit, not one from scratch).
"""

from __future__ import annotations

import numpy as np

from lib.search.ask_tell import FULL, Pool, Score, Strategy, Train


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
            ring = [int(r) for f in frontier for r in self.pool.neighbourhood.neighbours(f)]
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
        first_batch = self.ranked is None
        if len(acc) >= 2 * self.ranked_with:
            self.ranked, self.ranked_with = self.rank_pool(score)[: self.shortlist], len(acc)
        # before the first batch the best cell is a random one: its neighbours are no better than the pool
        neighbours = np.zeros(0, np.int64) if first_batch else self.neighbours_of_best(rows, acc)
        cand = np.concatenate([neighbours, self.ranked[~self.queried[self.ranked]]])
        cand = cand[np.sort(np.unique(cand, return_index=True)[1])]  # first occurrence, order kept
        pred = self.predict(score, cand)
        is_neighbour = np.isin(cand, neighbours)
        order = np.argsort(-pred, kind="stable")
        local = order[is_neighbour[order]][: self.local]
        rest = order[~np.isin(order, local)]
        return cand[np.concatenate([local, rest])[: self.per_round if first_batch else self.later]]

    def rank_pool(self, score) -> np.ndarray:
        left = np.flatnonzero(~self.queried)
        return left[np.argsort(-self.predict(score, left), kind="stable")]

    def predict(self, score, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        chunks = np.array_split(rows, -(-len(rows) // 65536))  # a pool may be the whole space
        return np.concatenate([score(self.pool.features(c)).mean(1) for c in chunks])

    def neighbours_of_best(self, rows, acc) -> np.ndarray:
        """Unqueried neighbours of the `top` best labelled cells."""
        best = rows[np.argsort(-acc, kind="stable")[: self.top]]
        found = np.unique(np.concatenate([self.neighbours_with_ties(int(r)) for r in best])) if len(best) else []
        found = np.asarray(found, np.int64)
        return found[~self.queried[found]]

    def neighbours_with_ties(self, row: int, cap: int = 300) -> np.ndarray:
        """The cell's neighbours; in a partial pool every cell as near as its k-th nearest (path-encoding
        distances tie often, and a tie broken by row number says nothing about the cell), nearest first."""
        neighbourhood = self.pool.neighbourhood
        if not hasattr(neighbourhood, "distances"):  # the space's own: one edit away, no distances to tie
            return neighbourhood.neighbours(row)
        d = neighbourhood.distances(row)
        order = np.argsort(d, kind="stable")
        radius = d[order[neighbourhood.k - 1]]
        return order[: min(cap, int((d <= radius).sum()))]
