"""Joining a data file's cells to the enumerated space without NB101's md5 hash.

    from lib.nb101.join import space_rows
    rows = space_rows(space, adjacency, operations, num_vertices)   # row in the space, -1 if none

NB101's md5 hash names a cell up to isomorphism, but costs ~0.1 ms a cell. NB101's own files store each
cell as its representative (the same matrix and ops as the enumeration's), so an exact code of the
padded arrays joins them to the space; cells in another encoding are first brought to their
representative (canonical_cells), which equals the hash join because hash classes are isomorphism classes.

"""

from __future__ import annotations

import itertools

import numpy as np

from lib.nb101.cell import MAX_VERTICES


def cell_codes(adjacency: np.ndarray, operations: np.ndarray, num_vertices: np.ndarray) -> np.ndarray:
    """One int64 per padded cell, equal iff the cells' arrays are equal: the 49 adjacency bits, the
    labels of the interior vertices (base 3) and n. -1 for a cell that breaks NB101's layout: an edge
    on or below the diagonal or past n, or an op other than input first, output at n-1, convs and
    pools between."""
    adjacency, operations = np.asarray(adjacency), np.asarray(operations)
    n = np.asarray(num_vertices).astype(np.int64)
    packed = np.packbits(adjacency.reshape(len(n), -1) != 0, axis=1, bitorder="little")
    bits = np.pad(packed, ((0, 0), (0, 8 - packed.shape[1]))).view("<u8").ravel().astype(np.int64)
    interior = np.arange(1, MAX_VERTICES - 1)[None, :] < n[:, None] - 1
    ops = operations[:, 1 : MAX_VERTICES - 1].astype(np.int64)
    labels = np.where(interior, ops, 0) @ (3 ** np.arange(MAX_VERTICES - 2, dtype=np.int64))
    ok = (bits & _OUTSIDE[n.clip(0, MAX_VERTICES)]) == 0
    ok &= (operations[:, 0] == -1) & (np.take_along_axis(operations, (n[:, None] - 1).clip(0, 6), 1)[:, 0] == -2)
    ok &= ((ops >= 0) & (ops <= 2) | ~interior).all(1) & (n >= 2) & (n <= MAX_VERTICES)
    return np.where(ok, bits | labels << 49 | n << 57, -1)


def _outside_masks() -> np.ndarray:
    """For each n: the adjacency bits (row-major, as cell_codes packs them) that must be 0."""
    masks = np.zeros(MAX_VERTICES + 1, np.int64)
    for n in range(MAX_VERTICES + 1):
        allowed = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), bool), 1)
        allowed[n:], allowed[:, n:] = False, False
        masks[n] = int((~allowed).ravel() @ (1 << np.arange(MAX_VERTICES**2, dtype=np.uint64)))
    return masks


_OUTSIDE = _outside_masks()


def space_rows(space: dict[str, np.ndarray], adjacency, operations, num_vertices) -> np.ndarray:
    """Row in `space` (enumerate_space) of each given cell, -1 where it is no NB101 cell.

    Exact codes first (NB101's files hold representatives); the cells left over are brought to their
    representative (isomorphism) and looked up again."""
    return row_finder(space)(adjacency, operations, num_vertices)


def row_finder(space: dict[str, np.ndarray]):
    """space_rows for many calls against one space: its codes are sorted once.

    find = row_finder(space); find(adjacency, operations, num_vertices) -> rows, -1 where absent"""
    space_code = cell_codes(space["adjacency"], space["operations"], space["num_vertices"])
    order = np.argsort(space_code)

    def lookup(code: np.ndarray) -> np.ndarray:
        at = order[np.searchsorted(space_code, code, sorter=order).clip(0, len(order) - 1)]
        return np.where((space_code[at] == code) & (code >= 0), at, -1)

    def find(adjacency, operations, num_vertices) -> np.ndarray:
        num_vertices = np.asarray(num_vertices)
        rows = lookup(cell_codes(adjacency, operations, num_vertices))
        todo = np.flatnonzero(rows < 0)
        if len(todo):
            adj, ops = canonical_cells(np.asarray(adjacency)[todo], np.asarray(operations)[todo], num_vertices[todo])
            rows[todo] = lookup(cell_codes(adj, ops, num_vertices[todo]))
        return rows

    return find


def canonical_cells(adjacency: np.ndarray, operations: np.ndarray, num_vertices: np.ndarray):
    """Each padded cell re-encoded as NB101's representative of its isomorphism class: of the vertex
    orders that keep input first, output last and the matrix upper-triangular, the smallest matrix in
    generate_graphs.py's bit order, then the smallest labeling (see _enumerate_n). Cells with no such
    order come back unchanged."""
    adjacency, operations = np.array(adjacency, np.int8), np.array(operations, np.int8)
    num_vertices = np.asarray(num_vertices)
    for n in np.unique(num_vertices).tolist():
        if not 2 < n <= MAX_VERTICES:
            continue
        rows = np.flatnonzero(num_vertices == n)
        adj, lab = adjacency[rows, :n, :n] != 0, operations[rows, :n]
        xs, ys = zip(*[(x, y) for y in range(n) for x in range(y)])  # bit index of x->y: x + y(y-1)/2
        bit = np.int64(1) << np.arange(len(xs), dtype=np.int64)
        lex = 3 ** np.arange(n - 3, -1, -1, dtype=np.int64)
        best, best_perm = np.full(len(rows), np.iinfo(np.int64).max), np.tile(np.arange(n), (len(rows), 1))
        for p in itertools.permutations(range(1, n - 1)):
            p = np.array((0, *p, n - 1))
            a = adj[:, p][:, :, p]
            labels = lab[:, p[1:-1]].astype(np.int64).clip(0, 2) @ lex
            key = (a[:, xs, ys].astype(np.int64) @ bit) * 3 ** (n - 2) + labels  # matrix first, then labeling
            key[np.tril(a).any((1, 2))] = np.iinfo(np.int64).max  # not upper-triangular in this order
            better = key < best
            best[better], best_perm[better] = key[better], p
        found = best < np.iinfo(np.int64).max
        r, perm = rows[found], best_perm[found]
        adjacency[r, :n, :n] = np.take_along_axis(
            np.take_along_axis(adj[found], perm[:, :, None], 1), perm[:, None, :], 2
        )
        operations[r, :n] = np.take_along_axis(lab[found], perm, 1)
    return adjacency, operations
