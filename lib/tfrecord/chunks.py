"""The converter's decoding in byte ranges: a NB101 TFRecord file cut at record starts, each range
checked and decoded (lib/tfrecord/records_fast) and its cells checked, in worker processes.

    from lib.tfrecord.chunks import decode_parts
    for part in decode_parts(path, size, chunk_bytes, workers=2, check_first=True):   # in file order
        part.error                                                  # its first bad record, if any

decode_parts plans the ranges (plan_chunks) and decodes each (decode_range) here or in a pool of
worker processes. With check_first it first checks the framing and both CRCs of every range
(check_range, ~0.4 us a record), in parallel, and decodes nothing until all are sound: damage
anywhere in a large file then fails in seconds, not after everything before it is decoded.
Bad input comes back inside the parts as a RecordError, or the check raises it; a worker that
fails or dies raises WorkerError at once (concurrent.futures notices a dead worker, so nothing
waits forever).

A cell is checked here as its text appears in the records: a square 0/1 adjacency of a pruned NB101
cell and known ops. What spans records (one cell per hash, repeats, epochs, parameters) is
lib/tfrecord/convert.Table's.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lib.nb101 import cell as nb101_cell
from lib.tfrecord.records import FOOTER, HEADER, RecordError, masked_crc32c
from lib.tfrecord.records_fast import check_framing, parse_chunk
from lib.util.memory import keep_freed_memory
from lib.util.workers import WorkerError, in_workers

# ----------------------------------------------------------------------------- planning


def plan_chunks(path: str, size: int, chunk_bytes: int):
    """(start, end, first_index, record starts in the range) of byte ranges of about chunk_bytes,
    each starting at a record.

    Hops on the record lengths without checking them; the worker checks. Only the last hop of
    each block read is checked here (its length may lead anywhere): a damaged one ends the plan
    with a range that ends at its header, so no range holds a long run of bytes after a damaged
    length. If a sound length leads past the end of the file, the rest of the file is one range
    and its worker reports why.
    """
    unpack, frame = struct.Struct("<Q").unpack_from, HEADER + FOOTER
    block = bytearray(8 << 20)  # reused: a new 8 MiB object per read costs as much as the hops
    start = index = 0
    with open(path, "rb") as f:
        while start < size:
            found, off, target = [], start, start + chunk_bytes
            while off < target and off + HEADER <= size:
                got = os.preadv(f.fileno(), [memoryview(block)[: size - off]], off)
                if got < HEADER:  # the file shrank meanwhile: its worker finds it torn
                    size = off + got
                    break
                hops, p, stop = [], 0, min(got - HEADER, target - off - 1)
                append = hops.append
                while p <= stop:  # the hot loop: one record per turn
                    append(p)
                    p += unpack(block, p)[0] + frame
                found.append(np.array(hops, np.int64) + (off - start))
                if not _length_ok(block, hops[-1]):  # the worker reports it, or a bad record before it
                    yield start, off + hops[-1] + HEADER, index, np.concatenate(found)
                    return
                off += p
            end = off if off + HEADER <= size else size  # a bad length or a torn tail: the worker says which
            starts = np.concatenate(found) if found else np.zeros(0, np.int64)
            yield start, end, index, starts
            start, index = end, index + len(starts)


def _length_ok(block: bytes, p: int) -> bool:
    """The length of the record at block[p:] matches its CRC."""
    return struct.unpack_from("<I", block, p + 8)[0] == masked_crc32c(block[p : p + 8])


def check_range(path: str, start: int, end: int, first_index: int, starts: np.ndarray | None = None):
    """The first framing or CRC error of the records in bytes [start, end) of path, or None."""
    arr = np.empty(end - start + 256, np.uint8)  # a tail for check_framing's fixed-width reads
    with open(path, "rb") as f:
        n = os.preadv(f.fileno(), [arr[: end - start]], start)  # short if the file shrank: a torn record
    arr[n:] = 0
    return check_framing(arr, n, path, start, first_index, starts)


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
    values: np.ndarray  # [n, STAGES, RECORD_FIELDS] float64, NaN where unset
    synthetic: int
    cell_hash: list[bytes]
    cell_text: list[tuple[bytes, bytes]]  # (adjacency, ops) as in the records
    cell_first: np.ndarray  # [c] chunk-local record of each cell's first appearance
    adjacency: np.ndarray  # [c,7,7] int8
    operations: np.ndarray  # [c,7] int8
    num_vertices: np.ndarray  # [c] int8
    error: RecordError | None


def decode_range(
    path: str, start: int, end: int, first_index: int, starts: np.ndarray | None = None, crcs_checked: bool = False
) -> Part:
    """Decode the records in bytes [start, end) of path, which starts at record first_index
    (crcs_checked: check_range found the range sound)."""
    with open(path, "rb") as f:
        buf = os.pread(f.fileno(), end - start, start)
    chunk = parse_chunk(buf, path, start, first_index, starts, crcs_checked)
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
        values=chunk.values[:n],
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
        cell = nb101_cell.make_cell(m, ["input"] + ["conv3x3-bn-relu"] * (k - 2) + ["output"])
    except nb101_cell.InvalidSpecError as e:
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
        known = (*nb101_cell.OPS[1:4],)
        bad = [x for x in names[1:-1] if x not in known] + [x for x in names[:1] if x != "input"]
        bad += [x for x in names[-1:] if x != "output"]
        if bad:
            _OPS[ops] = f"unknown op {bad[0]!r} (the first must be 'input', the last 'output', the rest in {known})"
        else:
            _OPS[ops] = np.array([nb101_cell.OP_TO_LABEL[x] for x in names], np.int8)
    hit = _OPS[ops]
    if isinstance(hit, str):
        raise ValueError(hit)
    if len(hit) != k:
        raise ValueError(f"{len(hit)} ops for a {k}x{k} adjacency matrix")
    return hit


def decode_parts(
    path: str, size: int, chunk_bytes: int, workers: int = 1, check_first: bool = False, on_checked=None
) -> Iterator[Part]:
    """The decoded parts of the file, in file order: in this process (workers=1) or in worker processes
    (lib/util/workers), with at most 2 tasks per worker in flight (bounded memory). Close it to stop
    early: no worker outlives it.

    check_first: check every range (check_range) before decoding any; the first damaged one
    raises its RecordError. on_checked(end) is called as each range checks out, in file order.
    The decoding then leaves the CRCs out, and a file changed meanwhile raises RecordError.
    A worker that fails or dies raises WorkerError, in one line that names the file.
    """
    tasks = ((path, *r) for r in plan_chunks(path, size, chunk_bytes))
    if check_first:  # the plan is kept (~8 bytes a record) so that it is made once
        before = _version(path)
        tasks = [(*t, True) for t in _checked(path, workers, tasks, on_checked or (lambda end: None))]
    for _, part in _in_order(path, workers, decode_task, tasks):
        yield part
    if check_first and _version(path) != before:  # what was decoded may not be what was checked
        raise RecordError(path, 0, 0, "the file changed while it was read")


def _version(path: str) -> tuple:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _checked(path: str, workers: int, tasks, on_checked) -> Iterator[tuple]:
    """The tasks, as each range checks out; RecordError at the first damaged one."""
    for task, error in _in_order(path, workers, check_task, tasks):
        if error is not None:
            raise error
        on_checked(task[2])
        yield task


def _in_order(path: str, workers: int, fn, tasks) -> Iterator[tuple]:
    """(task, fn(task)) in task order, here or in `workers` forked processes; the tasks are read as
    results come back."""
    handed: dict[int, tuple] = {}  # the tasks in flight, by index

    def handing_out():
        for i, task in enumerate(tasks):
            handed[i] = task
            yield task

    # Each task allocates the same large temporaries: kept, not faulted in anew (sys time 0.9 -> 0.2 us a record).
    setup = dict(init=keep_freed_memory, init_args=(1 << 30, 1 << 30)) if workers > 1 else {}
    what = "checking" if fn is check_task else "decoding"
    try:
        for i, result in in_workers(fn, handing_out(), workers=workers, what="decoding", start="fork", **setup):
            yield handed.pop(i), result
    except WorkerError as e:
        raise WorkerError(f"{path}: {e}; nothing written. --workers 1 decodes in one process") from None
    except Exception as e:  # a bug, MemoryError, ...: said in one line
        if workers <= 1 or isinstance(e, RecordError):
            raise
        raise WorkerError(f"{path}: {what} failed in a worker: {type(e).__name__}: {e}") from e


def check_task(task: tuple) -> RecordError | None:
    """check_range(*task), for the pool."""
    return check_range(*task)


def decode_task(task: tuple) -> Part:
    """decode_range(*task), for the pool."""
    return decode_range(*task)
