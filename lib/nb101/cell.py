"""NAS-Bench-101 cells: the op vocabulary, a validated and pruned cell spec, and its HDF5 row form.

    from lib.nb101.cell import make_cell
    cell = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    cell.hash, cell.padded(), cell.to_json()

Reference: Ying et al. 2019, "NAS-Bench-101", and google-research/nasbench lib/model_spec.py
(validation, pruning). The module hash itself lives in lib/nb101/hashing.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.nb101.hashing import hash_module
from lib.util.errors import UserError

OPS = ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output")
# NB101's integer labels (graph hash and the HDF5 `operations` column; padding vertices hold 0).
OP_TO_LABEL = {"input": -1, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2, "output": -2}
LABEL_TO_OP = {v: k for k, v in OP_TO_LABEL.items()}
MAX_VERTICES = 7
MAX_EDGES = 9


class InvalidSpecError(UserError):
    """A cell spec that NB101 would reject, with the reason in the message."""


@dataclass(frozen=True, eq=False)
class Cell:
    """A pruned, validated NB101 cell: upper-triangular `matrix` (n×n int8) and `ops` (n names)."""

    matrix: np.ndarray
    ops: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return int(self.matrix.sum())

    @property
    def labels(self) -> np.ndarray:
        return np.array([OP_TO_LABEL[o] for o in self.ops], dtype=np.int8)

    @property
    def hash(self) -> str:
        return hash_module(self.matrix, self.labels)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """(adjacency 7×7, labels 7) with the cell in the top-left block, as stored in the HDF5."""
        n = self.num_vertices
        adj = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int8)
        adj[:n, :n] = self.matrix
        labels = np.zeros(MAX_VERTICES, np.int8)
        labels[:n] = self.labels
        return adj, labels

    def to_json(self) -> dict:
        return {"adjacency": self.matrix.tolist(), "ops": list(self.ops), "hash": self.hash}

    @classmethod
    def from_json(cls, d: dict) -> Cell:
        cell = make_cell(d["adjacency"], d["ops"])
        if "hash" in d and d["hash"] != cell.hash:
            raise InvalidSpecError(f"hash {d['hash']} does not match its cell (computed {cell.hash})")
        return cell

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self.ops == other.ops and np.array_equal(self.matrix, other.matrix)

    def __repr__(self) -> str:
        return f"Cell(matrix={self.matrix.tolist()}, ops={list(self.ops)})"


def prune(matrix: np.ndarray, ops: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop vertices not on an input→output path (NB101 ModelSpec._prune). Raises if none is left."""
    n = len(ops)
    reach_in = _reachable(matrix, 0, forward=True)
    reach_out = _reachable(matrix, n - 1, forward=False)
    keep = [v for v in range(n) if reach_in[v] and reach_out[v]]
    if len(keep) < 2 or keep[0] != 0 or keep[-1] != n - 1:
        raise InvalidSpecError("input is not connected to output")
    return matrix[np.ix_(keep, keep)], [ops[v] for v in keep]


def _reachable(matrix: np.ndarray, start: int, forward: bool) -> np.ndarray:
    adj = matrix if forward else matrix.T
    seen = np.zeros(len(matrix), bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(adj[v]):
            if not seen[w]:
                seen[w] = True
                frontier.append(w)
    return seen


def make_cell(matrix, ops) -> Cell:
    """Validate a spec like NB101 does, prune it and return the Cell. Raises InvalidSpecError."""
    try:
        m = np.asarray(matrix)
    except ValueError as e:  # ragged nested lists
        raise InvalidSpecError(f"adjacency matrix is not square: {e}") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InvalidSpecError(f"adjacency matrix is not square (shape {m.shape})")
    if not np.isin(m, (0, 1)).all():
        raise InvalidSpecError("adjacency matrix must hold only 0 and 1")
    m = m.astype(np.int8)
    ops = list(ops)
    n = len(m)
    if len(ops) != n:
        raise InvalidSpecError(f"{len(ops)} ops for a {n}×{n} adjacency matrix")
    if n < 2 or n > MAX_VERTICES:
        raise InvalidSpecError(f"{n} vertices; NB101 cells have 2 to {MAX_VERTICES}")
    if np.tril(m).any():
        raise InvalidSpecError("adjacency matrix is not upper triangular")
    unknown = [o for o in ops[1:-1] if o not in OPS[1:4]]
    if unknown or ops[0] != "input" or ops[-1] != "output":
        bad = unknown[0] if unknown else (ops[0] if ops[0] != "input" else ops[-1])
        raise InvalidSpecError(
            f"unknown op {bad!r} (first op must be 'input', last 'output', others one of {OPS[1:4]})"
        )
    m, ops = prune(m, ops)
    if m.sum() > MAX_EDGES:
        raise InvalidSpecError(f"{int(m.sum())} edges after pruning; NB101 allows at most {MAX_EDGES}")
    return Cell(m, tuple(ops))


def cell_from_row(adjacency: np.ndarray, labels: np.ndarray, num_vertices: int) -> Cell:
    """Rebuild a Cell from one padded HDF5 row (adjacency 7×7, operations 7, num_vertices)."""
    n = int(num_vertices)
    return make_cell(adjacency[:n, :n], [LABEL_TO_OP[int(x)] for x in labels[:n]])


SHORT_OPS = {"conv3x3-bn-relu": "3x3", "conv1x1-bn-relu": "1x1", "maxpool3x3": "mp"}  # as tables print them


def short_ops(ops) -> str:
    """A cell's interior ops in a few characters, as tables print them: '3x3,mp,1x1' ('-' for none)."""
    return ",".join(SHORT_OPS[o] for o in list(ops)[1:-1]) or "-"
