"""tools/nb101_records.py: TFRecord framing, the ModelMetrics protobuf, and the vectorised decoder
against the reference one (json + base64 + protobuf per record, as NB101's api.py reads)."""

import json
import math

import crc32c
import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor

from lib import nb101_records as R

HASH = "0123456789abcdef" * 2
ADJ = "0110000100010000"  # 4 vertices, row-major
OPS = "input,conv3x3-bn-relu,maxpool3x3,output"


def metrics(values=None, params=1234567, total_time=math.nan, checkpoint_path="") -> bytes:
    """Serialized ModelMetrics; values [3, 5] (current_epoch, *FIELDS) per entry, NaN = unset."""
    values = np.arange(15.0).reshape(3, 5) / 16 if values is None else np.asarray(values, float)
    return R.encode_metrics_batch(values[None], np.array([params]), np.array([total_time]), checkpoint_path)[0]


def message(values, params=-1, total_time=math.nan, checkpoint_path="") -> R.ModelMetrics:
    """The same through the protobuf API, the reference."""
    m = R.ModelMetrics()
    for e, row in enumerate(values):
        ed = m.evaluation_data.add()
        for name, v in zip(("current_epoch", *R.FIELDS), row, strict=True):
            if not math.isnan(v):
                setattr(ed, name, v)
        if e == 0 and checkpoint_path:
            ed.checkpoint_path = checkpoint_path
    if params >= 0:
        m.trainable_parameters = params
    if not math.isnan(total_time):
        m.total_time = total_time
    return m


def reference(path):
    """(offset, epochs, hash, adjacency, ops, params, values[2,4], synthetic) per record."""
    out = []
    for _, offset, data in R.read_tfrecord(path):
        rec = R.decode_record(data)
        params, values, synthetic = R.metric_values(rec.metrics)
        out.append((offset, rec.epochs, rec.hash, rec.adjacency, rec.ops, params, values, synthetic))
    return out


def assert_chunk_matches_reference(path):
    chunk = R.parse_chunk(path.read_bytes(), path)
    assert chunk.error is None
    ref = reference(path)
    assert len(chunk.epochs) == len(ref)
    for i, (offset, epochs, h, adj, ops, params, values, synthetic) in enumerate(ref):
        c = chunk.cell[i]
        got = (chunk.cell_hash[c].decode(), chunk.cell_adjacency[c].decode(), chunk.cell_ops[c].decode())
        assert got == (h, adj, ops)
        assert (chunk.offset[i], chunk.epochs[i], chunk.params[i], chunk.synthetic[i]) == (
            offset,
            epochs,
            params,
            synthetic,
        )
        np.testing.assert_array_equal(chunk.values[i], values)  # NaN where unset, on both sides
    return chunk


# ----------------------------------------------------------------------------- framing


def test_masked_crc32c_is_tensorflows():
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    crc = 0xE3069283  # TF crc32c.h: rotate right by 15 bits, add kMaskDelta
    assert R.masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    rows = np.random.default_rng(0).integers(0, 256, (500, 8), dtype=np.uint8)
    vectorised = R._mask(R._crc32c_rows(rows))
    assert vectorised.tolist() == [R.masked_crc32c(r.tobytes()) for r in rows]


def test_framing_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    payloads = [b"", b"x", rng.bytes(1000), rng.bytes(70_000), b'"quotes" and \\ backslashes']
    path = tmp_path / "f.tfrecord"
    assert R.write_tfrecord(path, payloads) == len(payloads)
    offsets = np.cumsum([0] + [16 + len(p) for p in payloads])
    got = list(R.read_tfrecord(path))
    assert [(i, o, d) for i, o, d in got] == list(zip(range(5), offsets[:-1].tolist(), payloads, strict=True))
    assert path.stat().st_size == offsets[-1]


def five_records(tmp_path):
    datas = [R.encode_record(HASH, e, ADJ, OPS, metrics()) for e in (4, 12, 36, 108, 108)]
    path = tmp_path / "five.tfrecord"
    R.write_tfrecord(path, datas)
    return path, path.read_bytes(), np.cumsum([0] + [16 + len(d) for d in datas]).tolist()


@pytest.mark.parametrize(
    "where, how, why",
    [
        (20, "flip", "data CRC mismatch"),
        (9, "flip", "length CRC mismatch"),  # a byte of the stored length CRC
        (2, "flip", "length CRC mismatch"),  # a byte of the length itself
        (40, "cut", "truncated record: length"),
        (5, "cut", "truncated record: the file ends 5 bytes into the 12-byte header"),
    ],
)
def test_framing_errors_name_record_and_offset(tmp_path, where, how, why):
    path, raw, offsets = five_records(tmp_path)
    at = offsets[2] + where
    bad = raw[:at] + bytes([raw[at] ^ 0x10]) + raw[at + 1 :] if how == "flip" else raw[:at]
    path.write_bytes(bad)
    with pytest.raises(R.RecordError) as e:
        list(R.read_tfrecord(path))
    assert (e.value.index, e.value.offset) == (2, offsets[2]) and why in e.value.msg
    chunk = R.parse_chunk(bad, path)  # the fast path finds the same error, and decodes what is before
    assert str(chunk.error) == str(e.value)
    assert chunk.epochs.tolist() == [4, 12]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(R.RecordError, match="record 0 at byte 0: cannot open"):
        list(R.read_tfrecord(tmp_path / "nope.tfrecord"))
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(R.RecordError, match="record 0 at byte 0: empty file"):
        list(R.read_tfrecord(tmp_path / "empty.tfrecord"))


# ----------------------------------------------------------------------------- protobuf


def test_proto_is_nasbench_model_metrics():
    mm, ev = R.ModelMetrics.DESCRIPTOR, R.EvaluationData.DESCRIPTOR
    assert mm.full_name == "nasbench.ModelMetrics" and ev.full_name == "nasbench.EvaluationData"
    fields = {f.name: (f.number, f.type) for f in [*mm.fields, *ev.fields]}
    assert fields == {
        "evaluation_data": (1, FieldDescriptor.TYPE_MESSAGE),
        "trainable_parameters": (2, FieldDescriptor.TYPE_INT32),
        "total_time": (3, FieldDescriptor.TYPE_DOUBLE),
        "current_epoch": (1, FieldDescriptor.TYPE_DOUBLE),
        "training_time": (2, FieldDescriptor.TYPE_DOUBLE),
        "train_accuracy": (3, FieldDescriptor.TYPE_DOUBLE),
        "validation_accuracy": (4, FieldDescriptor.TYPE_DOUBLE),
        "test_accuracy": (5, FieldDescriptor.TYPE_DOUBLE),
        "checkpoint_path": (6, FieldDescriptor.TYPE_STRING),
    }
    assert ev.fields_by_name["test_accuracy"].has_presence  # proto2 optional: HasField works


def test_absent_fields_read_as_nan_and_zero_as_zero():
    values = np.full((3, 5), np.nan)
    values[1, 2], values[2, 3], values[2, 4] = 0.0, 0.93, 0.0  # explicit zeros are values, not absent
    params, got, synthetic = R.metric_values(R.ModelMetrics.FromString(metrics(values, params=0)))
    assert params == 0 and not synthetic
    np.testing.assert_array_equal(got, [[np.nan, 0.0, np.nan, np.nan], [np.nan, np.nan, 0.93, 0.0]])
    m = R.ModelMetrics.FromString(metrics(values, params=-1))
    assert R.metric_values(m)[0] == -1 and m.trainable_parameters == 0  # unset reads 0 without HasField
    with pytest.raises(ValueError, match="evaluation_data has 2 entries"):
        R.metric_values(message(values[:2]))


def test_encode_metrics_batch_is_byte_identical_to_protobuf():
    rng = np.random.default_rng(0)
    n = 400
    values = rng.random((n, 3, 5)) * 100
    values[rng.random((n, 3, 5)) < 0.3] = np.nan
    params = rng.integers(0, 2**31, n)
    params[:12] = [-1, 0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**31 - 1]
    total_time = np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 1e4)
    for cp in ("", R.SYNTHETIC_MARK + "make_demo_data seed=0"):
        blobs = R.encode_metrics_batch(values, params, total_time, cp)
        for i in range(n):
            assert blobs[i] == message(values[i], params[i], total_time[i], cp).SerializeToString()
        assert R.metric_values(R.ModelMetrics.FromString(blobs[0]))[2] == bool(cp)


# ----------------------------------------------------------------------------- chunk decoder


def odd_records() -> list[bytes]:
    """Valid records in layouts the vectorised path leaves to decode_record, and some it takes."""
    v = np.arange(15.0).reshape(3, 5) / 16
    sparse = np.full((3, 5), np.nan)
    sparse[2, 3] = 0.9
    canonical = R.encode_record(HASH, 108, ADJ, OPS, metrics(v))
    row = json.loads(canonical)
    entries = [message([r]).evaluation_data[0].SerializeToString() for r in v]
    entries[2] += bytes([0x29]) + np.float64(0.5).tobytes()  # test_accuracy twice: the last wins
    merged = (  # fields out of order, params twice (the last wins)
        message([], params=5).SerializeToString()
        + b"".join(bytes([0x0A, len(e)]) + e for e in entries)
        + message([], params=7).SerializeToString()
    )
    unknown = metrics(v) + bytes([0x48, 0x01])  # field 9, varint: unknown, skipped
    long_path = message(v, 12, checkpoint_path="x" * 200).SerializeToString()  # 2-byte entry length
    return [
        canonical,
        R.encode_record(HASH, 4, ADJ, OPS, metrics(sparse, params=-1)),
        R.encode_record(HASH, 12, ADJ, OPS, metrics(v, checkpoint_path=R.SYNTHETIC_MARK + "x")),
        json.dumps(row, separators=(",", ":")).encode(),
        json.dumps(row, indent=1).encode(),
        canonical.replace(b"conv3x3-bn", b"conv3x3\\u002dbn"),  # a JSON escape: same string
        R.encode_record(HASH, 36, ADJ, OPS, merged),
        R.encode_record(HASH, 36, ADJ, OPS, unknown),
        R.encode_record(HASH, 36, ADJ, OPS, long_path),
    ]


def test_chunk_decoder_equals_reference_on_every_layout(tmp_path):
    path = tmp_path / "odd.tfrecord"
    R.write_tfrecord(path, odd_records())
    chunk = assert_chunk_matches_reference(path)
    assert chunk.num_fast == 4  # canonical JSON and 1-byte protobuf tags; the rest went through decode_record
    assert chunk.params[6] == 7 and chunk.values[6, 1, 3] == 0.5
    assert chunk.synthetic.tolist() == [False, False, True] + [False] * 6
    R.write_tfrecord(path, odd_records()[3:6])  # none canonical
    assert assert_chunk_matches_reference(path).num_fast == 0


@pytest.mark.parametrize("absent", [0.0, 0.2])
def test_chunk_decoder_equals_reference_on_many_records(tmp_path, absent):
    rng = np.random.default_rng(1)
    n = 3000
    values = rng.random((n, 3, 5))
    values[:, 0, 1:] = np.nan  # NB101-like: the start entry holds only current_epoch
    values[rng.random((n, 3, 5)) < absent] = np.nan
    params = np.where(rng.random(n) < absent, -1, rng.integers(0, 2**31, n))
    blobs = R.encode_metrics_batch(values, params, rng.random(n), "")
    hashes = [f"{k:032x}" for k in rng.integers(0, 50, n)]  # 50 cells, interleaved
    epochs = rng.integers(1, 999, n).tolist()
    datas = [R.encode_record(h, e, ADJ, OPS, b) for h, e, b in zip(hashes, epochs, blobs, strict=True)]
    path = tmp_path / "many.tfrecord"
    R.write_tfrecord(path, datas)
    chunk = assert_chunk_matches_reference(path)
    assert [h.decode() for h in chunk.cell_hash] == list(dict.fromkeys(hashes))  # first-appearance order
    if not absent:  # one message layout: all decoded by the vectorised path
        assert chunk.num_fast == n


@pytest.mark.parametrize(
    "data, why",
    [
        (b'["' + HASH.encode() + b'", 4', "bad JSON"),
        (json.dumps([HASH, 4, ADJ, OPS]).encode(), "expected a JSON list of 5 fields"),
        (json.dumps(["0123", 4, ADJ, OPS, ""]).encode(), "is not 32 lowercase hex digits"),
        (R.encode_record(HASH.upper(), 4, ADJ, OPS, metrics()), "is not 32 lowercase hex digits"),
        (json.dumps([HASH, 4.0, ADJ, OPS, ""]).encode(), "epochs 4.0 is not an integer"),
        (json.dumps([HASH, 4, ADJ, OPS, "Zm9v!"]).encode(), "bad base64 ModelMetrics"),
        (R.encode_record(HASH, 4, ADJ, OPS, b"\x0a\x05"), "bad base64 ModelMetrics"),  # truncated protobuf
        (R.encode_record(HASH, 4, ADJ, OPS, message(np.ones((2, 5))).SerializeToString()), "has 2 entries"),
        (R.encode_record(HASH, 4, "0111000100010000", OPS, metrics()), "names a different cell than in record 0"),
    ],
)
def test_content_errors_name_the_record(tmp_path, data, why):
    path = tmp_path / "bad.tfrecord"
    good = R.encode_record(HASH, 4, ADJ, OPS, metrics())
    R.write_tfrecord(path, [good, good, data, good])
    chunk = R.parse_chunk(path.read_bytes(), path)
    assert chunk.error is not None and why in chunk.error.msg
    assert (chunk.error.index, chunk.error.offset) == (2, 2 * (16 + len(good)))
    assert len(chunk.epochs) == 2
    if "different cell" not in why:  # decode_record words it the same way
        with pytest.raises(ValueError, match=why):
            R.metric_values(R.decode_record(data).metrics)
