"""The NAS-Bench-101 record format, without TensorFlow.

A NB101 file (nasbench_full.tfrecord, nasbench_only108.tfrecord) is a TFRecord file: each record is
    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
and each record's data is the JSON list
    [module_hash, epochs, adjacency_string, ops_csv, base64(ModelMetrics protobuf)]
with the adjacency row-major as '0'/'1' characters (n*n long). There is one record per
(cell, epochs trained, training repeat).

    from lib.tfrecord.records import read_tfrecord, decode_record, metric_values
    for index, offset, data in read_tfrecord("data/nasbench_only108.tfrecord"):
        rec = decode_record(data)
        params, values, synthetic = metric_values(rec.metrics)  # values[STAGES, RECORD_FIELDS]

read_tfrecord + decode_record are the reference path, one record at a time, as NB101's api.py
reads the file. lib/tfrecord/records_fast.parse_chunk decodes a whole byte range with numpy and
hands any record that is not in the canonical layout to decode_record, so both paths accept and
reject the same input.

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

from lib.nb101.schema import RECORD_FIELDS, STAGES
from lib.util.errors import UserError

# evaluation_data[*].checkpoint_path prefix of records whose labels are made up (tools/make_demo_data.py).
SYNTHETIC_MARK = "synthetic-labels:"
HEADER, FOOTER = 12, 4  # framing bytes before and after each record's data
HEX32 = re.compile(r"[0-9a-f]{32}")  # a module hash as NB101 writes it


class RecordError(UserError):
    """Bad input, located: `path: record index at byte offset: msg`."""

    def __init__(self, path: str | Path, index: int, offset: int, msg: str):
        super().__init__(f"{path}: record {index} at byte {offset}: {msg}")
        self.path, self.index, self.offset, self.msg = str(path), index, offset, msg

    def __reduce__(self):  # pickled by worker processes; the default would call __init__(message) alone
        return type(self), (self.path, self.index, self.offset, self.msg)


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
                raise RecordError(path, index, offset, truncated_header_message(size - offset))
            (length,) = struct.unpack_from("<Q", header)
            stored, computed = struct.unpack_from("<I", header, 8)[0], masked_crc32c(header[:8])
            if stored != computed:
                raise RecordError(path, index, offset, crc_mismatch_message("length", stored, computed))
            if length > size - offset - HEADER - FOOTER:
                raise RecordError(path, index, offset, truncated_data_message(length, size - offset))
            data, (stored,) = f.read(length), struct.unpack("<I", f.read(FOOTER))
            if stored != (computed := masked_crc32c(data)):
                raise RecordError(path, index, offset, crc_mismatch_message("data", stored, computed))
            yield index, offset, data
            index, offset = index + 1, offset + HEADER + length + FOOTER


# The framing errors' wording, shared with lib/tfrecord/records_fast.py so that both paths word an error alike.


def truncated_header_message(left: int) -> str:
    """The file ends `left` bytes into a record's header."""
    return f"truncated record: the file ends {left} bytes into the {HEADER}-byte header"


def truncated_data_message(length: int, left: int) -> str:
    """A record of data `length` needs more than the `left` bytes from its start to the end of the file."""
    return f"truncated record: length {length} needs {length + HEADER + FOOTER} bytes, the file has {left} left"


def crc_mismatch_message(what: str, stored: int, computed: int) -> str:
    """The `what` ("length" or "data") CRC stored in a record is not the one computed."""
    return f"{what} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"


# ----------------------------------------------------------------------------- protobuf


def _build_messages():
    """ModelMetrics / EvaluationData of nasbench lib/model_metrics.proto (proto2), no protoc."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="nasbench/model_metrics.proto", package="nasbench", syntax="proto2")
    ev = fdp.message_type.add(name="EvaluationData")
    for number, name in enumerate(("current_epoch", *RECORD_FIELDS), 1):
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
    """(trainable_parameters or -1, values[STAGES, RECORD_FIELDS] float64, synthetic).

    Unset proto2 fields read as 0.0; HasField tells them apart, so unset is NaN, never 0.
    """
    evals = m.evaluation_data
    if len(evals) != 1 + len(STAGES):  # the untrained model, then the STAGES
        raise ValueError(f"evaluation_data has {len(evals)} entries; NB101 records hold 3 (start, halfway, final)")
    values = np.array([[getattr(e, f) if e.HasField(f) else math.nan for f in RECORD_FIELDS] for e in evals[1:]])
    params = m.trainable_parameters if m.HasField("trainable_parameters") else -1
    synthetic = any(e.checkpoint_path.startswith(SYNTHETIC_MARK) for e in evals)
    return params, values, synthetic


def encode_metrics_batch(
    values: np.ndarray, params: np.ndarray, total_time: np.ndarray, checkpoint_path: str = ""
) -> list[bytes]:
    """Serialized ModelMetrics of many records at once, byte-identical to upb's SerializeToString.

    values [n, 3 evals, 5] = (current_epoch, *RECORD_FIELDS) per evaluation_data entry, NaN = unset;
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
    if not (isinstance(module_hash, str) and HEX32.fullmatch(module_hash)):
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
