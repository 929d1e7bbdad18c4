"""The NAS-Bench-101 search space: all 423,624 unique cells, enumerated in NB101's own order and
cached on disk, their md5 hashes on demand, and a fingerprint of the enumeration.

    from lib.nb101.space import enumerate_space
    space = enumerate_space(hashes=False)          # all 423,624 cells, ~1 s (cached: 0.01 s)
    space_hashes(space, [0, 1, 2])                 # NB101 hashes of the cells shown

Reference: google-research/nasbench nasbench/scripts/generate_graphs.py. Joining other cells to the space:
lib/nb101/join.py.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np

from lib.nb101.cell import MAX_EDGES, MAX_VERTICES
from lib.nb101.hashing import hash_cells
from lib.util.outputs import save_npz_atomic

NUM_CELLS = 423_624  # unique cells in NB101
DEFAULT_SPACE_CACHE = Path(__file__).resolve().parents[2] / "data" / "nb101_space.npz"


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


def save_space_cache(space: dict[str, np.ndarray], hashes: np.ndarray, cache: Path = DEFAULT_SPACE_CACHE) -> None:
    """Write `cache` (what enumerate_space(cache) loads) from the space's cells and their NB101 hashes,
    computed elsewhere and given in the space's order (the converter keeps those of a full file)."""
    if len(hashes) != len(space["num_vertices"]):
        raise ValueError(f"{len(hashes)} hashes for {len(space['num_vertices'])} cells")
    cells = {k: space[k] for k in ("adjacency", "operations", "num_vertices")}
    save_npz_atomic(Path(cache), {**cells, "hash": np.asarray(hashes, "U32")})


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
