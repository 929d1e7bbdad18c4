"""The NAS-Bench-101 record format, without TensorFlow.

A NB101 file (nasbench_full.tfrecord, nasbench_only108.tfrecord) is a TFRecord file: each record is
    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
and each record's data is the JSON list
    [module_hash, epochs, adjacency_string, ops_csv, base64(ModelMetrics protobuf)]
with the adjacency row-major as '0'/'1' characters (n*n long). There is one record per
(cell, epoch budget, training repeat).

    from lib.nb101_records import read_tfrecord, decode_record, metric_values
    for index, offset, data in read_tfrecord("data/nasbench_only108.tfrecord"):
        rec = decode_record(data)
        params, values, synthetic = metric_values(rec.metrics)  # values[halfway|final, FIELDS]

read_tfrecord + decode_record are the reference path, one record at a time, as NB101's api.py
reads the file. parse_chunk decodes a whole byte range with numpy and hands any record that is
not in the canonical layout to decode_record, so both paths accept and reject the same input.

Reference: google-research/nasbench lib/model_metrics.proto and api.py; TensorFlow's
record_writer.cc (framing) and crc32c.h (masking).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

FIELDS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
STAGES = ("halfway", "final")  # evaluation_data[1] and [2]; [0] is the untrained model
# evaluation_data[*].checkpoint_path prefix of records whose labels are made up (make_demo_data.py).
SYNTHETIC_MARK = "synthetic-labels:"
HEADER, FOOTER = 12, 4  # framing bytes before and after each record's data
_HEX32 = re.compile(r"[0-9a-f]{32}")


class RecordError(ValueError):
    """Bad input, located: `path: record index at byte offset: msg`."""

    def __init__(self, path: str | Path, index: int, offset: int, msg: str):
        super().__init__(f"{path}: record {index} at byte {offset}: {msg}")
        self.path, self.index, self.offset, self.msg = str(path), index, offset, msg


# ----------------------------------------------------------------------------- framing


def masked_crc32c(data: bytes) -> int:
    """TFRecord's CRC: crc32c rotated right by 15 bits plus a constant (so CRCs of CRCs differ)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecord(path: str | Path, records: Iterable[bytes]) -> int:
    """Write records to `path` as TFRecord; returns the count."""
    n = 0
    with open(path, "wb") as f:
        for data in records:
            f.write(frame(data))
            n += 1
    return n


def read_tfrecord(path: str | Path) -> Iterator[tuple[int, int, bytes]]:
    """(index, byte offset, data) of each record, lengths and both CRCs checked; RecordError if bad."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise RecordError(path, 0, 0, f"cannot open: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise RecordError(path, 0, 0, "empty file, no records")
        index = offset = 0
        while offset < size:
            header = f.read(HEADER)
            if len(header) < HEADER:
                raise RecordError(path, index, offset, _truncated_header(size - offset))
            (length,) = struct.unpack_from("<Q", header)
            stored, computed = struct.unpack_from("<I", header, 8)[0], masked_crc32c(header[:8])
            if stored != computed:
                raise RecordError(path, index, offset, _crc_mismatch("length", stored, computed))
            if length > size - offset - HEADER - FOOTER:
                raise RecordError(path, index, offset, _truncated_data(length, size - offset))
            data, (stored,) = f.read(length), struct.unpack("<I", f.read(FOOTER))
            if stored != (computed := masked_crc32c(data)):
                raise RecordError(path, index, offset, _crc_mismatch("data", stored, computed))
            yield index, offset, data
            index, offset = index + 1, offset + HEADER + length + FOOTER


def _truncated_header(left: int) -> str:
    return f"truncated record: the file ends {left} bytes into the {HEADER}-byte header"


def _truncated_data(length: int, left: int) -> str:
    return f"truncated record: length {length} needs {length + HEADER + FOOTER} bytes, the file has {left} left"


def _crc_mismatch(what: str, stored: int, computed: int) -> str:
    return f"{what} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"


# ----------------------------------------------------------------------------- protobuf


def _build_messages():
    """ModelMetrics / EvaluationData of nasbench lib/model_metrics.proto (proto2), no protoc."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="nasbench/model_metrics.proto", package="nasbench", syntax="proto2")
    ev = fdp.message_type.add(name="EvaluationData")
    for number, name in enumerate(("current_epoch", *FIELDS), 1):
        ev.field.add(name=name, number=number, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mm = fdp.message_type.add(name="ModelMetrics")
    mm.field.add(
        name="evaluation_data",
        number=1,
        type=F.TYPE_MESSAGE,
        type_name=".nasbench.EvaluationData",
        label=F.LABEL_REPEATED,
    )
    mm.field.add(name="trainable_parameters", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with an installed nasbench
    pool.Add(fdp)
    get = message_factory.GetMessageClass
    return get(pool.FindMessageTypeByName("nasbench.ModelMetrics")), get(
        pool.FindMessageTypeByName("nasbench.EvaluationData")
    )


ModelMetrics, EvaluationData = _build_messages()


def metric_values(m: ModelMetrics) -> tuple[int, np.ndarray, bool]:
    """(trainable_parameters or -1, values[2 STAGES, 4 FIELDS] float64, synthetic).

    Unset proto2 fields read as 0.0; HasField tells them apart, so unset is NaN, never 0.
    """
    evals = m.evaluation_data
    if len(evals) != 3:
        raise ValueError(f"evaluation_data has {len(evals)} entries; NB101 records hold 3 (start, halfway, final)")
    values = np.array([[getattr(e, f) if e.HasField(f) else math.nan for f in FIELDS] for e in evals[1:]])
    params = m.trainable_parameters if m.HasField("trainable_parameters") else -1
    synthetic = any(e.checkpoint_path.startswith(SYNTHETIC_MARK) for e in evals)
    return params, values, synthetic


def encode_metrics_batch(
    values: np.ndarray, params: np.ndarray, total_time: np.ndarray, checkpoint_path: str = ""
) -> list[bytes]:
    """Serialized ModelMetrics of many records at once, byte-identical to upb's SerializeToString.

    values [n, 3 evals, 5] = (current_epoch, *FIELDS) per evaluation_data entry, NaN = unset;
    params [n] (-1 = unset); total_time [n] (NaN = unset); checkpoint_path (if any) goes into
    evaluation_data[0]. The wire format is laid out with numpy: doubles are fixed64, so only the
    presence masks and the params varint change a record's layout.
    """
    values = np.asarray(values, np.float64)
    params, total_time = np.asarray(params, np.int64), np.asarray(total_time, np.float64)
    n, cp = len(values), checkpoint_path.encode()
    present = ~np.isnan(values)
    ev_len = 9 * present.sum(2)  # tag + fixed64 per set field
    ev_len[:, 0] += len(cp) + 2 if cp else 0
    assert ev_len.max(initial=0) < 128, "evaluation_data length must fit a 1-byte varint"
    pvar = np.stack([(params >> (7 * k)) & 0x7F for k in range(5)], 1).astype(np.uint8)
    pbytes = 1 + sum((params >= 1 << (7 * k)).astype(np.int64) for k in range(1, 5))
    pvar[:, :4] |= (np.arange(4) < pbytes[:, None] - 1).astype(np.uint8) << 7  # continuation bits
    has_p, has_t = params >= 0, ~np.isnan(total_time)
    size = (2 + ev_len).sum(1) + has_p * (1 + pbytes) + has_t * 9
    ends = np.cumsum(size)
    out, cur = np.zeros(ends[-1] if n else 0, np.uint8), ends - size

    def put(rows: np.ndarray, data: np.ndarray) -> None:  # data [k, w] at each row's cursor
        out[cur[rows, None] + np.arange(data.shape[1])] = data
        cur[rows] += data.shape[1]

    every = np.arange(n)
    for e in range(3):
        put(every, np.stack([np.full(n, 0x0A), ev_len[:, e]], 1).astype(np.uint8))
        for f in range(5):
            rows = np.flatnonzero(present[:, e, f])
            doubles = values[rows, e, f].astype("<f8").view(np.uint8).reshape(-1, 8)
            put(rows, np.concatenate([np.full((len(rows), 1), (f + 1) << 3 | 1, np.uint8), doubles], 1))
        if e == 0 and cp:
            put(every, np.tile(np.frombuffer(bytes([0x32, len(cp)]) + cp, np.uint8), (n, 1)))
    for w in range(1, 6):
        rows = np.flatnonzero(has_p & (pbytes == w))
        put(rows, np.concatenate([np.full((len(rows), 1), 0x10, np.uint8), pvar[rows, :w]], 1))
    rows = np.flatnonzero(has_t)
    doubles = total_time[rows, None].astype("<f8").view(np.uint8)
    put(rows, np.concatenate([np.full((len(rows), 1), 0x19, np.uint8), doubles], 1))
    raw = out.tobytes()
    return [raw[a:b] for a, b in zip((ends - size).tolist(), ends.tolist(), strict=True)]


# ----------------------------------------------------------------------------- one record


@dataclass
class Record:
    hash: str
    epochs: int
    adjacency: str  # row-major '0'/'1', n*n characters
    ops: str  # comma-separated op names
    metrics: ModelMetrics

    @property
    def matrix(self) -> np.ndarray:
        n = math.isqrt(len(self.adjacency))
        return np.frombuffer(self.adjacency.encode(), np.uint8).reshape(n, n).astype(np.int8) - ord("0")


def encode_record(module_hash: str, epochs: int, adjacency: str, ops: str, metrics: bytes) -> bytes:
    """One record's data, laid out as in NB101's files (json.dumps with its default separators)."""
    return json.dumps([module_hash, int(epochs), adjacency, ops, base64.b64encode(metrics).decode()]).encode()


def adjacency_string(matrix: np.ndarray) -> str:
    return "".join("1" if x else "0" for x in np.asarray(matrix).ravel())


def decode_record(data: bytes) -> Record:
    """Reference decoder of one record's data; ValueError saying what is wrong."""
    try:
        row = json.loads(data)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"bad JSON: {e}") from None
    if not isinstance(row, list) or len(row) != 5:
        got = f"a list of {len(row)}" if isinstance(row, list) else type(row).__name__
        raise ValueError(f"expected a JSON list of 5 fields [hash, epochs, adjacency, ops, metrics], got {got}")
    module_hash, epochs, adjacency, ops, raw = row
    if not (isinstance(module_hash, str) and _HEX32.fullmatch(module_hash)):
        raise ValueError(f"module hash {module_hash!r} is not 32 lowercase hex digits")
    if type(epochs) is not int:
        raise ValueError(f"epochs {epochs!r} is not an integer")
    for name, s in (("adjacency", adjacency), ("ops", ops), ("metrics", raw)):
        if not isinstance(s, str):
            raise ValueError(f"{name} field {s!r} is not a string")
    try:
        metrics = ModelMetrics.FromString(base64.b64decode(raw, validate=True))
    except (binascii.Error, DecodeError) as e:
        raise ValueError(f"bad base64 ModelMetrics: {e}") from None
    return Record(module_hash, epochs, adjacency, ops, metrics)


# ----------------------------------------------------------------------------- many records


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
    buf: bytes, path: str | Path = "", base: int = 0, first_index: int = 0, starts: np.ndarray | None = None
) -> Chunk:
    """Decode every record in `buf`, the file's bytes from `base` (a record start) on.

    starts: where the records start in buf, if already found by hopping on the lengths (they are
    checked all the same).

    Records laid out as json.dumps writes them are decoded with numpy, all at once; the rest go
    through decode_record, which also words the errors. Python touches each record only to check
    its data CRC and base64, and each run of records of one cell once.
    """
    arr = np.zeros(len(buf) + 256, np.uint8)  # zero tail: fixed-width gathers stay in bounds
    arr[: len(buf)] = np.frombuffer(buf, np.uint8)
    starts, lengths, error = _walk(arr, len(buf), path, base, first_index, starts)
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
    return Chunk(base + starts[:n], epochs[:n], cell, params[:n], values[:n], synth[:n],
                 cell_hash, cell_adj, cell_ops, cell_first, first_index, error, int(ok[:n].sum()))  # fmt: skip


def _walk(
    arr: np.ndarray, end: int, path, base: int, first_index: int, starts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, RecordError | None]:
    """(starts, data lengths) of the well-framed records in arr[:end] (arr has >= 16 bytes of tail),
    and the first framing error if any."""
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
    computed = _mask(_crc32c_rows(head[:, :8]))
    room = end - s - HEADER - FOOTER
    truncated = (room < 0) | (length > np.maximum(room, 0).astype(np.uint64))
    bad = np.flatnonzero((stored != computed) | truncated)
    n = int(bad[0]) if len(bad) else len(s)
    length = length.astype(np.int64)  # sound for the first n
    crc, ends = crc32c.crc32c, (s[:n] + HEADER + length[:n]).tolist()
    data_crc = _mask(np.array([crc(mv[a:b]) for a, b in zip((s[:n] + HEADER).tolist(), ends, strict=True)], np.uint32))
    data_stored = _rows(arr, s[:n] + HEADER + length[:n], FOOTER).copy().view("<u4").ravel()
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
