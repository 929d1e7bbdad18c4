"""Which cells of a search pool are near a cell: the neighbours local search walks, the mutations
regularised evolution and BANANAS make.

    from lib.search.neighbourhood import neighbourhood_of
    neighbourhood = neighbourhood_of(cells)     # cells: padded arrays of the pool (a data file's cells)
    neighbourhood.kind                          # "edit distance 1" or "10 nearest by path encoding"
    neighbourhood.neighbours(row)               # pool rows next to cell `row`
    neighbourhood.mutate(row, rng)              # one pool row, a random mutation of `row`

A pool that holds every NB101 cell gets the space's own neighbourhood: one edge flipped or one
interior op changed, valid after NB101's pruning, each cell once (isomorphic encodings are one cell:
lib/nb101/join), and NB101's mutation (api example: each possible edge of the 7-vertex spec flipped
with probability 1/21, each interior op changed with probability 1/5, retried until valid). In a pool
that holds part of the space, most such cells have no label, so the neighbours of a cell are the k
pool cells nearest to it by the Hamming distance of their path encodings (lib/predictors/path_encoding), ties
broken by row, and a mutation is one of them at random. Both answer the same two questions.
"""

from __future__ import annotations

import numpy as np

from lib.nb101.cell import LABEL_TO_OP, MAX_VERTICES, OP_TO_LABEL, InvalidSpecError, make_cell
from lib.nb101.join import row_finder
from lib.nb101.space import NUM_CELLS
from lib.predictors.path_encoding import path_encoding
from lib.util.errors import UserError

NEAREST = 10  # neighbours of a cell in a partial pool
INTERIOR = (0, 1, 2)  # NB101 labels of conv3x3, conv1x1, maxpool


class EditDistance:
    """The space's neighbourhood, on a pool of every cell."""

    kind = "edit distance 1"

    def __init__(self, cells: dict[str, np.ndarray]):
        self.cells = cells
        self._find = row_finder(cells)
        self._cache: dict[int, np.ndarray] = {}

    def neighbours(self, row: int) -> np.ndarray:
        if row not in self._cache:
            adj, ops, n = self._cell(row)
            variants = []
            for i, j in zip(*np.triu_indices(n, 1)):
                flipped = adj.copy()
                flipped[i, j] ^= 1
                variants.append((flipped, ops))
            for v in range(1, n - 1):
                for label in INTERIOR:
                    if label != ops[v]:
                        changed = ops.copy()
                        changed[v] = label
                        variants.append((adj, changed))
            rows = self._rows(variants)
            self._cache[row] = np.unique(rows[(rows >= 0) & (rows != row)])
        return self._cache[row]

    def mutate(self, row: int, rng: np.random.Generator) -> int:
        """NB101's mutation of the cell as a 7-vertex spec (the vertices pruning removed get random ops)."""
        adj, ops, n = self._cell(row)
        spec = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int8)
        spec[: n - 1, : n - 1] = adj[: n - 1, : n - 1]
        spec[: n - 1, -1] = adj[: n - 1, n - 1]
        labels = np.concatenate([ops[: n - 1], rng.choice(INTERIOR, MAX_VERTICES - n), [OP_TO_LABEL["output"]]])
        edges = np.triu(np.ones_like(spec, bool), 1)
        for _ in range(100):
            child = spec ^ (edges & (rng.random(spec.shape) < 1 / edges.sum())).astype(np.int8)
            child_ops = labels.copy()
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < 1 / (MAX_VERTICES - 2):
                    child_ops[v] = rng.choice([x for x in INTERIOR if x != labels[v]])
            found = self._rows([(child, child_ops)])[0]
            if found >= 0 and found != row:
                return int(found)
        return int(rng.choice(self.neighbours(row)))  # a cell whose mutations keep failing: one edit then

    def _cell(self, row: int) -> tuple[np.ndarray, np.ndarray, int]:
        n = int(self.cells["num_vertices"][row])
        return self.cells["adjacency"][row, :n, :n].copy(), self.cells["operations"][row, :n].copy(), n

    def _rows(self, variants: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Pool rows of the variants after pruning; -1 for those NB101 rejects."""
        adj = np.zeros((len(variants), MAX_VERTICES, MAX_VERTICES), np.int8)
        ops = np.zeros((len(variants), MAX_VERTICES), np.int8)
        nv = np.zeros(len(variants), np.int8)
        ok = np.zeros(len(variants), bool)
        for i, (a, o) in enumerate(variants):
            try:
                cell = make_cell(a, [LABEL_TO_OP[int(x)] for x in o])
            except InvalidSpecError:
                continue
            adj[i], ops[i] = cell.padded()
            nv[i], ok[i] = cell.num_vertices, True
        rows = self._find(adj, ops, nv)
        return np.where(ok, rows, -1)


class NearestByPaths:
    """The k pool cells nearest by the Hamming distance of their path encodings."""

    def __init__(self, cells: dict[str, np.ndarray], k: int = NEAREST):
        self.k = k
        self.kind = nearest_kind(k)
        codes = path_encoding(cells["adjacency"], cells["operations"], cells["num_vertices"])
        self.codes = codes.astype(np.float32)  # Hamming distance of 0/1 codes: |a| + |b| - 2 a.b, one matvec
        self.sizes = self.codes.sum(1)
        self._cache: dict[int, np.ndarray] = {}

    def neighbours(self, row: int) -> np.ndarray:
        if row not in self._cache:
            self._cache[row] = np.sort(np.argsort(self.distances(row), kind="stable")[: self.k])
        return self._cache[row]

    def distances(self, row: int) -> np.ndarray:
        """Every pool cell's distance to cell `row` (itself: infinite)."""
        d = self.sizes + self.sizes[row] - 2 * (self.codes @ self.codes[row])
        d[row] = np.inf
        return d

    def mutate(self, row: int, rng: np.random.Generator) -> int:
        return int(rng.choice(self.neighbours(row)))


def nearest_kind(k: int) -> str:
    return f"{k} nearest by path encoding"


def neighbourhood_kind(cells: int, k: int = NEAREST) -> str:
    """The kind of neighbourhood neighbourhood_of gives a pool of `cells` cells, without building it."""
    return EditDistance.kind if cells == NUM_CELLS else nearest_kind(k)


def neighbourhood_of(cells: dict[str, np.ndarray], k: int = NEAREST) -> EditDistance | NearestByPaths:
    """The pool's neighbourhood: the space's own when the pool holds every cell, else the k nearest."""
    if len(cells["num_vertices"]) < 2:
        raise UserError(f"a pool of {len(cells['num_vertices'])} cell(s) has no neighbourhood")
    return EditDistance(cells) if len(cells["num_vertices"]) == NUM_CELLS else NearestByPaths(cells, k)
