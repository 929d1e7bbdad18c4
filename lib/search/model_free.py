"""The strategies that fit no predictor: random search, regularised evolution and local search at 108
epochs, successive halving and Hyperband over NB101's epochs (lib/search/strategies.py lists them all).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from lib.nb101.schema import EPOCHS
from lib.search.ask_tell import FULL, Pool, Strategy


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
            child = self.pool.neighbourhood.mutate(parent, self.rng)
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
            neighbours = self.pool.neighbourhood.neighbours(self.current)
            self.todo = [int(r) for r in self.rng.permutation(neighbours) if not self.queried[r]]
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


class SuccessiveHalving(Strategy):
    """Brackets of random cells trained for a few epochs; the best 1/ETA of each rung go on to the next
    of NB101's epochs, up to 108. BRACKETS lists (cells, index in EPOCHS of the first rung) in turn."""

    name = "sh"
    BRACKETS = ((27, 0),)
    ETA = 3

    def __init__(self, pool: Pool, seed: int = 0):
        super().__init__(pool, seed)
        self.bracket = 0
        self.rung: list[int] = []  # the cells of the rung being evaluated
        self.level = 0  # the rung's index in EPOCHS
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
                fresh = np.flatnonzero(~self.touched)  # never trained for any number of epochs
                if not len(fresh):
                    return []  # every cell of the pool has been trained: nothing left to ask
                self.rung = self.rng.choice(fresh, min(cells, len(fresh)), replace=False).tolist()
            self.waiting = [(r, EPOCHS[self.level]) for r in self.rung if (r, EPOCHS[self.level]) not in self.seen]
            if not self.waiting:  # every cell of the rung known for these epochs already
                return self.ask()
        return [self.waiting.pop(0)]


class Hyperband(SuccessiveHalving):
    name = "hyperband"
    BRACKETS = ((27, 0), (12, 1), (6, 2), (4, 3))
