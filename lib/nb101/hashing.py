"""NB101's module hash: md5-coloured Weisfeiler-Lehman refinement, for one cell or many at once.

    from lib.nb101.hashing import hash_module, hash_cells
    hash_module(cell.matrix, cell.labels)                 # reference, one cell
    hash_cells(adjacency, operations, num_vertices)     # vectorised, [N] str, equal row by row

Reference: google-research/nasbench lib/graph_util.py (hash_module).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from lib.util.workers import in_workers


def hash_module(matrix: np.ndarray, labels) -> str:
    """NB101's graph_util.hash_module for one labelled graph of any size (the reference; nasbench/'s too).

    A label enters the hash as str() prints it; numpy scalars as their Python values, as the numpy of
    NB101's time printed them (numpy 2 prints np.int8(0) where NB101 printed 0).
    """
    n = len(matrix)
    in_edges, out_edges = matrix.sum(0).tolist(), matrix.sum(1).tolist()
    labels = [x.item() if isinstance(x, np.generic) else x for x in labels]
    rows = matrix.tolist()  # Python values: indexing a numpy array element by element costs most of the time
    ins = [[w for w in range(n) if rows[w][v]] for v in range(n)]
    outs = [[w for w in range(n) if rows[v][w]] for v in range(n)]
    hashes = [_md5(str(h)) for h in zip(out_edges, in_edges, labels)]
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[w] for w in ins[v]))
                + "|"
                + "".join(sorted(hashes[w] for w in outs[v]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


POOL_MIN_CELLS = 50_000  # below this, starting worker processes costs more than it saves


def hash_cells(
    adjacency: np.ndarray, labels: np.ndarray, num_vertices: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """NB101 module hashes of many padded cells at once (str array); equals hash_module row by row.

    The hash is Weisfeiler-Lehman refinement with md5 hex strings as colours. Each round builds
    every distinct vertex message with numpy and leaves only the md5 calls to a Python loop.
    From POOL_MIN_CELLS cells on, the rows are split over `workers` processes (default: all cores).
    """
    num_vertices = np.asarray(num_vertices)
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(num_vertices) >= POOL_MIN_CELLS:
        chunks = np.array_split(np.arange(len(num_vertices)), workers)
        tasks = [(adjacency[c], labels[c], num_vertices[c]) for c in chunks]
        return np.concatenate([h for _, h in in_workers(_hash_task, tasks, workers=workers, what="hashing")])
    out = np.empty(len(num_vertices), dtype="U32")
    for n in np.unique(num_vertices):
        rows = np.flatnonzero(num_vertices == n)
        out[rows] = _hash_group(adjacency[rows, :n, :n].astype(bool), labels[rows, :n].astype(np.int64))
    return out


def _hash_task(task: tuple) -> np.ndarray:
    return hash_cells(*task, workers=1)


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
