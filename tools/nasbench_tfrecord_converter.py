"""Convert NAS-Bench-101 TFRecords into the HDF5 of neuralpredictor.pytorch, without TensorFlow.

    python tools/nasbench_tfrecord_converter.py   # data/nasbench_full.tfrecord (or _only108) -> data/nasbench.hdf5
    python tools/nasbench_tfrecord_converter.py --input data/demo.tfrecord --output data/demo.hdf5

Reads nasbench_full.tfrecord (5,083,488 records), nasbench_only108.tfrecord (1,270,872) or any
file in that format (tools/make_demo_data.py): any subset of cells, of the budgets 4/12/36/108,
and 1 to 3 repeats per budget. Streaming over byte ranges, decoded in parallel
(tools/nb101_records.parse_chunk), in bounded memory.

HDF5 (schema_version 1), one row per cell, cells in the order of their first record in the file:
    hash                  [N] S32    NB101 module hash (checked against the cell)
    num_vertices          [N] int8
    trainable_parameters  [N] int32  (the same in every record of a cell, checked)
    adjacency             [N,7,7] int8   the cell in the top-left n x n block, output at n-1
    operations            [N,7] int8     -1 input, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3,
                                         -2 output, 0 beyond num_vertices
    metrics               [N,4,3,2,4] float32: budget (4,12,36,108) x repeat x (halfway, final)
                          x (training_time, train_accuracy, validation_accuracy, test_accuracy);
                          NaN where the file has no value. Repeat r of a budget is the r-th record
                          of that (hash, epochs) in the file.
    attrs: schema_version, source (input file name), budgets (those present), num_records,
           num_cells, synthetic_labels (True if any record says its labels are made up: the
           evaluation_data checkpoint_path mark "synthetic-labels:..." of tools/make_demo_data.py).

Checks: framing and both CRCs, JSON, base64, protobuf, each cell (square 0/1 adjacency of a pruned
NB101 cell, known ops), one cell per hash, trainable_parameters the same in every record of a cell,
budgets in 4/12/36/108, at most 3 repeats, and each hash equal to NB101's hash of its cell
(hash_cells; for many cells, a lookup in the cached enumerated space first).
Bad input stops it with one line on stderr, `error: FILE: record R at byte OFFSET: what is wrong`,
naming the first bad record, exit status 1, and no output written (an existing output stays as it
was). Hash mismatches are found after the whole file is read and name the cell's first record.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import multiprocessing as mp
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from lib import nb101_space
from lib.nb101_hash import hash_cells
from lib.nb101_records import FOOTER, HEADER, RecordError, parse_chunk
from lib.nb101_space import BUDGETS

SCHEMA_VERSION = nb101_space.HDF5_SCHEMA_VERSION
DEFAULT_INPUTS = ("data/nasbench_full.tfrecord", "data/nasbench_only108.tfrecord")
MAX_REPEATS = 3
_BUDGET_INDEX = np.full(max(BUDGETS) + 1, -1, np.int64)
_BUDGET_INDEX[list(BUDGETS)] = np.arange(len(BUDGETS))


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
        first_index,
        end,
        chunk.offset[:n],
        chunk.epochs[:n],
        chunk.cell[:n],
        chunk.params[:n],
        chunk.values[:n].astype(np.float32),
        int(chunk.synthetic[:n].sum()),
        chunk.cell_hash[:c],
        list(zip(chunk.cell_adjacency[:c], chunk.cell_ops[:c], strict=True)),
        np.array(chunk.cell_first[:c], np.int64),
        adjacency,
        operations,
        num_vertices,
        error,
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


def _decode_task(task: tuple) -> Part:
    return decode_range(*task)


def _worker_init() -> None:
    """Keep freed memory in the worker: each task allocates the same large temporaries, and with
    glibc's defaults they are mapped and faulted in anew every time (measured: sys time 0.9 ->
    0.2 us per record)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except OSError:  # not glibc: defaults
        pass


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


# ----------------------------------------------------------------------------- merging


class Table:
    """Cells and their metrics, grown as parts arrive in file order."""

    def __init__(self, capacity: int = 1 << 14):
        self.index: dict[bytes, int] = {}
        self.n = 0
        self.hash: list[bytes] = []
        self.text: list[tuple[bytes, bytes]] = []
        self.first = np.zeros((capacity, 2), np.int64)  # (record index, byte offset) of the first record
        self.adjacency = np.zeros((capacity, 7, 7), np.int8)
        self.operations = np.zeros((capacity, 7), np.int8)
        self.num_vertices = np.zeros(capacity, np.int8)
        self.params = np.full(capacity, -1, np.int64)
        self.repeats = np.zeros((capacity, len(BUDGETS)), np.int64)
        self.metrics = np.full((capacity, len(BUDGETS), MAX_REPEATS, 2, 4), np.nan, np.float32)
        self.num_records = self.synthetic = 0
        self.budgets: set[int] = set()

    def _grow(self, need: int) -> None:
        cap = len(self.params)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name, fill in (("first", 0), ("adjacency", 0), ("operations", 0), ("num_vertices", 0),
                           ("params", -1), ("repeats", 0), ("metrics", np.nan)):  # fmt: skip
            old = getattr(self, name)
            arr = np.full((new, *old.shape[1:]), fill, old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)

    def add(self, path: str, part: Part) -> None:
        """Merge one part; RecordError at the first record that breaks a rule across records."""
        errors: list[tuple[int, str]] = []  # (chunk-local record, message); the first one is raised
        gid = np.zeros(len(part.cell_hash), np.int64)
        new: list[int] = []  # the part's cells seen for the first time
        for c, (h, text) in enumerate(zip(part.cell_hash, part.cell_text, strict=True)):
            g = self.index.get(h)
            if g is None:
                g = self.index[h] = self.n + len(new)
                self.hash.append(h), self.text.append(text), new.append(c)
            elif self.text[g] != text:
                msg = f"hash {h.decode()} names a different cell than in record {self.first[g, 0]}"
                errors.append((int(part.cell_first[c]), msg))
                break
            gid[c] = g
        rows, new = self.n + np.arange(len(new)), np.array(new, np.int64)
        self._grow(self.n + len(new))
        first = part.cell_first[new]
        self.first[rows] = np.stack([part.first_index + first, part.offset[first]], 1)
        self.adjacency[rows], self.operations[rows] = part.adjacency[new], part.operations[new]
        self.num_vertices[rows] = part.num_vertices[new]
        self.n += len(new)
        n_ok = min([i for i, _ in errors], default=len(part.epochs))
        g = gid[part.cell[:n_ok]]
        b = _BUDGET_INDEX[np.clip(part.epochs[:n_ok], 0, len(_BUDGET_INDEX) - 1)]
        bad = np.flatnonzero((b < 0) | (part.epochs[:n_ok] >= len(_BUDGET_INDEX)))
        if len(bad):
            i = int(bad[0])
            errors.append((i, f"epochs {part.epochs[i]} is not one of the NB101 budgets {BUDGETS}"))
            n_ok, g, b = i, g[:i], b[:i]
        # Repeat r = how many records of this (cell, budget) came before, in file order.
        key = g * len(BUDGETS) + b
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        group_start = np.flatnonzero(np.diff(sorted_key, prepend=-1))  # keys are >= 0
        rank = np.arange(len(key)) - np.repeat(group_start, np.diff(np.r_[group_start, len(key)]))
        repeat = np.empty_like(key)
        repeat[order] = rank
        repeat += self.repeats[g, b]
        bad = np.flatnonzero(repeat >= MAX_REPEATS)
        if len(bad):
            i = int(bad[0])
            h = self.hash[g[i]].decode()
            errors.append((i, f"more than {MAX_REPEATS} records of hash {h} at {BUDGETS[b[i]]} epochs"))
        # trainable_parameters: one value per cell; the first record that has it sets it.
        p = part.params[:n_ok]
        has = np.flatnonzero(p >= 0)
        unset = has[self.params[g[has]] < 0]
        _, first_of_cell = np.unique(g[unset], return_index=True)
        self.params[g[unset[first_of_cell]]] = p[unset[first_of_cell]]
        bad = has[p[has] != self.params[g[has]]]
        if len(bad):
            i = int(bad[0])
            msg = f"trainable_parameters {p[i]} differs from {self.params[g[i]]} in earlier records of this cell"
            errors.append((i, msg))
        if errors or part.error:
            i, msg = min(errors, default=(len(part.epochs), ""))
            if msg:
                raise RecordError(path, part.first_index + i, int(part.offset[i]), msg)
            raise part.error
        self.repeats.reshape(-1)[sorted_key[group_start]] += np.diff(np.r_[group_start, len(key)])
        self.metrics[g, b, repeat] = part.values
        self.num_records += n_ok
        self.synthetic += part.synthetic
        self.budgets.update(BUDGETS[x] for x in np.unique(b))


# ----------------------------------------------------------------------------- checks, output


def check_cells(path: str, t: Table) -> None:
    """Every cell has trainable_parameters, and its hash is NB101's hash of its matrix and ops."""
    n = t.n
    missing = np.flatnonzero(t.params[:n] < 0)
    if len(missing):
        g = int(missing[0])
        raise RecordError(path, *t.first[g], "trainable_parameters is unset in every record of this cell")
    hashes = np.array(t.hash, "S32")
    bad = np.flatnonzero(hashes != verify_hashes(t.adjacency[:n], t.operations[:n], t.num_vertices[:n], hashes))
    if len(bad):
        g = int(bad[0])
        true = hash_cells(t.adjacency[g : g + 1], t.operations[g : g + 1], t.num_vertices[g : g + 1])[0]
        raise RecordError(path, *t.first[g], f"hash {hashes[g].decode()} does not match its cell (NB101 hash {true})")


def verify_hashes(adjacency: np.ndarray, operations: np.ndarray, num_vertices: np.ndarray, hashes: np.ndarray):
    """NB101 hashes (S32) of the cells, to compare with the claimed `hashes`.

    hash_cells costs ~0.1 ms a cell here (~40 s for the whole space), so with many
    cells and the enumerated space cached on disk, a cell equal to the space's cell of its claimed
    hash has that hash (the space's hashes are hash_cells'); the rest are hashed.
    """
    out = hashes.copy()
    todo = np.arange(len(hashes))
    if len(hashes) > 10_000 and nb101_space.DEFAULT_SPACE_CACHE.exists():
        space = nb101_space.enumerate_space()
        space_hash = space["hash"].astype("S32")
        order = np.argsort(space_hash)
        at = order[np.clip(np.searchsorted(space_hash[order], hashes), 0, len(order) - 1)]
        same = (space_hash[at] == hashes) & (space["num_vertices"][at] == num_vertices)
        same &= (space["adjacency"][at] == adjacency).all((1, 2)) & (space["operations"][at] == operations).all(1)
        todo = np.flatnonzero(~same)
    if len(todo):
        out[todo] = hash_cells(adjacency[todo], operations[todo], num_vertices[todo]).astype("S32")
    return out


def write_hdf5(output: Path, source: str, t: Table) -> None:
    """Write to a temp file beside the output, then rename: the output is whole or untouched."""
    n = t.n
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f["hash"] = np.array(t.hash, "S32")
            f["num_vertices"] = t.num_vertices[:n]
            f["trainable_parameters"] = t.params[:n].astype(np.int32)
            f["adjacency"] = t.adjacency[:n]
            f["operations"] = t.operations[:n]
            f["metrics"] = t.metrics[:n]
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["source"] = source
            f.attrs["budgets"] = np.array(sorted(t.budgets), np.int64)
            f.attrs["num_records"] = t.num_records
            f.attrs["num_cells"] = n
            f.attrs["synthetic_labels"] = t.synthetic > 0
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise


def convert(
    input: str | Path,
    output: str | Path,
    workers: int | None = None,
    chunk_bytes: int | None = None,
    progress: bool = False,
) -> Table:
    """Read `input`, check it, write `output`; RecordError on bad input (nothing written then)."""
    path = str(input)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise RecordError(path, 0, 0, f"cannot open: {e.strerror}") from None
    if size == 0:
        raise RecordError(path, 0, 0, "empty file, no records")
    if workers is None:  # small files: a pool costs more than it saves
        workers = len(os.sched_getaffinity(0)) if size >= 16 << 20 else 1
    chunk_bytes = chunk_bytes or int(np.clip(size // (8 * workers), 1 << 20, 32 << 20))
    tasks = ((path, *r) for r in plan_chunks(path, size, chunk_bytes))
    table = Table()
    pool = mp.get_context("fork").Pool(workers, _worker_init) if workers > 1 else None
    try:
        parts = pool.imap(_decode_task, tasks) if pool else map(_decode_task, tasks)
        with tqdm(total=size, unit="B", unit_scale=True, disable=None if progress else True) as bar:
            for part in parts:
                table.add(path, part)
                bar.update(part.end - bar.n)
    finally:
        if pool:
            pool.terminate()
    check_cells(path, table)
    write_hdf5(Path(output), Path(path).name, table)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help=f"NB101 TFRecord (default: the first of {', '.join(DEFAULT_INPUTS)} found)")
    ap.add_argument("--output", default="data/nasbench.hdf5")
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (default: the usable cores)")
    ap.add_argument("--chunk-bytes", type=int, default=None, help="bytes per decoding task (default: 1-32 MiB)")
    args = ap.parse_args(argv)
    input = args.input or next((p for p in DEFAULT_INPUTS if Path(p).exists()), DEFAULT_INPUTS[0])
    try:
        t = convert(input, args.output, args.workers, args.chunk_bytes, progress=True)
    except RecordError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message
        return 1
    except OSError as e:  # the output cannot be written
        print(f"error: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 1
    kind = "SYNTHETIC labels" if t.synthetic else "labels as recorded"
    print(f"{args.output}: {t.n:,} cells from {t.num_records:,} records, budgets {sorted(t.budgets)}, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
