"""The vectorised decoder of NAS-Bench-101 records: a whole byte range of a TFRecord file at once.

    from lib.nb101_records_fast import check_framing, parse_chunk
    chunk = parse_chunk(buf, path, base=offset, first_index=index)   # buf: whole records from `offset`
    chunk.epochs, chunk.values, chunk.cell_hash[chunk.cell], chunk.error
    check_framing(arr, len(buf), path, offset, index, starts)       # framing and CRCs only: RecordError | None

parse_chunk gives what lib/nb101_records' reference path (read_tfrecord + decode_record +
metric_values) gives for the same bytes, record for record, and the same first error. Records
laid out as NB101 writes them (json.dumps with its default separators, 1-byte protobuf tags and
lengths) are decoded with numpy: the framing CRCs of the lengths in a table-driven numpy CRC32C,
the JSON by the positions of its 8 quotes, the base64 two characters per table lookup, and the
ModelMetrics messages at the fixed offsets of their field layout. Every other record goes through
decode_record, which also words the errors. check_framing checks only the framing and CRCs of a
range, all its data CRCs in one crc32c pass, and gives the same first framing error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from lib.nb101_records import (
    _HEX32,
    FOOTER,
    HEADER,
    SYNTHETIC_MARK,
    RecordError,
    _crc_mismatch,
    _truncated_data,
    _truncated_header,
    decode_record,
    metric_values,
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
    values: np.ndarray  # [n, 2 STAGES, 4 FIELDS] float64, NaN where unset
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
            if _HEX32.fullmatch(h.decode("ascii", "backslashreplace")):
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
    (from hopping on the lengths), a sound range costs one crc32c pass over it (_all_crcs_match).
    """
    if starts is not None and _all_crcs_match(arr, end, np.asarray(starts, np.int64)):
        return None
    return _walk(arr, end, path, base, first_index, starts)[2]


def _all_crcs_match(arr: np.ndarray, end: int, s: np.ndarray) -> bool:
    """Whether the records starting at s fill arr[:end] exactly and every CRC matches, at ~0.1 us
    a record instead of a crc32c call per record (~0.3 us).

    The lengths' CRCs are computed (vectorised); the data CRCs are checked all at once, through
    CRC32C's linearity. With R the CRC without its initial value and final xor (so linear:
    R(a || b) = R(a) x^(8|b|) + R(b) mod P, and R(d || le32(u)) = 0 iff u = R(d)), each record's
    stored CRC word is replaced by u = unmask(stored) ^ crc32c(zeros(len)), which is R(its data)
    when the CRC is right, and likewise for each length's CRC word. R of the whole range is then 0
    if every CRC matches. Damage to one record leaves a nonzero term times a power of x, which
    P (with x^0 in it) never divides: it is always caught, as by its own CRC; damage to several
    records cancels with odds 2^-32. arr is restored before returning.
    """
    if not len(s):
        return False
    head = _rows(arr, s, HEADER)
    length = head[:, :8].copy().view("<u8").ravel()
    if (length > np.uint64(end)).any():
        return False
    length = length.astype(np.int64)
    footer = s + HEADER + length
    if not (np.array_equal(footer[:-1] + FOOTER, s[1:]) and footer[-1] + FOOTER == end):
        return False  # a torn record, or starts that are not this range's: _walk says which
    length_crc = head[:, 8:].copy().view("<u4").ravel()
    if not np.array_equal(_mask(_crc32c_rows(head[:, :8])), length_crc):
        return False
    data_crc = _rows(arr, footer, FOOTER).copy().view("<u4").ravel()
    sizes, which = np.unique(length, return_inverse=True)
    zeros_crc = np.array([_zeros_crc(n) for n in sizes.tolist()], np.uint32)[which]
    words = [
        (s + 8, _unmask(length_crc) ^ np.uint32(_zeros_crc(8)), length_crc),
        (footer, _unmask(data_crc) ^ zeros_crc, data_crc),
    ]
    for at, u, _ in words:
        arr[(at[:, None] + np.arange(4)).ravel()] = u.astype("<u4").view(np.uint8)
    sound = crc32c.crc32c(memoryview(arr)[:end], 0xFFFFFFFF) == 0xFFFFFFFF  # from register 0: R(range) ^ ~0
    for at, _, stored in words:
        arr[(at[:, None] + np.arange(4)).ravel()] = stored.astype("<u4").view(np.uint8)
    return sound


_ZEROS_CRC: dict[int, int] = {}


def _zeros_crc(n: int) -> int:
    """crc32c of n zero bytes (cached: a file's records have few distinct lengths)."""
    if n not in _ZEROS_CRC:
        _ZEROS_CRC[n] = crc32c.crc32c(bytes(n))
    return _ZEROS_CRC[n]


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
    head = _rows(arr, s, HEADER)
    length = head[:, :8].copy().view("<u8").ravel()
    hops = s + HEADER + FOOTER + np.minimum(length, end).astype(np.int64)
    off = int(hops[-1]) if len(s) else 0
    if not np.array_equal(hops[:-1], s[1:]) or off + HEADER <= end:
        raise ValueError("starts do not follow the record lengths")  # a caller's bug, not bad input
    stored = head[:, 8:].copy().view("<u4").ravel()
    computed = stored if crcs_checked else _mask(_crc32c_rows(head[:, :8]))
    room = end - s - HEADER - FOOTER
    truncated = (room < 0) | (length > np.maximum(room, 0).astype(np.uint64))
    bad = np.flatnonzero((stored != computed) | truncated)
    n = int(bad[0]) if len(bad) else len(s)
    length = length.astype(np.int64)  # sound for the first n
    data_stored = _rows(arr, s[:n] + HEADER + length[:n], FOOTER).copy().view("<u4").ravel()
    data_crc = data_stored if crcs_checked else _data_crcs(mv, s[:n] + HEADER, length[:n])
    bad_data = np.flatnonzero(data_crc != data_stored)
    if len(bad_data):
        i = int(bad_data[0])
        msg = _crc_mismatch("data", int(data_stored[i]), int(data_crc[i]))
    elif n < len(s):
        i = n
        if stored[i] != computed[i]:
            msg = _crc_mismatch("length", int(stored[i]), int(computed[i]))
        else:
            msg = _truncated_data(int(head[i, :8].copy().view("<u8")[0]), end - int(s[i]))
    elif off < end:
        return s, length, RecordError(path, first_index + len(s), base + off, _truncated_header(end - off))
    else:
        return s, length, None
    return s[:i], length[:i], RecordError(path, first_index + i, base + int(s[i]), msg)


def _data_crcs(mv: memoryview, data_starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masked crc32c of each record's data, one C call per record (~0.3 us): what locates a bad one."""
    crc, ends = crc32c.crc32c, (data_starts + lengths).tolist()
    return _mask(np.array([crc(mv[a:b]) for a, b in zip(data_starts.tolist(), ends, strict=True)], np.uint32))


def _rows(arr: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """[n, width] copy of arr[s : s + width] for each start (needs `width` bytes of tail)."""
    return np.lib.stride_tricks.sliding_window_view(arr, width)[starts]


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):  # reflected Castagnoli polynomial
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()


def _crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """crc32c of each row of a [n, w] uint8 array (w small: the 8 length bytes)."""
    crc = np.full(len(rows), 0xFFFFFFFF, np.uint32)
    for k in range(rows.shape[1]):
        crc = _CRC_TABLE[(crc ^ rows[:, k]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def _mask(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint32)
    return ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)  # uint32 wraps, as in the C code


def _unmask(masked: np.ndarray) -> np.ndarray:
    crc = masked.astype(np.uint32) - np.uint32(0xA282EAD8)
    return (crc << 15) | (crc >> 17)


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
        "values": np.full((n, 2, 4), np.nan),
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
    digits = _rows(arr, q[:, 1] + 3, 3).astype(np.int64) - ord("0")
    in_num = np.arange(3) < width[:, None]
    ok &= (width >= 1) & (width <= 3) & ((digits >= 0) & (digits <= 9) | ~in_num).all(1)
    ok &= (digits[:, 0] != 0) | (width == 1)
    epochs = (np.where(in_num, digits, 0) * 10 ** np.maximum(width[:, None] - 1 - np.arange(3), 0)).sum(1)
    m_ok, params, values, synth = _decode_metrics(arr, q[:, 6] + 1, q[:, 7])
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
    hashes = _rows(arr, q[:, 0] + 1, 32)
    size = q[:, 5] - q[:, 2] - 1  # `<adj>", "<ops>`: equal bytes <=> equal adjacency and ops
    width = int(np.clip(size.max(), 1, 160))
    text = _rows(arr, q[:, 2] + 1, width)
    text[np.arange(width) >= size[:, None]] = 0
    same[1:] = ok[1:] & ok[:-1] & (size[1:] == size[:-1]) & (size[1:] <= width)
    same[1:] &= (hashes[1:] == hashes[:-1]).all(1) & (text[1:] == text[:-1]).all(1)
    return same


def _b64_tables() -> tuple[np.ndarray, np.ndarray]:
    """Tables from two base64 characters (a little-endian uint16) to their 12 bits, for the first
    and the second pair of a 4-character group: `first[a] << 12 | second[b]` is the 24-bit group,
    with flags above bit 24: 1 padding ('=' reads as 0), 2 a character outside the alphabet."""
    one = np.full(256, 2 << 6, np.uint32)
    one[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)] = np.arange(64)
    one[ord("=")] = 1 << 6
    a, b = one[np.arange(65536) & 0xFF], one[np.arange(65536) >> 8]
    bits, flags = (a & 63) << 6 | (b & 63), (a | b) >> 6
    return (bits | flags << 12).astype(np.uint32), (bits | flags << 26).astype(np.uint32)


_B64_FIRST, _B64_SECOND = _b64_tables()
_MARK = np.frombuffer(SYNTHETIC_MARK.encode(), np.uint8)


def _decode_metrics(arr: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, ...]:
    """Decode the base64 ModelMetrics arr[s:e] of many records: (ok, params, values[n,2,4], synthetic).

    Strings of one length are decoded together as a 2-D array; messages of one size that share a
    field layout (NB101 writes every record alike) are then read at fixed offsets. ok is False
    for the rest, which decode_record handles.
    """
    n = len(s)
    ok, params, values, synth = (
        np.zeros(n, bool),
        np.full(n, -1, np.int64),
        np.full((n, 2, 4), np.nan),
        np.zeros(n, bool),
    )
    out = (ok, params, values, synth)
    length = e - s
    for size in np.unique(length[length % 4 == 0]).tolist():
        rows = np.flatnonzero(length == size)
        b64_ok, data, pad = _b64_rows(arr, s[rows], size)
        sizes = size // 4 * 3 - pad
        for m in np.unique(sizes[b64_ok]).tolist():
            sel = b64_ok & (sizes == m)
            _read_layouts(data if sel.all() else data[sel], m, rows[sel], out)
    return out


def _at(p: np.ndarray | int) -> np.ndarray:
    """Where byte p of a decoded message sits in _b64_rows' output: 3 bytes per little-endian uint32."""
    p = np.asarray(p)
    return 4 * (p // 3) + 2 - p % 3


def _b64_rows(arr: np.ndarray, s: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strict base64 decode of arr[s : s + size] for each s: (ok, bytes [k, size], padding).

    Each 4 characters become a little-endian uint32 holding their 3 bytes (the 4th is flags),
    left in place: _at maps message offsets into it. Table lookups are what costs here, so one
    looks up two characters at a time.
    """
    k = len(s)
    if size == 0:
        return np.ones(k, bool), np.zeros((k, 0), np.uint8), np.zeros(k, np.int64)
    chars = _rows(arr, s, size)
    pairs = chars.view("<u2")
    group = _B64_FIRST[pairs[:, 0::2]] << 12 | _B64_SECOND[pairs[:, 1::2]]
    flags = group >> 24  # bits 0,2: padding; bits 1,3: not base64
    pad1, pad2 = chars[:, -1] == ord("="), chars[:, -2] == ord("=")
    ok = ~flags[:, :-1].any(1) & (flags[:, -1] & 0b1010 == 0) & (pad1 | ~pad2)  # '=' only as the last 1 or 2
    return ok, group.view(np.uint8), pad1.astype(np.int64) + pad2


def _read_layouts(
    data: np.ndarray, size: int, rows: np.ndarray, out: tuple[np.ndarray, ...], max_layouts: int = 16
) -> None:
    """Read messages of `size` bytes (data[i], as _b64_rows lays them out) into out at rows[i],
    one field layout at a time."""
    ok, params, values, synth = out
    left = np.arange(len(rows))
    for _ in range(max_layouts):
        if not len(left):
            return
        layout = _layout(data[left[0], _at(np.arange(size))].tobytes())
        if layout is None:  # an odd message: decode_record's
            left = left[1:]
            continue
        checks, doubles, varint, strings = layout
        x = data if len(left) == len(data) else data[left]
        pos, byte = np.array(checks).T
        match = (x[:, _at(pos)] == byte).all(1)
        if varint:  # trainable_parameters: the same varint size, a value that fits int32
            b = x[:, _at(varint[0] + np.arange(varint[1]))].astype(np.int64)
            match &= (b[:, :-1] >= 128).all(1) & (b[:, -1] < 128)
            value = ((b & 0x7F) << (7 * np.arange(varint[1]))).sum(1)
            match &= value < 2**31
        r, x = rows[left[match]], x[match]
        ok[r] = True
        if varint:
            params[r] = value[match]
        if doubles:
            at = np.array(list(doubles.values()))
            stage, field = np.array(list(doubles)).T
            doubles = np.ascontiguousarray(x[:, _at(at[:, None] + np.arange(8))])
            values[r[:, None], stage, field] = doubles.view("<f8")[..., 0]
        for at, length in strings:
            if length >= len(_MARK):
                synth[r] |= (x[:, _at(at + np.arange(len(_MARK)))] == _MARK).all(1)
        left = left[~match]


def _layout(m: bytes) -> tuple[list, list, tuple | None, list] | None:
    """Field layout of one ModelMetrics message, or None if it is not the plain kind.

    Plain: 1-byte tags and lengths, known fields only, 3 evaluation_data entries. Returns
    (checks: (offset, byte) that pin the layout, doubles: {(stage, FIELDS index): offset} of the
    halfway/final values (the last copy of a field wins, as in protobuf), varint: (offset, width)
    of trainable_parameters, strings: (offset, size) of checkpoint paths).
    """
    checks, doubles, varint, strings = [], {}, None, []
    p, entry = 0, 0
    while p < len(m):
        tag = m[p]
        if tag == 0x0A and p + 1 < len(m) and m[p + 1] < 128 and entry < 3:  # evaluation_data
            end = p + 2 + m[p + 1]
            if end > len(m):
                return None
            checks += [(p, tag), (p + 1, m[p + 1])]
            p += 2
            while p < end:
                t = m[p]
                if t & 7 == 1 and 1 <= t >> 3 <= 5:  # current_epoch ... test_accuracy: fixed64
                    checks.append((p, t))
                    if entry >= 1 and t >> 3 >= 2:
                        doubles[entry - 1, (t >> 3) - 2] = p + 1
                    p += 9
                elif t == 0x32 and p + 1 < len(m) and m[p + 1] < 128:  # checkpoint_path
                    checks += [(p, t), (p + 1, m[p + 1])]
                    strings.append((p + 2, m[p + 1]))
                    p += 2 + m[p + 1]
                else:
                    return None
            if p != end:
                return None
            entry += 1
        elif tag == 0x10:  # trainable_parameters: varint
            width = next((k + 1 for k in range(5) if p + 1 + k < len(m) and m[p + 1 + k] < 128), None)
            if width is None:
                return None
            checks.append((p, tag))
            varint = (p + 1, width)
            p += 1 + width
        elif tag == 0x19:  # total_time: fixed64
            checks.append((p, tag))
            p += 9
        else:
            return None
    return (checks, doubles, varint, strings) if p == len(m) and entry == 3 else None
