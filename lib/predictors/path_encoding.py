"""BANANAS's path encoding of NB101 cells: which input-to-output paths, as sequences of interior ops,
a cell holds; one bit per possible sequence, 3^0 + 3^1 + ... + 3^5 = 364 bits.

    from lib.predictors.path_encoding import path_encoding
    codes = path_encoding(adjacency, operations, num_vertices)     # [N, 364] uint8, 0/1

Reference: C. White et al., "BANANAS: Bayesian Optimization with Neural Architectures for Neural
Architecture Search", AAAI 2021 (naszilla/bananas, nas_bench/cell.py encode_paths).
"""

from __future__ import annotations

import numpy as np

OPS = 3  # interior ops: conv3x3, conv1x1, maxpool (NB101 labels 0, 1, 2)
MAX_LENGTH = 5  # interior vertices of a 7-vertex cell
LENGTHS = OPS ** np.arange(MAX_LENGTH + 1)  # sequences of each length: 1, 3, 9, ..., 243
PATHS = int(LENGTHS.sum())  # 364
_OFFSET = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])  # first index of each length's block


def path_index(ops: list[int]) -> int:
    """The bit of one path, given its interior ops in order (labels 0-2): by length, then base 3."""
    value = 0
    for op in ops:
        value = OPS * value + op
    return int(_OFFSET[len(ops)] + value)


def cell_paths(adjacency: np.ndarray, labels: np.ndarray, n: int) -> list[int]:
    """The path bits of one padded cell: a depth-first walk from the input (vertex 0) to the output
    (vertex n-1), collecting the interior ops passed. Cells have at most 9 edges: a few dozen paths."""
    succ = [np.flatnonzero(adjacency[v, :n]) for v in range(n)]
    out, stack = [], [(0, 0, 0)]  # (vertex, ops so far as a base-3 value, their count)
    while stack:
        v, value, length = stack.pop()
        if v == n - 1:
            out.append(int(_OFFSET[length] + value))
            continue
        for w in succ[v]:
            if w == n - 1:
                stack.append((int(w), value, length))
            else:
                stack.append((int(w), OPS * value + int(labels[w]), length + 1))
    return out


def path_encoding(adjacency: np.ndarray, operations: np.ndarray, num_vertices: np.ndarray) -> np.ndarray:
    """[N, 364] uint8 path encodings of padded cells (the HDF5's arrays: NB101 labels, 0-padded)."""
    out = np.zeros((len(num_vertices), PATHS), np.uint8)
    for i, (a, o, n) in enumerate(zip(adjacency, operations, num_vertices)):
        out[i, cell_paths(a, o, int(n))] = 1
    return out
