"""lib/tfrecord/metrics_fast.py against the protobuf reference (lib/tfrecord/records.metric_values): the same
values of every message it reads, and every message it cannot read left to decode_record (ok False)."""

import base64

import numpy as np
from conftest import metrics_bytes, metrics_message

from lib.tfrecord import records as R
from lib.tfrecord.metrics_fast import decode_metrics


def decode(strings: list[bytes]):
    """decode_metrics over the strings laid end to end, with a zero tail as the chunk decoder leaves."""
    arr = np.zeros(sum(map(len, strings)) + 256, np.uint8)
    ends = np.cumsum([len(b) for b in strings])
    arr[: ends[-1]] = np.frombuffer(b"".join(strings), np.uint8)
    return decode_metrics(arr, ends - [len(b) for b in strings], ends)


def messages(n: int, absent: float, seed: int = 0) -> list[bytes]:
    """n ModelMetrics, half of them marked synthetic; each value unset with probability `absent`."""
    rng = np.random.default_rng(seed)
    values = rng.random((n, 3, 5))
    values[:, 0, 1:] = np.nan  # NB101-like: the start entry holds only current_epoch
    values[rng.random((n, 3, 5)) < absent] = np.nan
    params = np.where(rng.random(n) < absent, -1, rng.integers(0, 2**31, n))
    total_time = np.where(rng.random(n) < absent, np.nan, rng.random(n))
    half, marked = n // 2, R.SYNTHETIC_MARK + "make_demo_data seed=0"
    blobs = R.encode_metrics_batch(values[:half], params[:half], total_time[:half], "")
    return blobs + R.encode_metrics_batch(values[half:], params[half:], total_time[half:], marked)


def test_what_it_reads_equals_metric_values():
    blobs = messages(2000, absent=0.2)  # many layouts: the rarer ones are left to decode_record
    ok, params, values, synthetic = decode([base64.b64encode(b) for b in blobs])
    assert ok.mean() > 0.5
    for i in np.flatnonzero(ok):
        want_params, want_values, want_synthetic = R.metric_values(R.ModelMetrics.FromString(blobs[i]))
        assert (params[i], synthetic[i]) == (want_params, want_synthetic)
        np.testing.assert_array_equal(values[i], want_values)  # NaN where unset, on both sides


def test_it_reads_every_message_laid_out_as_nb101_writes_them():
    ok, *_ = decode([base64.b64encode(b) for b in messages(2000, absent=0.0)])
    assert ok.all()


def test_what_it_cannot_read_is_left_to_decode_record():
    v = np.arange(15.0).reshape(3, 5) / 16
    good = base64.b64encode(metrics_bytes(v))
    odd = [
        base64.b64encode(metrics_bytes(v) + bytes([0x48, 0x01])),  # an unknown field
        base64.b64encode(metrics_message(v, 12, checkpoint_path="x" * 200).SerializeToString()),  # 2-byte length
        base64.b64encode(metrics_message(v[:2]).SerializeToString()),  # 2 evaluation_data entries
        good[:-4] + b"!!!!",  # outside the alphabet
        good[:8] + b"=" + good[9:],  # padding inside
        good[:-1],  # not a whole number of 4-character groups
        b"",
    ]
    ok, params, values, _ = decode([good, *odd])
    assert ok.tolist() == [True] + [False] * len(odd)
    assert (params[1:] == -1).all() and np.isnan(values[1:]).all()  # nothing read for them
