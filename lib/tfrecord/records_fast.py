"""The vectorised decoder of NAS-Bench-101 records: a whole byte range of a TFRecord file at once.

    from lib.tfrecord.records_fast import check_framing, parse_chunk
    chunk = parse_chunk(buf, path, base=offset, first_index=index)   # buf: whole records from `offset`
    chunk.epochs, chunk.values, chunk.cell_hash[chunk.cell], chunk.error
    check_framing(arr, len(buf), path, offset, index, starts)       # framing and CRCs only: RecordError | None

parse_chunk gives what lib/tfrecord/records' reference path (read_tfrecord + decode_record +
metric_values) gives for the same bytes, record for record, and the same first error. Records
laid out as NB101 writes them (json.dumps with its default separators, 1-byte protobuf tags and
lengths) are decoded with numpy: the framing CRCs of the lengths in a table-driven numpy CRC32C
(lib/tfrecord/crc32c_numpy), the JSON by the positions of its 8 quotes, and the base64 ModelMetrics by
lib/tfrecord/metrics_fast. Every other record goes through decode_record, which also words the
errors. check_framing checks only the framing and CRCs of a range, all its data CRCs in one
crc32c pass, and gives the same first framing error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.nb101.schema import RECORD_FIELDS, STAGES
from lib.tfrecord import crc32c_numpy
from lib.tfrecord.crc32c_numpy import byte_rows, crc32c_rows, data_crcs, mask
from lib.tfrecord.metrics_fast import decode_metrics
from lib.tfrecord.records import (
    FOOTER,
    HEADER,
    HEX32,
    RecordError,
    crc_mismatch_message,
    decode_record,
    metric_values,
    truncated_data_message,
    truncated_header_message,
)


@dataclass
class Chunk:
    """Decoded records [first_index, first_index + n) of a file; cells in first-appearance order.

    `error` is the first bad record of the byte range (framing or content); the arrays hold the
    records before it.
    """

    offset: np.ndarray  # [n] int64 byte offset of each record in the file
    epochs: np.ndarray  # [n] int64
    cell: np.ndarray  # [n] int64 index into the cell_* lists
    params: np.ndarray  # [n] int64 trainable_parameters, -1 where unset
    values: np.ndarray  # [n, STAGES, RECORD_FIELDS] float64, NaN where unset
    synthetic: np.ndarray  # [n] bool
    cell_hash: list[bytes]  # 32 hex digits
    cell_adjacency: list[bytes]  # as in the record: row-major '0'/'1'
    cell_ops: list[bytes]  # as in the record: comma-separated names
    cell_first: list[int]  # record (chunk-local) where each cell first appears
    first_index: int
    error: RecordError | None
    num_fast: int  # records decoded by the vectorised path (the rest by decode_record)


def parse_chunk(
    buf: bytes,
    path: str | Path = "",
    base: int = 0,
    first_index: int = 0,
    starts: np.ndarray | None = None,
    crcs_checked: bool = False,
) -> Chunk:
    """Decode every record in `buf`, the file's bytes from `base` (a record start) on.

    starts: where the records start in buf, if already found by hopping on the lengths (they are
    checked all the same). crcs_checked: check_framing found these bytes sound, so the CRCs are
    not computed again (the framing still is checked).

    Records laid out as json.dumps writes them are decoded with numpy, all at once; the rest go
    through decode_record, which also words the errors. Python touches each record only to check
    its data CRC and base64, and each run of records of one cell once.
    """
    arr = np.zeros(len(buf) + 256, np.uint8)  # zero tail: fixed-width gathers stay in bounds
    arr[: len(buf)] = np.frombuffer(buf, np.uint8)
    starts, lengths, error = _walk(arr, len(buf), path, base, first_index, starts, crcs_checked)
    ds = starts + HEADER
    de = ds + lengths
    arr[(starts[:, None] + np.arange(HEADER)).ravel()] = ord(" ")  # blank the framing
    arr[(de[:, None] + np.arange(FOOTER)).ravel()] = ord(" ")
    fast = _parse_fast(arr, ds, de)
    ok, epochs, q, params, values, synth = (fast[k] for k in ("ok", "epochs", "q", "params", "values", "synthetic"))

    n, slow = len(starts), {}
    for i in np.flatnonzero(~ok).tolist():
        try:
            rec = decode_record(buf[ds[i] : de[i]])
            params[i], values[i], synth[i] = metric_values(rec.metrics)
        except ValueError as e:
            n, error = i, RecordError(path, first_index + i, base + int(starts[i]), str(e))
            break
        epochs[i] = rec.epochs
        slow[i] = tuple(x.encode("utf-8", "backslashreplace") for x in (rec.hash, rec.adjacency, rec.ops))

    # Cells, keyed by hash; the same hash must always come with the same adjacency and ops. A
    # record whose hash and cell text equal its predecessor's joins the predecessor's cell.
    runs = np.flatnonzero(~_same_as_previous(arr, q, ok)[:n])
    cells: dict[bytes, int] = {}
    cell_hash, cell_adj, cell_ops, cell_first, run_cell = [], [], [], [], []
    for r, (i, (h0, a0, a1, o0, o1)) in enumerate(
        zip(runs.tolist(), q[runs][:, [0, 2, 3, 4, 5]].tolist(), strict=True)
    ):
        if i in slow:
            h, adj, ops = slow[i]
        else:
            h, adj, ops = buf[h0 + 1 : h0 + 33], buf[a0 + 1 : a1], buf[o0 + 1 : o1]
        c = cells.get(h)
        msg = None
        if c is None:
            if HEX32.fullmatch(h.decode("ascii", "backslashreplace")):
                cells[h] = c = len(cell_hash)
                cell_hash.append(h), cell_adj.append(adj), cell_ops.append(ops), cell_first.append(i)
            else:
                msg = f"module hash {h.decode('ascii', 'backslashreplace')!r} is not 32 lowercase hex digits"
        elif cell_adj[c] != adj or cell_ops[c] != ops:
            msg = f"hash {h.decode()} names a different cell than in record {first_index + cell_first[c]}"
        if msg:
            n, error = i, RecordError(path, first_index + i, base + int(starts[i]), msg)
            runs = runs[:r]
            break
        run_cell.append(c)
    run_start = np.zeros(n, bool)
    run_start[runs] = True
    cell = np.array(run_cell, np.int64)[np.cumsum(run_start) - 1] if n else np.zeros(0, np.int64)
    return Chunk(
        offset=base + starts[:n],
        epochs=epochs[:n],
        cell=cell,
        params=params[:n],
        values=values[:n],
        synthetic=synth[:n],
        cell_hash=cell_hash,
        cell_adjacency=cell_adj,
        cell_ops=cell_ops,
        cell_first=cell_first,
        first_index=first_index,
        error=error,
        num_fast=int(ok[:n].sum()),
    )


def check_framing(
    arr: np.ndarray, end: int, path: str | Path = "", base: int = 0, first_index: int = 0, starts=None
) -> RecordError | None:
    """The first framing error (a torn record, a length or data CRC mismatch) of the records in
    arr[:end], the file's bytes from `base` (a record start), or None; nothing is decoded.

    arr: uint8 with at least 16 bytes after `end` (left as it was). It is the error parse_chunk
    gives for the same bytes when no record before it is bad in its content. Every byte of a
    record is under one of its two CRCs, so any damage to the bytes is found here. With `starts`
    (from hopping on the lengths), a sound range costs one crc32c pass over it (all_crcs_match).
    """
    if starts is not None and crc32c_numpy.all_crcs_match(arr, end, np.asarray(starts, np.int64)):
        return None
    return _walk(arr, end, path, base, first_index, starts)[2]


def _walk(
    arr: np.ndarray, end: int, path, base: int, first_index: int, starts=None, crcs_checked: bool = False
) -> tuple[np.ndarray, np.ndarray, RecordError | None]:
    """(starts, data lengths) of the well-framed records in arr[:end] (arr has >= 16 bytes of tail),
    and the first framing error if any. crcs_checked: take the stored CRCs as right."""
    mv = memoryview(arr)
    if starts is None:
        starts, off, unpack = [], 0, struct.Struct("<Q").unpack_from
        while off + HEADER <= end:  # hop on unchecked lengths; they are checked below, vectorised
            starts.append(off)
            off += unpack(arr, off)[0] + HEADER + FOOTER
    s = np.array(starts, np.int64)
    head = byte_rows(arr, s, HEADER)
    length = head[:, :8].copy().view("<u8").ravel()
    hops = s + HEADER + FOOTER + np.minimum(length, end).astype(np.int64)
    off = int(hops[-1]) if len(s) else 0
    if not np.array_equal(hops[:-1], s[1:]) or off + HEADER <= end:
        raise ValueError("starts do not follow the record lengths")  # a caller's bug, not bad input
    stored = head[:, 8:].copy().view("<u4").ravel()
    computed = stored if crcs_checked else mask(crc32c_rows(head[:, :8]))
    room = end - s - HEADER - FOOTER
    truncated = (room < 0) | (length > np.maximum(room, 0).astype(np.uint64))
    bad = np.flatnonzero((stored != computed) | truncated)
    n = int(bad[0]) if len(bad) else len(s)
    length = length.astype(np.int64)  # sound for the first n
    data_stored = byte_rows(arr, s[:n] + HEADER + length[:n], FOOTER).copy().view("<u4").ravel()
    data_crc = data_stored if crcs_checked else data_crcs(mv, s[:n] + HEADER, length[:n])
    bad_data = np.flatnonzero(data_crc != data_stored)
    if len(bad_data):
        i = int(bad_data[0])
        msg = crc_mismatch_message("data", int(data_stored[i]), int(data_crc[i]))
    elif n < len(s):
        i = n
        if stored[i] != computed[i]:
            msg = crc_mismatch_message("length", int(stored[i]), int(computed[i]))
        else:
            msg = truncated_data_message(int(head[i, :8].copy().view("<u8")[0]), end - int(s[i]))
    elif off < end:
        return s, length, RecordError(path, first_index + len(s), base + off, truncated_header_message(end - off))
    else:
        return s, length, None
    return s[:i], length[:i], RecordError(path, first_index + i, base + int(s[i]), msg)


def _parse_fast(arr: np.ndarray, ds: np.ndarray, de: np.ndarray) -> dict[str, np.ndarray]:
    """Decode records laid out as json.dumps writes them: `["<hash>", <epochs>, "<adj>", "<ops>", "<b64>"]`.

    arr: the chunk with its framing blanked. ok[i] is False where record i is laid out any other
    way (or is bad); those go to decode_record. With no backslash there is no JSON escape, so the
    strings are the bytes between the quotes; bytes json.loads would reject (control characters,
    bad UTF-8) can then only sit in the hash, adjacency or ops, which are validated anyway.
    """
    n = len(ds)
    out = {
        "ok": np.zeros(n, bool),
        "epochs": np.zeros(n, np.int64),
        "q": np.zeros((n, 8), np.int64),  # positions of the 8 quotes
        "params": np.full(n, -1, np.int64),
        "values": np.full((n, len(STAGES), len(RECORD_FIELDS)), np.nan),
        "synthetic": np.zeros(n, bool),
    }
    if n == 0:
        return out
    # Canonical data holds 8 quotes and no backslash (the framing is blanked, so each of these
    # bytes in arr[:de[-1]] belongs to a record).
    data = arr[: de[-1]]
    special = np.flatnonzero((data == ord('"')) | (data == ord("\\")))
    quote_count = np.concatenate([[0], np.cumsum(arr[special] == ord('"'))])
    lo, hi = np.searchsorted(special, ds), np.searchsorted(special, de)
    canon = (hi - lo == 8) & (quote_count[hi] - quote_count[lo] == 8) & (de > ds)
    quotes = special if canon.all() else special[np.repeat(canon, hi - lo)]
    rows = np.flatnonzero(canon)
    q = quotes.reshape(-1, 8).astype(np.int64)
    s, e = ds[rows], de[rows]

    def at(p: np.ndarray, ch: str) -> np.ndarray:
        return arr[p] == ord(ch)

    ok = at(s, "[") & (q[:, 0] == s + 1) & (q[:, 1] == q[:, 0] + 33) & at(e - 1, "]") & (q[:, 7] == e - 2)
    for k in (1, 3, 5):  # `", "` between consecutive strings (and `", <epochs>, "` after the hash)
        ok &= at(q[:, k] + 1, ",") & at(q[:, k] + 2, " ")
    ok &= (q[:, 4] == q[:, 3] + 3) & (q[:, 6] == q[:, 5] + 3) & at(q[:, 2] - 2, ",") & at(q[:, 2] - 1, " ")
    # Epochs: 1 to 3 digits, no leading zero (JSON), between `", ` and `, "`.
    width = q[:, 2] - 2 - (q[:, 1] + 3)
    digits = byte_rows(arr, q[:, 1] + 3, 3).astype(np.int64) - ord("0")
    in_num = np.arange(3) < width[:, None]
    ok &= (width >= 1) & (width <= 3) & ((digits >= 0) & (digits <= 9) | ~in_num).all(1)
    ok &= (digits[:, 0] != 0) | (width == 1)
    epochs = (np.where(in_num, digits, 0) * 10 ** np.maximum(width[:, None] - 1 - np.arange(3), 0)).sum(1)
    m_ok, params, values, synth = decode_metrics(arr, q[:, 6] + 1, q[:, 7])
    ok &= m_ok
    rows, q = rows[ok], q[ok]
    out["ok"][rows] = True
    out["q"][rows], out["epochs"][rows] = q, epochs[ok]
    out["params"][rows], out["values"][rows], out["synthetic"][rows] = params[ok], values[ok], synth[ok]
    return out


def _same_as_previous(arr: np.ndarray, q: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """same[i]: records i-1 and i are both canonical with equal hash, adjacency and ops bytes."""
    same = np.zeros(len(q), bool)
    if len(q) < 2:
        return same
    hashes = byte_rows(arr, q[:, 0] + 1, 32)
    size = q[:, 5] - q[:, 2] - 1  # `<adj>", "<ops>`: equal bytes <=> equal adjacency and ops
    width = int(np.clip(size.max(), 1, 160))
    text = byte_rows(arr, q[:, 2] + 1, width)
    text[np.arange(width) >= size[:, None]] = 0
    same[1:] = ok[1:] & ok[:-1] & (size[1:] == size[:-1]) & (size[1:] <= width)
    same[1:] &= (hashes[1:] == hashes[:-1]).all(1) & (text[1:] == text[:-1]).all(1)
    return same
