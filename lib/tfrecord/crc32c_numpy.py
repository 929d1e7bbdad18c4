"""TFRecord's masked CRC32C for many records at once, with numpy: the CRCs of the 8-byte lengths,
table-driven and vectorised; the data CRCs one C call a record; and a whole range of records
checked in one crc32c pass.

    from lib.tfrecord.crc32c_numpy import all_crcs_match, byte_rows, crc32c_rows, mask
    mask(crc32c_rows(byte_rows(arr, starts, 8)))    # masked CRC of the length of each record at `starts`
    all_crcs_match(arr, end, starts)                # True iff these records fill arr[:end], every CRC right

lib/tfrecord/records.masked_crc32c is the reference, one byte string at a time; lib/tfrecord/records_fast
locates and words any mismatch.
"""

from __future__ import annotations

import crc32c
import numpy as np

from lib.tfrecord.records import FOOTER, HEADER

MASK_DELTA = np.uint32(0xA282EAD8)  # TensorFlow's crc32c.h kMaskDelta


def byte_rows(arr: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """[n, width] copy of arr[s : s + width] for each start (needs `width` bytes of tail)."""
    return np.lib.stride_tricks.sliding_window_view(arr, width)[starts]


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):  # reflected Castagnoli polynomial
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()


def crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """crc32c of each row of a [n, w] uint8 array (w small: the 8 length bytes)."""
    crc = np.full(len(rows), 0xFFFFFFFF, np.uint32)
    for k in range(rows.shape[1]):
        crc = _CRC_TABLE[(crc ^ rows[:, k]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def mask(crc: np.ndarray) -> np.ndarray:
    """TFRecord's mask of each CRC: rotated right by 15 bits, plus MASK_DELTA."""
    crc = crc.astype(np.uint32)
    return ((crc >> 15) | (crc << 17)) + MASK_DELTA  # uint32 wraps, as in the C code


def unmask(masked: np.ndarray) -> np.ndarray:
    """The CRCs that `mask` made `masked`."""
    crc = masked.astype(np.uint32) - MASK_DELTA
    return (crc << 15) | (crc >> 17)


_ZEROS_CRC: dict[int, int] = {}


def zeros_crc(n: int) -> int:
    """crc32c of n zero bytes (cached: a file's records have few distinct lengths)."""
    if n not in _ZEROS_CRC:
        _ZEROS_CRC[n] = crc32c.crc32c(bytes(n))
    return _ZEROS_CRC[n]


def data_crcs(mv: memoryview, data_starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masked crc32c of each record's data, one C call per record (~0.3 us): what locates a bad one."""
    crc, ends = crc32c.crc32c, (data_starts + lengths).tolist()
    return mask(np.array([crc(mv[a:b]) for a, b in zip(data_starts.tolist(), ends, strict=True)], np.uint32))


def all_crcs_match(arr: np.ndarray, end: int, s: np.ndarray) -> bool:
    """Whether the records starting at s fill arr[:end] exactly and every CRC matches, at ~0.1 us
    a record instead of a crc32c call per record (~0.3 us).

    The lengths' CRCs are computed (vectorised); the data CRCs are checked all at once, through
    CRC32C's linearity. With R the CRC without its initial value and final xor (so linear:
    R(a || b) = R(a) x^(8|b|) + R(b) mod P, and R(d || le32(u)) = 0 iff u = R(d)), each record's
    stored CRC word is replaced by u = unmask(stored) ^ crc32c(zeros(len)), which is R(its data)
    when the CRC is right, and likewise for each length's CRC word. R of the whole range is then 0
    if every CRC matches. Damage to one record leaves a nonzero term times a power of x, which
    P (with x^0 in it) never divides: it is always caught, as by its own CRC; damage to several
    records cancels with odds 2^-32. arr (with >= 16 bytes of tail) is restored before returning.
    """
    if not len(s):
        return False
    head = byte_rows(arr, s, HEADER)
    length = head[:, :8].copy().view("<u8").ravel()
    if (length > np.uint64(end)).any():
        return False
    length = length.astype(np.int64)
    footer = s + HEADER + length
    if not (np.array_equal(footer[:-1] + FOOTER, s[1:]) and footer[-1] + FOOTER == end):
        return False  # a torn record, or starts that are not this range's: the framing walk says which
    length_crc = head[:, 8:].copy().view("<u4").ravel()
    if not np.array_equal(mask(crc32c_rows(head[:, :8])), length_crc):
        return False
    data_crc = byte_rows(arr, footer, FOOTER).copy().view("<u4").ravel()
    sizes, which = np.unique(length, return_inverse=True)
    zeros = np.array([zeros_crc(n) for n in sizes.tolist()], np.uint32)[which]
    words = [
        (s + 8, unmask(length_crc) ^ np.uint32(zeros_crc(8)), length_crc),
        (footer, unmask(data_crc) ^ zeros, data_crc),
    ]
    for at, u, _ in words:
        arr[(at[:, None] + np.arange(4)).ravel()] = u.astype("<u4").view(np.uint8)
    sound = crc32c.crc32c(memoryview(arr)[:end], 0xFFFFFFFF) == 0xFFFFFFFF  # from register 0: R(range) ^ ~0
    for at, _, stored in words:
        arr[(at[:, None] + np.arange(4)).ravel()] = stored.astype("<u4").view(np.uint8)
    return sound
