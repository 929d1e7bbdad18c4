"""lib/tfrecord/records.py: TFRecord framing, the ModelMetrics protobuf and its batch encoder, one record's
encode and decode (the reference: json + base64 + protobuf per record, as NB101's api.py reads)."""

import crc32c
import numpy as np
import pytest
from conftest import metrics_bytes, metrics_message
from google.protobuf.descriptor import FieldDescriptor

from lib.tfrecord import records as R

# ----------------------------------------------------------------------------- framing


def test_masked_crc32c_is_tensorflows():
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    crc = 0xE3069283  # TF crc32c.h: rotate right by 15 bits, add kMaskDelta
    assert R.masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_framing_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    payloads = [b"", b"x", rng.bytes(1000), rng.bytes(70_000), b'"quotes" and \\ backslashes']
    path = tmp_path / "f.tfrecord"
    assert R.write_tfrecord(path, payloads) == len(payloads)
    offsets = np.cumsum([0] + [16 + len(p) for p in payloads])
    got = list(R.read_tfrecord(path))
    assert [(i, o, d) for i, o, d in got] == list(zip(range(5), offsets[:-1].tolist(), payloads, strict=True))
    assert path.stat().st_size == offsets[-1]


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
    params, got, synthetic = R.metric_values(R.ModelMetrics.FromString(metrics_bytes(values, params=0)))
    assert params == 0 and not synthetic
    np.testing.assert_array_equal(got, [[np.nan, 0.0, np.nan, np.nan], [np.nan, np.nan, 0.93, 0.0]])
    m = R.ModelMetrics.FromString(metrics_bytes(values, params=-1))
    assert R.metric_values(m)[0] == -1 and m.trainable_parameters == 0  # unset reads 0 without HasField
    with pytest.raises(ValueError, match="evaluation_data has 2 entries"):
        R.metric_values(metrics_message(values[:2]))


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
            assert blobs[i] == metrics_message(values[i], params[i], total_time[i], cp).SerializeToString()
        assert R.metric_values(R.ModelMetrics.FromString(blobs[0]))[2] == bool(cp)
