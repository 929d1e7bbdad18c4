"""NB101 TFRecord -> HDF5, the converter's core: parts merged into a table of cells in file order,
the checks that span records, NB101's hash of each cell, and the HDF5 written atomically.

    from lib.tfrecord.convert import convert
    table = convert("data/demo.tfrecord", "data/demo.hdf5")   # RecordError on bad input, nothing written
    table.n, table.num_records, table.epochs, table.synthetic    # epochs in the order they first appear

The byte ranges are decoded in worker processes (lib/tfrecord/chunks) and merged here in file order.
With a pool (or a file of POOL_BYTES or more) the framing and CRCs of every range are checked first,
so damage anywhere fails in seconds. A worker that fails or dies raises
lib.util.workers.WorkerError; nothing is written then either.
A file that holds every cell of the space has all 423,624 hashes verified (computed, ~40 s, when the
enumeration cache lacks them); they are then kept in that cache (lib/nb101/space.save_space_cache),
so that the next conversion and everything else that needs the space's hashes finds them there.
The HDF5 schema: lib/nb101/schema; tools/nasbench_tfrecord_converter.py is the command line.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from lib.nb101 import space as nb101_space
from lib.nb101.hashing import hash_cells
from lib.nb101.join import space_rows
from lib.nb101.schema import DATASETS, EPOCHS, HDF5_SCHEMA_VERSION, RECORD_FIELDS, RECORD_ORDER, REPEATS, STAGES
from lib.tfrecord.chunks import Part, decode_parts
from lib.tfrecord.records import RecordError
from lib.util.outputs import atomic_path

POOL_BYTES = 16 << 20  # files from this size are decoded by a pool of workers, their framing checked first
_EPOCH_INDEX = np.full(max(EPOCHS) + 1, -1, np.int64)
_EPOCH_INDEX[list(EPOCHS)] = np.arange(len(EPOCHS))
# Table's per-cell arrays, grown together, and the value of a row not yet filled.
_COLUMN_FILL = dict(
    first=0,
    adjacency=0,
    operations=0,
    num_vertices=0,
    params=-1,
    params_first=False,
    repeats=0,
    first_at=-1,
    metrics=np.nan,
)


def convert(
    input: str | Path,
    output: str | Path,
    workers: int | None = None,
    chunk_bytes: int | None = None,
    progress: bool = False,
    check_first: bool | None = None,
) -> Table:
    """Read `input`, check it, write `output`; RecordError on bad input, WorkerError if a worker
    fails or dies (nothing written then). check_first: check the framing and CRCs of the whole
    file before decoding (default: with a pool or from POOL_BYTES; a damaged file then fails in
    seconds at any size)."""
    path = str(input)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise RecordError(path, 0, 0, f"cannot open: {e.strerror}") from None
    if size == 0:
        raise RecordError(path, 0, 0, "empty file, no records")
    if workers is None:  # small files: a pool costs more than it saves
        workers = len(os.sched_getaffinity(0)) if size >= POOL_BYTES else 1
    chunk_bytes = chunk_bytes or int(np.clip(size // (8 * workers), 1 << 20, 32 << 20))
    if check_first is None:  # wherever decoding everything takes long; a small file is decoded at once
        check_first = workers > 1 or size >= POOL_BYTES
    table = Table()
    with _bar(size, "check", progress and check_first) as checked, _bar(size, "decode", progress) as decoded:

        def on_checked(end: int) -> None:
            checked.update(end - checked.n)
            if end == size:  # done: the bar keeps the check's own rate
                checked.close()

        parts = decode_parts(path, size, chunk_bytes, workers, check_first, on_checked)
        with closing(parts):  # closing stops the pool on any error
            for part in parts:
                table.add(path, part)
                decoded.update(part.end - decoded.n)
    check_cells(path, table)
    keep_space_hashes(table)
    write_hdf5(Path(output), Path(path).name, table)
    return table


def _bar(size: int, desc: str, show: bool) -> tqdm:
    return tqdm(total=size, unit="B", unit_scale=True, desc=desc, disable=None if show else True)


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
        self.params_first = np.zeros(capacity, bool)  # the cell's first record sets trainable_parameters
        self.repeats = np.zeros((capacity, len(EPOCHS)), np.int64)
        self.first_at = np.full((capacity, len(EPOCHS)), -1, np.int64)  # record index of each epoch count's first
        self.metrics = np.full((capacity, len(EPOCHS), REPEATS, len(STAGES), len(RECORD_FIELDS)), np.nan)
        self.num_records = self.synthetic = 0
        self.epochs: list[int] = []  # in the order they first appear

    def _grow(self, need: int) -> None:
        cap = len(self.params)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name, fill in _COLUMN_FILL.items():
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
        self.params_first[rows] = part.params[first] >= 0
        self.n += len(new)
        n_ok = min([i for i, _ in errors], default=len(part.epochs))
        g = gid[part.cell[:n_ok]]
        b = _EPOCH_INDEX[np.clip(part.epochs[:n_ok], 0, len(_EPOCH_INDEX) - 1)]
        bad = np.flatnonzero((b < 0) | (part.epochs[:n_ok] >= len(_EPOCH_INDEX)))
        if len(bad):
            i = int(bad[0])
            errors.append((i, f"epochs {part.epochs[i]} is not one of NB101's {EPOCHS}"))
            n_ok, g, b = i, g[:i], b[:i]
        # Repeat r = how many records of this (cell, epochs) came before, in file order.
        key = g * len(EPOCHS) + b
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        group_start = np.flatnonzero(np.diff(sorted_key, prepend=-1))  # keys are >= 0
        rank = np.arange(len(key)) - np.repeat(group_start, np.diff(np.r_[group_start, len(key)]))
        repeat = np.empty_like(key)
        repeat[order] = rank
        repeat += self.repeats[g, b]
        bad = np.flatnonzero(repeat >= REPEATS)
        if len(bad):
            i = int(bad[0])
            h = self.hash[g[i]].decode()
            errors.append((i, f"more than {REPEATS} records of hash {h} at {EPOCHS[b[i]]} epochs"))
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
        firsts = np.flatnonzero(repeat == 0)  # the first record of its (cell, epochs) in the file
        self.first_at[g[firsts], b[firsts]] = part.first_index + firsts
        self.metrics[g, b, repeat] = part.values
        self.num_records += n_ok
        self.synthetic += part.synthetic
        _, at = np.unique(b, return_index=True)
        self.epochs += [EPOCHS[x] for x in b[np.sort(at)] if EPOCHS[x] not in self.epochs]


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
    cache = nb101_space.DEFAULT_SPACE_CACHE
    if len(hashes) > 10_000 and cache.exists():
        space = nb101_space.enumerate_space(cache)
        space_hash = space["hash"].astype("S32")
        order = np.argsort(space_hash)
        at = order[np.clip(np.searchsorted(space_hash[order], hashes), 0, len(order) - 1)]
        same = (space_hash[at] == hashes) & (space["num_vertices"][at] == num_vertices)
        same &= (space["adjacency"][at] == adjacency).all((1, 2)) & (space["operations"][at] == operations).all(1)
        todo = np.flatnonzero(~same)
    if len(todo):
        out[todo] = hash_cells(adjacency[todo], operations[todo], num_vertices[todo]).astype("S32")
    return out


def keep_space_hashes(t: Table) -> bool:
    """When `t` holds every cell of the space and the enumeration cache has no hashes yet, write the
    cache with t's hashes (check_cells verified them), put in enumeration order; True if written.

    The cache is a cache: one that cannot be written (a read-only folder) is left for next time.
    """
    cache = nb101_space.DEFAULT_SPACE_CACHE
    if t.n != nb101_space.NUM_CELLS or cache.exists():
        return False
    space = nb101_space.enumerate_space(cache, hashes=False)
    rows = space_rows(space, t.adjacency[: t.n], t.operations[: t.n], t.num_vertices[: t.n])
    if (rows < 0).any() or len(np.unique(rows)) != t.n:  # cannot be: distinct verified hashes are distinct cells
        return False
    hashes = np.empty(t.n, "U32")
    hashes[rows] = np.array(t.hash, "S32").astype("U32")
    try:
        nb101_space.save_space_cache(space, hashes, cache)
    except OSError:
        return False
    return True


def write_hdf5(output: Path, source: str, t: Table) -> None:
    """Write to a temp file beside the output, then rename: the output is whole or untouched."""
    n = t.n
    first_at = np.where(t.first_at[:n] < 0, np.iinfo(np.int64).max, t.first_at[:n])
    order = np.argsort(first_at, axis=1, kind="stable")
    columns = {
        "hash": np.array(t.hash, "S32"),
        "num_vertices": t.num_vertices[:n],
        "trainable_parameters": t.params[:n].astype(np.int32),
        "adjacency": t.adjacency[:n],
        "operations": t.operations[:n],
        "metrics": t.metrics[:n],
        "repeats": t.repeats[:n].astype(np.int8),
        "epoch_order": np.where(np.take_along_axis(t.repeats[:n], order, 1) > 0, order, -1).astype(np.int8),
        "params_in_first_record": t.params_first[:n],
    }
    with atomic_path(output) as tmp:
        with h5py.File(tmp, "w") as f:
            for name in DATASETS + RECORD_ORDER:
                f[name] = columns[name]
            f.attrs["schema_version"] = HDF5_SCHEMA_VERSION
            f.attrs["source"] = source
            f.attrs["epochs"] = np.array(t.epochs, np.int64)
            f.attrs["num_records"] = t.num_records
            f.attrs["num_cells"] = n
            f.attrs["synthetic_labels"] = t.synthetic > 0
