"""NB101's ModelSpec (nasbench/lib/model_spec.py): a cell given as an adjacency matrix and its ops,
pruned of the vertices off every input-output path, and its hash.

    from nasbench.lib.model_spec import ModelSpec
    spec = ModelSpec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    spec.valid_spec, spec.matrix, spec.ops, spec.hash_spec(["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"])

Pruning is lib/nb101/cell.prune; the hash is graph_util.hash_module.
"""

from __future__ import annotations

import copy

import numpy as np

from lib.nb101.cell import InvalidSpecError, prune
from nasbench.lib import graph_util


class ModelSpec:
    """A cell: `original_matrix` and `original_ops` as given, `matrix` and `ops` pruned (None, with
    `valid_spec` False, when the input does not reach the output)."""

    def __init__(self, matrix, ops, data_format: str = "channels_last"):
        """matrix: [V, V] upper-triangular adjacency (array or nested lists); ops: V labels, the first and
        last those of the input and output vertices. ValueError if the shapes disagree or the matrix is
        not upper triangular."""
        if not isinstance(matrix, np.ndarray):
            matrix = np.array(matrix)
        shape = np.shape(matrix)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError("matrix must be square")
        if shape[0] != len(ops):
            raise ValueError("length of ops must match matrix dimensions")
        if not is_upper_triangular(matrix):
            raise ValueError("matrix must be upper triangular")
        # Copies: changing what was passed in changes nothing here.
        self.original_matrix = copy.deepcopy(matrix)
        self.original_ops = copy.deepcopy(ops)
        self.matrix = copy.deepcopy(matrix)
        self.ops = copy.deepcopy(ops)
        self.valid_spec = True
        self._prune()
        self.data_format = data_format

    def _prune(self) -> None:
        """Keep the vertices on an input-output path, in their order; invalid if the input does not reach
        the output."""
        n = np.shape(self.original_matrix)[0]
        try:
            if n < 2:
                raise InvalidSpecError("no output apart from the input")
            self.matrix, kept = prune(self.original_matrix, list(range(n)))
        except InvalidSpecError:
            self.matrix, self.ops, self.valid_spec = None, None, False
            return
        for v in sorted(set(range(n)) - set(kept), reverse=True):
            del self.ops[v]

    def hash_spec(self, canonical_ops: list[str]) -> str:
        """The module hash of the pruned cell: the dataset's key. canonical_ops: the interior ops in the
        order that numbers them (config['available_ops'])."""
        labeling = [-1] + [canonical_ops.index(op) for op in self.ops[1:-1]] + [-2]
        return graph_util.hash_module(self.matrix, labeling)

    def visualize(self):
        """The pruned cell as a graphviz.Digraph (shown inline in a notebook); needs the graphviz package."""
        try:
            import graphviz
        except ImportError:
            raise ImportError("ModelSpec.visualize needs the graphviz package: pip install graphviz") from None
        n = np.shape(self.matrix)[0]
        g = graphviz.Digraph()
        for v in range(n):
            g.node(str(v), "input" if v == 0 else "output" if v == n - 1 else self.ops[v])
        for src, dst in zip(*np.nonzero(np.triu(self.matrix, 1)), strict=True):
            g.edge(str(src), str(dst))
        return g


def is_upper_triangular(matrix: np.ndarray) -> bool:
    """True if the matrix is 0 on and below its diagonal."""
    return not np.any(np.tril(matrix) != 0)
