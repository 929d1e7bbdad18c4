"""The converter's decoding in byte ranges: a NB101 TFRecord file cut at record starts, each range
decoded (lib/nb101_records_fast.parse_chunk) and its cells checked, in worker processes.

    from lib.nb101_chunks import decode_range, plan_chunks
    for start, end, first_index, starts in plan_chunks(path, size, chunk_bytes):
        part = decode_range(path, start, end, first_index, starts)   # part.error: its first bad record

A cell is checked here as its text appears in the records: a square 0/1 adjacency of a pruned NB101
cell and known ops. What spans records (one cell per hash, repeats, budgets, parameters) is
lib/nb101_convert.Table's.
"""

from __future__ import annotations

import ctypes
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from lib import nb101_space
from lib.nb101_records import FOOTER, HEADER, RecordError
from lib.nb101_records_fast import parse_chunk

# ----------------------------------------------------------------------------- planning


def plan_chunks(path: str, size: int, chunk_bytes: int):
    """(start, end, first_index, record starts in the range) of byte ranges of about chunk_bytes,
    each starting at a record.

    Hops on the record lengths without checking them; the worker checks. If a length leads
    past the end of the file, the rest of the file is one range and its worker reports why.
    """
    unpack = struct.Struct("<Q").unpack_from
    start = index = 0
    with open(path, "rb") as f:
        while start < size:
            found, off, target = [], start, start + chunk_bytes
            while off < target and off + HEADER <= size:
                block = os.pread(f.fileno(), min(8 << 20, size - off), off)
                hops, p, stop = [], 0, min(len(block) - HEADER, target - off - 1)
                while p <= stop:  # the hot loop: one record per turn
                    hops.append(p)
                    p += unpack(block, p)[0] + HEADER + FOOTER
                found.append(np.array(hops, np.int64) + (off - start))
                off += p
            end = off if off + HEADER <= size else size  # a bad length or a torn tail: the worker says which
            starts = np.concatenate(found) if found else np.zeros(0, np.int64)
            yield start, end, index, starts
            start, index = end, index + len(starts)


# ----------------------------------------------------------------------------- workers


@dataclass
class Part:
    """One byte range, decoded, with its cells parsed; what a worker sends back."""

    first_index: int
    end: int  # byte where the range ends
    offset: np.ndarray  # [n] int64
    epochs: np.ndarray  # [n] int64
    cell: np.ndarray  # [n] int64, into the cell_* fields
    params: np.ndarray  # [n] int64, -1 unset
    values: np.ndarray  # [n,2,4] float32
    synthetic: int
    cell_hash: list[bytes]
    cell_text: list[tuple[bytes, bytes]]  # (adjacency, ops) as in the records
    cell_first: np.ndarray  # [c] chunk-local record of each cell's first appearance
    adjacency: np.ndarray  # [c,7,7] int8
    operations: np.ndarray  # [c,7] int8
    num_vertices: np.ndarray  # [c] int8
    error: RecordError | None


def decode_range(path: str, start: int, end: int, first_index: int, starts: np.ndarray | None = None) -> Part:
    """Decode the records in bytes [start, end) of path, which starts at record first_index."""
    with open(path, "rb") as f:
        buf = os.pread(f.fileno(), end - start, start)
    chunk = parse_chunk(buf, path, start, first_index, starts)
    n, error = len(chunk.epochs), chunk.error
    adjacency = np.zeros((len(chunk.cell_hash), 7, 7), np.int8)
    operations = np.zeros((len(chunk.cell_hash), 7), np.int8)
    num_vertices = np.zeros(len(chunk.cell_hash), np.int8)
    for c, (adj, ops) in enumerate(zip(chunk.cell_adjacency, chunk.cell_ops, strict=True)):
        try:
            a, k = _matrix(adj)
            labels = _labels(ops, k)
        except ValueError as e:  # the first bad cell ends the part at its first record
            i = chunk.cell_first[c]
            n, error = i, RecordError(path, first_index + i, int(chunk.offset[i]), str(e))
            adjacency, operations, num_vertices = adjacency[:c], operations[:c], num_vertices[:c]
            break
        adjacency[c], operations[c, :k], num_vertices[c] = a, labels, k
    c = len(num_vertices)
    return Part(
        first_index=first_index,
        end=end,
        offset=chunk.offset[:n],
        epochs=chunk.epochs[:n],
        cell=chunk.cell[:n],
        params=chunk.params[:n],
        values=chunk.values[:n].astype(np.float32),
        synthetic=int(chunk.synthetic[:n].sum()),
        cell_hash=chunk.cell_hash[:c],
        cell_text=list(zip(chunk.cell_adjacency[:c], chunk.cell_ops[:c], strict=True)),
        cell_first=np.array(chunk.cell_first[:c], np.int64),
        adjacency=adjacency,
        operations=operations,
        num_vertices=num_vertices,
        error=error,
    )


_MATRICES: dict[bytes, tuple[np.ndarray, int] | str] = {}  # per process: NB101 has 2,494 distinct matrices
_OPS: dict[bytes, np.ndarray | str] = {}


def _matrix(adj: bytes) -> tuple[np.ndarray, int]:
    """Padded 7x7 matrix of an adjacency string, validated as a pruned NB101 matrix (cached)."""
    if adj not in _MATRICES:
        try:
            _MATRICES[adj] = _check_matrix(adj)
        except ValueError as e:
            _MATRICES[adj] = str(e)
    hit = _MATRICES[adj]
    if isinstance(hit, str):
        raise ValueError(hit)
    return hit


def _check_matrix(adj: bytes) -> tuple[np.ndarray, int]:
    k = math.isqrt(len(adj))
    if k * k != len(adj):
        raise ValueError(f"adjacency string of {len(adj)} characters is not square")
    if adj.strip(b"01"):
        raise ValueError(f"adjacency string {adj.decode(errors='replace')!r} holds characters other than 0 and 1")
    m = np.frombuffer(adj, np.uint8).reshape(k, k) - ord("0")
    try:  # matrix rules only: the ops are checked on their own
        cell = nb101_space.make_cell(m, ["input"] + ["conv3x3-bn-relu"] * (k - 2) + ["output"])
    except nb101_space.InvalidSpecError as e:
        raise ValueError(f"invalid cell: {e}") from None
    if cell.num_vertices != k:
        raise ValueError("invalid cell: not pruned (a vertex is off every input-output path)")
    padded = np.zeros((7, 7), np.int8)
    padded[:k, :k] = m
    return padded, k


def _labels(ops: bytes, k: int) -> np.ndarray:
    """NB101 labels of an ops string for a k-vertex cell (cached)."""
    if ops not in _OPS:
        names = ops.decode(errors="replace").split(",")
        known = (*nb101_space.OPS[1:4],)
        bad = [x for x in names[1:-1] if x not in known] + [x for x in names[:1] if x != "input"]
        bad += [x for x in names[-1:] if x != "output"]
        if bad:
            _OPS[ops] = f"unknown op {bad[0]!r} (the first must be 'input', the last 'output', the rest in {known})"
        else:
            _OPS[ops] = np.array([nb101_space.OP_TO_LABEL[x] for x in names], np.int8)
    hit = _OPS[ops]
    if isinstance(hit, str):
        raise ValueError(hit)
    if len(hit) != k:
        raise ValueError(f"{len(hit)} ops for a {k}x{k} adjacency matrix")
    return hit


def decode_task(task: tuple) -> Part:
    """decode_range(*task), for Pool.imap."""
    return decode_range(*task)


def worker_init() -> None:
    """Keep freed memory in the worker: each task allocates the same large temporaries, and with
    glibc's defaults they are mapped and faulted in anew every time (measured: sys time 0.9 ->
    0.2 us per record)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except OSError:  # not glibc: defaults
        pass
