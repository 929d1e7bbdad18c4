"""The NAS-Bench-101 search space: cell specs, pruning, hashing, parameter counts, enumeration.

Every stage imports this module; nothing else in the repo re-implements these rules.

    from nb101_space import make_cell
    cell = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    cell.hash, trainable_parameters(*cell.padded()[None], ...)

Reference: Ying et al. 2019, "NAS-Bench-101", and google-research/nasbench lib/ (graph_util.py,
model_spec.py, generate_graphs.py). The md5 module hash below is NB101's `hash_module`, vectorised.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPS = ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output")
# NB101's integer labels (graph hash and the HDF5 `operations` column; padding vertices hold 0).
OP_TO_LABEL = {"input": -1, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2, "output": -2}
LABEL_TO_OP = {v: k for k, v in OP_TO_LABEL.items()}
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_CELLS = 423_624  # unique cells in NB101
BUDGETS = (4, 12, 36, 108)  # training epochs NB101 recorded, the `metrics` budget axis of the HDF5
HDF5_SCHEMA_VERSION = 1  # written by tools/nasbench_tfrecord_converter.py, checked by dataset.py
DEFAULT_SPACE_CACHE = Path(__file__).resolve().parent / "data" / "nb101_space.npz"


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


# ----------------------------------------------------------------------------- graph hash


def hash_module(matrix: np.ndarray, labels) -> str:
    """NB101's graph_util.hash_module for one cell (reference implementation, used in tests)."""
    n = len(matrix)
    in_edges, out_edges = matrix.sum(0).tolist(), matrix.sum(1).tolist()
    labels = [int(x) for x in labels]  # str() of numpy ints differs from NB101's Python ints
    hashes = [_md5(str(h)) for h in zip(out_edges, in_edges, labels)]
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[w] for w in range(n) if matrix[w, v]))
                + "|"
                + "".join(sorted(hashes[w] for w in range(n) if matrix[v, w]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def hash_cells(
    adjacency: np.ndarray, labels: np.ndarray, num_vertices: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """NB101 module hashes of many padded cells at once (str array); equals hash_module row by row.

    The hash is Weisfeiler-Lehman refinement with md5 hex strings as colours. Each round builds
    every distinct vertex message with numpy and leaves only the md5 calls to a Python loop.
    Large inputs are split over `workers` processes (default: all cores).
    """
    num_vertices = np.asarray(num_vertices)
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(num_vertices) >= 50_000:
        from concurrent.futures import ProcessPoolExecutor

        chunks = np.array_split(np.arange(len(num_vertices)), workers)
        with ProcessPoolExecutor(workers) as pool:
            parts = pool.map(hash_cells, *zip(*[(adjacency[c], labels[c], num_vertices[c], 1) for c in chunks]))
            return np.concatenate(list(parts))
    out = np.empty(len(num_vertices), dtype="U32")
    for n in np.unique(num_vertices):
        rows = np.flatnonzero(num_vertices == n)
        out[rows] = _hash_group(adjacency[rows, :n, :n].astype(bool), labels[rows, :n].astype(np.int64))
    return out


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
try:  # CPython's built-in md5: per short message, ~1.4x faster than OpenSSL's through hashlib
    from _md5 import md5 as _md5_fn
except ImportError:
    _md5_fn = hashlib.md5


def _md5_rows(msgs: np.ndarray) -> np.ndarray:
    """md5 digests [U,16] of the rows of a uint8 array [U,L] (one message per row)."""
    data, width, md5 = memoryview(msgs.tobytes()), msgs.shape[1], _md5_fn
    digests = b"".join([md5(data[i : i + width]).digest() for i in range(0, len(data), width)])
    return np.frombuffer(digests, np.uint8).reshape(-1, 16)


def _to_hex(digests: np.ndarray) -> np.ndarray:
    """[U,16] digests -> [U,32] ASCII hex, as hexdigest() writes it."""
    out = np.empty((len(digests), 32), np.uint8)
    out[:, 0::2], out[:, 1::2] = _HEX[digests >> 4], _HEX[digests & 15]
    return out


def _sorted_colours(digests: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hex table sorted by string, and each item's id into it (so sorting ids sorts strings)."""
    words = digests.view(">u8")  # big-endian words compare like the hex strings
    order = np.lexsort((words[:, 1], words[:, 0]))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return _to_hex(digests[order]), rank[inverse]


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, axis=0) via a random 64-bit projection (fast), verified exactly."""
    proj = np.random.default_rng(0).integers(1, 2**63, keys.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        code = (keys.astype(np.uint64) * proj).sum(1)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    if not np.array_equal(keys[first][inverse], keys):  # a projection collision: do it the slow way
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        return uniq, inverse.ravel()
    return keys[first], inverse.ravel()


def _hash_group(adj: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Hashes of cells that all have n vertices. adj: [M,n,n] bool, labels: [M,n]."""
    m, n = labels.shape
    keys = np.stack([adj.sum(2), adj.sum(1), labels], -1).reshape(-1, 3)  # (out, in, label)
    uniq, inverse = _unique_rows(keys)
    digests = np.stack([np.frombuffer(hashlib.md5(str(tuple(k.tolist())).encode()).digest(), np.uint8) for k in uniq])
    table, ids = _sorted_colours(digests, inverse.reshape(m, n))
    for _ in range(n):
        # Neighbour ids sorted per vertex; id len(table) pads missing neighbours and sorts last.
        pad = len(table)
        nb_in = np.sort(np.where(adj.transpose(0, 2, 1), ids[:, None, :], pad), axis=2)
        nb_out = np.sort(np.where(adj, ids[:, None, :], pad), axis=2)
        keys = np.concatenate([nb_in, nb_out, ids[:, :, None]], 2).reshape(m * n, -1)
        uniq, inverse = _unique_rows(keys)
        digests = _round_digests(table, uniq, n)
        table, ids = _sorted_colours(digests, inverse.reshape(m, n))
    # Fingerprint: md5 of str(sorted(hashes)), i.e. "['h1', 'h2', ...]".
    ids = np.sort(ids, axis=1)
    template = np.frombuffer(("['" + "', '".join(["x" * 32] * n) + "']").encode(), np.uint8)
    msgs = np.tile(template, (m, 1))
    for v in range(n):
        msgs[:, 2 + 36 * v : 34 + 36 * v] = table[ids[:, v]]
    digests = _md5_rows(msgs)
    return _to_hex(digests).view("S32").ravel().astype("U32")


def _round_digests(table: np.ndarray, keys: np.ndarray, n: int) -> np.ndarray:
    """Digests of "in-hexes|out-hexes|own-hex" for key rows [in ids (n), out ids (n), own id].

    Id len(table) marks a missing neighbour (they sort last). Rows with the same in/out degree
    have messages of one length and layout, so each such group is built with column copies.
    """
    k_in = (keys[:, :n] < len(table)).sum(1)
    k_out = (keys[:, n : 2 * n] < len(table)).sum(1)
    digests = np.empty((len(keys), 16), np.uint8)
    for a, b in set(zip(k_in.tolist(), k_out.tolist())):
        rows = np.flatnonzero((k_in == a) & (k_out == b))
        cols = [*range(a), None, *range(n, n + b), None, 2 * n]  # None: the "|" separator
        msgs = np.empty((len(rows), 32 * (a + b + 1) + 2), np.uint8)
        pos = 0
        for c in cols:
            if c is None:
                msgs[:, pos] = ord("|")
                pos += 1
            else:
                msgs[:, pos : pos + 32] = table[keys[rows, c]]
                pos += 32
        digests[rows] = _md5_rows(msgs)
    return digests


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


def enumerate_space(cache: Path | None = DEFAULT_SPACE_CACHE) -> dict[str, np.ndarray]:
    """All 423,624 unique NB101 cells: adjacency [N,7,7], operations [N,7], num_vertices [N], hash [N].

    Each cell is NB101's own representative (the first met by generate_graphs.py), in that order.
    Loaded from `cache` when present; otherwise built and written there atomically.
    """
    if cache is not None and Path(cache).exists():
        with np.load(cache) as f:
            return {k: f[k] for k in f.files}
    parts = [_enumerate_n(n) for n in range(2, MAX_VERTICES + 1)]
    adjacency = np.concatenate([a for a, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    num_vertices = np.concatenate([np.full(len(a), n, np.int8) for n, (a, _) in zip(range(2, 8), parts)])
    space = {
        "adjacency": adjacency,
        "operations": labels,
        "num_vertices": num_vertices,
        "hash": hash_cells(adjacency, labels, num_vertices),
    }
    if cache is not None:
        save_npz_atomic(Path(cache), space)
    return space


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


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays), "wb")


# ----------------------------------------------------------------------------- shared helpers


def write_atomic(path: str | Path, write, mode: str = "w") -> None:
    """write(f) into a temp file beside `path`, then rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def pick_device(name: str = "auto"):
    """`auto` is cuda, then mps, then cpu; anything else is passed to torch.device."""
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
