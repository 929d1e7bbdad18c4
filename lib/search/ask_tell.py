"""What every search strategy is: ask/tell over a pool of cells. A strategy proposes cells of the pool
(with the NB101 epochs to train them for) and is told what they scored; a table of recorded accuracies
(lib/search/table.py) or real training (lib/search/trial_search.py) answers, and the strategy cannot tell
which.

    pool = Pool(cells)                                   # padded arrays of the cells a search may query
    for row, epochs in strategy.ask():
        strategy.tell(row, epochs, accuracy)             # validation accuracy after `epochs` epochs

A failed trial (real training that crashed or diverged) is told as NaN: the cell counts as queried,
never as a label, a parent or a promotion.
"""

from __future__ import annotations

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
    def neighbourhood(self):
        return neighbourhood_of(self.cells)

    def features(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows)
        return cell_features(*(self.cells[k][rows] for k in ("adjacency", "operations", "num_vertices")), self.device)


class Strategy:
    """ask() -> [(row, epochs)], tell(row, epochs, accuracy). Remembers what it was told in `seen`. Once
    every cell it may query has been queried, it asks for nothing ([]) or for a cell told already (a search
    ends there: lib.search.table.run_strategy)."""

    name = ""

    def __init__(self, pool: Pool, seed: int = 0):
        self.pool, self.rng = pool, np.random.default_rng(seed)
        self.seen: dict[tuple[int, int], float] = {}
        self.queried = np.zeros(pool.n, bool)  # queried at 108 epochs
        self.touched = np.zeros(pool.n, bool)  # queried for any number of epochs

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
