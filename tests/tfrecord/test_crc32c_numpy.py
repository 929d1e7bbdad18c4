"""lib/tfrecord/crc32c_numpy.py against TFRecord's masked_crc32c (lib/tfrecord/records, one byte string at a time):
the vectorised CRCs of the lengths, the data CRCs, and the one-pass check of a whole range."""

import numpy as np

from lib.tfrecord import crc32c_numpy as X
from lib.tfrecord import records as R


def records(n: int = 40, seed: int = 0) -> tuple[np.ndarray, int, np.ndarray]:
    """n framed records of random data (0-300 bytes) with a zero tail: (arr, end, starts)."""
    rng = np.random.default_rng(seed)
    datas = [rng.bytes(int(k)) for k in rng.integers(0, 300, n)]
    raw = b"".join(R.frame(d) for d in datas)
    arr = np.zeros(len(raw) + 256, np.uint8)
    arr[: len(raw)] = np.frombuffer(raw, np.uint8)
    return arr, len(raw), np.cumsum([0] + [len(d) + R.HEADER + R.FOOTER for d in datas[:-1]])


def test_numpy_crc_of_the_lengths_is_masked_crc32c():
    rows = np.random.default_rng(0).integers(0, 256, (500, 8), dtype=np.uint8)
    vectorised = X.mask(X.crc32c_rows(rows))
    assert vectorised.tolist() == [R.masked_crc32c(r.tobytes()) for r in rows]


def test_unmask_inverts_mask():
    crc = np.random.default_rng(1).integers(0, 2**32, 1000, dtype=np.uint32)
    assert np.array_equal(X.unmask(X.mask(crc)), crc)


def test_data_crcs_are_each_records_masked_crc32c():
    arr, _, starts = records()
    lengths = X.byte_rows(arr, starts, 8).copy().view("<u8").ravel().astype(np.int64)
    got = X.data_crcs(memoryview(arr), starts + R.HEADER, lengths)
    want = [R.masked_crc32c(arr[s + R.HEADER : s + R.HEADER + n].tobytes()) for s, n in zip(starts, lengths)]
    assert got.tolist() == want


def test_all_crcs_match_a_sound_range_and_leaves_it_as_it_was():
    arr, end, starts = records()
    before = arr.copy()
    assert X.all_crcs_match(arr, end, starts)
    assert np.array_equal(arr, before)


def test_any_flipped_byte_fails_the_one_pass_check():
    arr, end, starts = records(seed=2)
    rng = np.random.default_rng(3)
    for at in [*rng.integers(0, end, 300).tolist(), 0, end - 1]:
        bad = arr.copy()
        bad[at] ^= int(rng.integers(1, 256))
        assert not X.all_crcs_match(bad, end, starts), at


def test_starts_that_do_not_fill_the_range_fail():
    arr, end, starts = records()
    assert not X.all_crcs_match(arr, end - 1, starts)  # the last record torn
    assert not X.all_crcs_match(arr, end, starts[:-1])  # a record left out
    assert not X.all_crcs_match(arr, end, starts[:0])
