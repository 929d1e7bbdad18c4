"""The NAS-Bench-101 search space: cell specs, pruning, parameter counts, the network, enumeration,
and joining cells to the enumeration without NB101's md5 hash.

Every stage imports this module; nothing else in the repo re-implements these rules.

    from lib.nb101_space import make_cell
    cell = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    cell.hash, trainable_parameters(*cell.padded()[None], ...)
    space = enumerate_space(hashes=False)                      # all 423,624 cells, ~1 s (cached: 0.01 s)
    rows = space_rows(space, adjacency, operations, num_vertices)   # a file's cells located in it
    space_hashes(space, rows[:10])                             # NB101 hashes of the cells shown

Reference: Ying et al. 2019, "NAS-Bench-101", and google-research/nasbench lib/ (graph_util.py,
model_spec.py, generate_graphs.py). The module hash itself lives in lib/nb101_hash.py.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.nb101_hash import hash_cells, hash_module
from lib.outputs import save_npz_atomic

OPS = ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output")
# NB101's integer labels (graph hash and the HDF5 `operations` column; padding vertices hold 0).
OP_TO_LABEL = {"input": -1, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2, "output": -2}
LABEL_TO_OP = {v: k for k, v in OP_TO_LABEL.items()}
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_CELLS = 423_624  # unique cells in NB101
BUDGETS = (4, 12, 36, 108)  # training epochs NB101 recorded, the `metrics` budget axis of the HDF5
HDF5_SCHEMA_VERSION = 1  # written by tools/nasbench_tfrecord_converter.py, checked by dataset.py
DEFAULT_SPACE_CACHE = Path(__file__).resolve().parents[1] / "data" / "nb101_space.npz"


class InvalidSpecError(ValueError):
    """A cell spec that NB101 would reject, with the reason in the message."""


# ----------------------------------------------------------------------------- cell spec


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


# ----------------------------------------------------------------------------- parameter count


def _cell_channels(stem_channels: int, num_stacks: int, cells_per_stack: int) -> list[tuple[int, int]]:
    """(in_channels, out_channels) of each cell of the stacked network; channels double per stack."""
    pairs, c_in = [], stem_channels
    for s in range(num_stacks):
        c_out = stem_channels * 2**s
        for _ in range(cells_per_stack):
            pairs.append((c_in, c_out))
            c_in = c_out
    return pairs


def trainable_parameters(
    adjacency: np.ndarray,
    labels: np.ndarray,
    num_vertices: np.ndarray,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
) -> np.ndarray:
    """NB101 `trainable_parameters` in closed form, for padded cells [N,7,7], [N,7], [N].

    Equals the nasbench_pytorch Network's parameter count without the 1-element Placeholders.
    Convs have no bias and each BatchNorm adds 2 per channel. Channel widths depend only on the
    matrix, so they are computed once per distinct matrix; the ops then enter linearly.
    """
    from nasbench_pytorch.model.model import compute_vertex_channels

    adjacency, labels = np.asarray(adjacency), np.asarray(labels)
    flat = adjacency.reshape(len(adjacency), -1)
    _, first, inv = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    k3 = np.zeros((len(first), MAX_VERTICES), np.int64)  # params if vertex t is conv3x3
    k1 = np.zeros((len(first), MAX_VERTICES), np.int64)  # params if vertex t is conv1x1
    fixed = np.zeros(len(first), np.int64)  # 1x1 projections of the cell input, whatever the ops
    pairs = _cell_channels(stem_channels, num_stacks, cells_per_stack)
    for u, row in enumerate(first):
        n = int(num_vertices[row])
        m = adjacency[row, :n, :n].astype(np.int64)
        for c_in, c_out in pairs:
            ch = np.array(compute_vertex_channels(c_in, c_out, m), np.int64)
            k3[u, 1 : n - 1] += 9 * ch[1 : n - 1] ** 2 + 2 * ch[1 : n - 1]
            k1[u, 1 : n - 1] += ch[1 : n - 1] ** 2 + 2 * ch[1 : n - 1]
            fixed[u] += int(((c_in * ch[1:] + 2 * ch[1:]) * m[0, 1:]).sum())
    stem = 3 * 3 * 3 * stem_channels + 2 * stem_channels
    head = stem_channels * 2 ** (num_stacks - 1) * num_classes + num_classes
    ops = ((labels == 0) * k3[inv] + (labels == 1) * k1[inv]).sum(1)
    return stem + head + fixed[inv] + ops


def build_network(
    cell: Cell,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
    bn_momentum: float = 0.003,
    bn_eps: float = 1e-5,
):
    """The stacked nasbench_pytorch Network for `cell`, with NB101's BatchNorm settings.

    nasbench_pytorch passes TF's decay 0.997 straight to PyTorch's `momentum` (which weighs the
    *new* batch) and leaves the vertex ops at 0.1; TF decay 0.997 is PyTorch momentum 0.003.
    """
    import torch.nn as nn
    from nasbench_pytorch.model import Network

    net = Network(
        (cell.matrix.copy(), list(cell.ops)),
        num_labels=num_classes,
        stem_out_channels=stem_channels,
        num_stacks=num_stacks,
        num_modules_per_stack=cells_per_stack,
    )
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum, mod.eps = bn_momentum, bn_eps
    return net


def count_parameters(net) -> int:
    """Trainable parameters without nasbench_pytorch's dummy 1-element Placeholder parameters."""
    from nasbench_pytorch.model.model import Placeholder

    dummy = {id(p) for m in net.modules() if isinstance(m, Placeholder) for p in m.parameters()}
    return sum(p.numel() for p in net.parameters() if p.requires_grad and id(p) not in dummy)


# ----------------------------------------------------------------------------- enumeration


def enumerate_space(cache: Path | None = DEFAULT_SPACE_CACHE, hashes: bool = True) -> dict[str, np.ndarray]:
    """All 423,624 unique NB101 cells: adjacency [N,7,7], operations [N,7], num_vertices [N] (int8),
    and with `hashes` their NB101 hash [N] (U32).

    Each cell is NB101's own representative (the first met by generate_graphs.py), in that order.
    The cells take ~1 s to enumerate, their md5 hashes ~50 s (2 processes), so the hashes are
    computed only when asked for. Cached: `cache` holds cells and hashes, cells_cache(cache) the
    cells alone; each is loaded when present (< 0.1 s), otherwise built and written atomically.
    Without hashes, join cells by cell_codes / space_rows, and hash only the cells shown.
    """
    cache = None if cache is None else Path(cache)
    if cache is not None and cache.exists():
        with np.load(cache) as f:
            return {k: f[k] for k in f.files if hashes or k != "hash"}
    cells_path = None if cache is None else cells_cache(cache)
    if cells_path is not None and cells_path.exists():
        with np.load(cells_path) as f:
            space = {k: f[k] for k in f.files}
    else:
        parts = [_enumerate_n(n) for n in range(2, MAX_VERTICES + 1)]
        space = {
            "adjacency": np.concatenate([a for a, _ in parts]),
            "operations": np.concatenate([lab for _, lab in parts]),
            "num_vertices": np.concatenate([np.full(len(a), n, np.int8) for n, (a, _) in zip(range(2, 8), parts)]),
        }
        if cells_path is not None:
            save_npz_atomic(cells_path, space)
    if hashes:
        space["hash"] = hash_cells(space["adjacency"], space["operations"], space["num_vertices"])
        if cache is not None:
            save_npz_atomic(cache, space)
    return space


def cells_cache(cache: Path) -> Path:
    """Where enumerate_space keeps the cells alone, beside `cache` (cells and hashes)."""
    return cache.with_name(cache.stem + "_cells.npz")


def space_hashes(space: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """NB101 hashes (U32) of the space's cells `rows`: from the space when it holds them, else computed."""
    rows = np.asarray(rows, np.int64)
    if "hash" in space:
        return space["hash"][rows]
    return hash_cells(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows])


def space_fingerprint(space: dict[str, np.ndarray]) -> str:
    """Identifies the enumerated cells and their order (stored beside predictions made in that order)."""
    h = hashlib.sha1()
    for key in ("adjacency", "operations", "num_vertices"):
        h.update(np.ascontiguousarray(space[key]).tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- joining cells to the space
# NB101's md5 hash names a cell up to isomorphism, but costs ~0.1 ms a cell. NB101's own files store each
# cell as its representative (the same matrix and ops as the enumeration's), so an exact code of the
# padded arrays joins them to the space; cells in another encoding are first brought to their
# representative (canonical_cells), which equals the hash join because hash classes are isomorphism classes.


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
    space_code = cell_codes(space["adjacency"], space["operations"], space["num_vertices"])
    order = np.argsort(space_code)

    def lookup(code: np.ndarray) -> np.ndarray:
        at = order[np.searchsorted(space_code, code, sorter=order).clip(0, len(order) - 1)]
        return np.where((space_code[at] == code) & (code >= 0), at, -1)

    num_vertices = np.asarray(num_vertices)
    rows = lookup(cell_codes(adjacency, operations, num_vertices))
    todo = np.flatnonzero(rows < 0)
    if len(todo):
        adj, ops = canonical_cells(np.asarray(adjacency)[todo], np.asarray(operations)[todo], num_vertices[todo])
        rows[todo] = lookup(cell_codes(adj, ops, num_vertices[todo]))
    return rows


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


def _enumerate_n(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Representatives of the n-vertex cells, in generate_graphs.py order (bits, then labeling).

    generate_graphs keeps the first (bits, labeling) of each hash. Hash classes are isomorphism
    classes here (NB101 verified this), so the representative is the smallest-bits matrix of its
    unlabelled class with the lexicographically smallest labeling of its automorphism orbit.
    """
    mats = _full_dags(n)  # [M,n,n] in bits order
    perms = [np.array((0, *p, n - 1)) for p in itertools.permutations(range(1, n - 1))]
    weights = (1 << np.arange(n * n, dtype=np.int64)).reshape(n, n)
    codes = np.stack([(mats[:, p][:, :, p] * weights).sum((1, 2)) for p in perms], 1)  # [M,P]
    _, first = np.unique(codes.min(1), return_index=True)
    first.sort()  # the smallest-bits matrix of each unlabelled class, in bits order
    labelings = np.array(list(itertools.product(range(3), repeat=n - 2)), np.int8).reshape(3 ** (n - 2), n - 2)
    lex = 3 ** np.arange(n - 3, -1, -1)
    adj_out, lab_out = [], []
    for g in first:
        auts = [p[1:-1] - 1 for p, c in zip(perms, codes[g]) if c == codes[g, 0]]
        orbit_min = np.min([labelings[:, a] @ lex for a in auts], axis=0)
        keep = labelings[orbit_min == labelings @ lex]
        adj = np.zeros((len(keep), MAX_VERTICES, MAX_VERTICES), np.int8)
        adj[:, :n, :n] = mats[g]
        lab = np.zeros((len(keep), MAX_VERTICES), np.int8)
        lab[:, 0], lab[:, 1 : n - 1], lab[:, n - 1] = -1, keep, -2
        adj_out.append(adj)
        lab_out.append(lab)
    return np.concatenate(adj_out), np.concatenate(lab_out)


def _full_dags(n: int) -> np.ndarray:
    """Upper-triangular n×n matrices in NB101's bit order with ≤ 9 edges and no dangling vertex."""
    xs, ys = zip(*[(x, y) for y in range(n) for x in range(y)])  # bit index of x→y: x + y(y-1)/2
    bits = np.arange(2 ** len(xs), dtype=np.int64)
    edges = ((bits[:, None] >> np.arange(len(xs))) & 1).astype(np.int8)
    edges = edges[edges.sum(1) <= MAX_EDGES]
    mats = np.zeros((len(edges), n, n), np.int8)
    mats[:, xs, ys] = edges
    full = mats[:, :-1].any(2).all(1) & mats[:, :, 1:].any(1).all(1)
    return mats[full]
