"""ModelMetrics of many NB101 records at once, with numpy: their base64, then the protobuf fields
at the fixed offsets of each message layout.

    from lib.tfrecord.metrics_fast import decode_metrics
    ok, params, values, synthetic = decode_metrics(arr, starts, ends)   # the base64 in arr[s:e] of each record
    values[ok]          # [n, STAGES, RECORD_FIELDS] float64, NaN where unset, as metric_values gives them

Strict base64 (as base64.b64decode(validate=True)), two characters per table lookup. Messages of one
size that share a field layout (NB101 writes every record alike) are read together. ok is False for
a message in any other layout or not base64 at all: lib/tfrecord/records.decode_record decodes it (or
says what is wrong), so this module never rejects input itself.
"""

from __future__ import annotations

import numpy as np

from lib.nb101.schema import RECORD_FIELDS, STAGES
from lib.tfrecord.records import SYNTHETIC_MARK


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


def decode_metrics(arr: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, ...]:
    """Decode the base64 ModelMetrics arr[s:e] of many records:
    (ok [n], params [n] (-1 unset), values [n, STAGES, RECORD_FIELDS] (NaN unset), synthetic [n]).

    Strings of one length are decoded together as a 2-D array; messages of one size that share a
    field layout (NB101 writes every record alike) are then read at fixed offsets. ok is False
    for the rest, which decode_record handles.
    """
    n = len(s)
    ok, params, values, synth = (
        np.zeros(n, bool),
        np.full(n, -1, np.int64),
        np.full((n, len(STAGES), len(RECORD_FIELDS)), np.nan),
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
    chars = np.lib.stride_tricks.sliding_window_view(arr, size)[s]
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
    (checks: (offset, byte) that pin the layout, doubles: {(stage, RECORD_FIELDS index): offset} of the
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
