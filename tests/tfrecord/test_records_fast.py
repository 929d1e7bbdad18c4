"""lib/tfrecord/records_fast.py against the reference decoder of lib/tfrecord/records.py: the same values,
record by record, on every layout, on many random records and on the real file, and the same
first error, at the same record and offset. (Its parts: tests/test_crc32c_numpy.py and
tests/test_nb101_metrics_fast.py.)"""

import json

import numpy as np
import pytest
from conftest import ADJ, HASH, OPS, REAL_TFRECORD, metrics_bytes, metrics_message, require

from lib.tfrecord import records as R
from lib.tfrecord import records_fast as F


def reference(path):
    """(offset, epochs, hash, adjacency, ops, params, values[2,4], synthetic) per record."""
    out = []
    for _, offset, data in R.read_tfrecord(path):
        rec = R.decode_record(data)
        params, values, synthetic = R.metric_values(rec.metrics)
        out.append((offset, rec.epochs, rec.hash, rec.adjacency, rec.ops, params, values, synthetic))
    return out


def assert_chunk_matches_reference(path):
    chunk = F.parse_chunk(path.read_bytes(), path)
    assert chunk.error is None
    ref = reference(path)
    assert len(chunk.epochs) == len(ref)
    for i, (offset, epochs, h, adj, ops, params, values, synthetic) in enumerate(ref):
        c = chunk.cell[i]
        got = (chunk.cell_hash[c].decode(), chunk.cell_adjacency[c].decode(), chunk.cell_ops[c].decode())
        assert got == (h, adj, ops)
        want = (offset, epochs, params, synthetic)
        assert (chunk.offset[i], chunk.epochs[i], chunk.params[i], chunk.synthetic[i]) == want
        np.testing.assert_array_equal(chunk.values[i], values)  # NaN where unset, on both sides
    return chunk


# ----------------------------------------------------------------------------- framing


def five_records(tmp_path):
    datas = [R.encode_record(HASH, e, ADJ, OPS, metrics_bytes()) for e in (4, 12, 36, 108, 108)]
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
    chunk = F.parse_chunk(bad, path)  # the fast path finds the same error, and decodes what is before
    assert str(chunk.error) == str(e.value)
    assert chunk.epochs.tolist() == [4, 12]


# ----------------------------------------------------------------------------- chunk decoder


def odd_records() -> list[bytes]:
    """Valid records in layouts the vectorised path leaves to decode_record, and some it takes."""
    v = np.arange(15.0).reshape(3, 5) / 16
    sparse = np.full((3, 5), np.nan)
    sparse[2, 3] = 0.9
    canonical = R.encode_record(HASH, 108, ADJ, OPS, metrics_bytes(v))
    row = json.loads(canonical)
    entries = [metrics_message([r]).evaluation_data[0].SerializeToString() for r in v]
    entries[2] += bytes([0x29]) + np.float64(0.5).tobytes()  # test_accuracy twice: the last wins
    merged = (  # fields out of order, params twice (the last wins)
        metrics_message([], params=5).SerializeToString()
        + b"".join(bytes([0x0A, len(e)]) + e for e in entries)
        + metrics_message([], params=7).SerializeToString()
    )
    unknown = metrics_bytes(v) + bytes([0x48, 0x01])  # field 9, varint: unknown, skipped
    long_path = metrics_message(v, 12, checkpoint_path="x" * 200).SerializeToString()  # 2-byte entry length
    return [
        canonical,
        R.encode_record(HASH, 4, ADJ, OPS, metrics_bytes(sparse, params=-1)),
        R.encode_record(HASH, 12, ADJ, OPS, metrics_bytes(v, checkpoint_path=R.SYNTHETIC_MARK + "x")),
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


@pytest.mark.slow
def test_chunk_decoder_equals_reference_on_the_real_file():
    chunk = assert_chunk_matches_reference(require(REAL_TFRECORD))
    assert len(chunk.epochs) == 80_004 and len(chunk.cell_hash) == 20_001
    assert chunk.num_fast == len(chunk.epochs)  # NB101's own layout: every record on the vectorised path


@pytest.mark.parametrize(
    "data, why",
    [
        (b'["' + HASH.encode() + b'", 4', "bad JSON"),
        (json.dumps([HASH, 4, ADJ, OPS]).encode(), "expected a JSON list of 5 fields"),
        (json.dumps(["0123", 4, ADJ, OPS, ""]).encode(), "is not 32 lowercase hex digits"),
        (R.encode_record(HASH.upper(), 4, ADJ, OPS, metrics_bytes()), "is not 32 lowercase hex digits"),
        (json.dumps([HASH, 4.0, ADJ, OPS, ""]).encode(), "epochs 4.0 is not an integer"),
        (json.dumps([HASH, 4, ADJ, OPS, "Zm9v!"]).encode(), "bad base64 ModelMetrics"),
        (R.encode_record(HASH, 4, ADJ, OPS, b"\x0a\x05"), "bad base64 ModelMetrics"),  # truncated protobuf
        (R.encode_record(HASH, 4, ADJ, OPS, metrics_message(np.ones((2, 5))).SerializeToString()), "has 2 entries"),
        (R.encode_record(HASH, 4, "0111000100010000", OPS, metrics_bytes()), "names a different cell than in record 0"),
    ],
)
def test_content_errors_name_the_record(tmp_path, data, why):
    path = tmp_path / "bad.tfrecord"
    good = R.encode_record(HASH, 4, ADJ, OPS, metrics_bytes())
    R.write_tfrecord(path, [good, good, data, good])
    chunk = F.parse_chunk(path.read_bytes(), path)
    assert chunk.error is not None and why in chunk.error.msg
    assert (chunk.error.index, chunk.error.offset) == (2, 2 * (16 + len(good)))
    assert len(chunk.epochs) == 2
    if "different cell" not in why:  # decode_record words it the same way
        with pytest.raises(ValueError, match=why):
            R.metric_values(R.decode_record(data).metrics)
