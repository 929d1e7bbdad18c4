"""The file behind nasbench.api.NASBench: this toolkit's HDF5 (lib/nb101/schema.py), its arrays mapped from
the file rather than read, so that loading builds nothing per cell. An NB101 TFRecord is converted once
(lib/tfrecord/convert) into a cache and read from there afterwards.

    from nasbench.lib.dataset_file import open_dataset
    data = open_dataset("nasbench_only108.tfrecord")       # or an HDF5 of tools/nasbench_tfrecord_converter.py
    data.row("00005c142e6f48ac74fdcf73e3439874")           # its row, -1 if the file lacks it
    data.metrics[row, epochs_index, repeat, stage]         # NaN where the records left a field unset

The cache lives in $NB101_NASBENCH_CACHE, else $XDG_CACHE_HOME/nb101-nasbench (~/.cache/nb101-nasbench): never
beside the user's file. A cached file is named by the TFRecord's absolute path, and by its size, mtime and
the schema version, so a changed TFRecord (or a new schema) is converted again, as is a cached file damaged
since; the conversion writes atomically, so a failed one leaves nothing behind.
Bad input raises lib.nb101.schema.DataFileError, or the converter's RecordError for a damaged TFRecord: one
line that names the file.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from lib.nb101.schema import (
    CONVERTER,
    DATASETS,
    EPOCHS,
    HDF5_SCHEMA_VERSION,
    RECORD_ORDER,
    DataFileError,
    check_schema_version,
)
from lib.tfrecord.convert import convert
from lib.tfrecord.records import HEADER, masked_crc32c

CACHE_ENV = "NB101_NASBENCH_CACHE"
CACHE_NAME = "nb101-nasbench"


class Dataset:
    """One HDF5's arrays (memory-mapped where the file stores them contiguously) and a lookup by hash.

    Hashes are found by binary search: NB101's files hold their cells in hash order, and an argsort is
    made only for a file that does not.
    """

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], epochs: list[int]):
        self.path = path
        self.hash = arrays["hash"]  # [N] S32, in file order
        self.num_vertices = arrays["num_vertices"]
        self.trainable_parameters = arrays["trainable_parameters"]
        self.params_in_first_record = arrays["params_in_first_record"]
        self.adjacency = arrays["adjacency"]
        self.operations = arrays["operations"]
        self.metrics = arrays["metrics"]  # [N, EPOCHS, REPEATS, STAGES, RECORD_FIELDS]
        self.repeats = arrays["repeats"]
        self.epoch_order = arrays["epoch_order"]
        self.epochs = epochs  # in the order they first appear in the file
        in_order = bool(np.all(self.hash[1:] > self.hash[:-1]))
        self._order = None if in_order else np.argsort(self.hash, kind="stable")
        self._sorted = self.hash if in_order else self.hash[self._order]

    def __len__(self) -> int:
        return len(self.hash)

    def row(self, module_hash) -> int:
        """The row of a hash (a str of 32 characters), -1 if the file lacks it."""
        if not isinstance(module_hash, str) or len(module_hash) != 32 or not module_hash.isascii():
            return -1
        key = module_hash.encode()
        i = int(np.searchsorted(self._sorted, key))
        if i == len(self._sorted) or self._sorted[i] != key:
            return -1
        return i if self._order is None else int(self._order[i])

    def hashes(self, block: int = 4096) -> Iterator[str]:
        """The hashes in file order, as str."""
        for start in range(0, len(self.hash), block):
            yield from (h.decode() for h in self.hash[start : start + block].tolist())


def open_dataset(dataset_file) -> Dataset:
    """The dataset of an HDF5 of this toolkit's, or of an NB101 TFRecord (converted once, then cached)."""
    path = Path(dataset_file)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, not an NB101 TFRecord or HDF5 file")
    if is_tfrecord(path):
        cached = cached_hdf5(path)
        try:
            return read_hdf5(cached, shown=path)
        except DataFileError:  # the cached file was damaged after it was written: convert again
            cached.unlink(missing_ok=True)
            return read_hdf5(cached_hdf5(path), shown=path)
    if not h5py.is_hdf5(path):
        raise DataFileError(f"{path}: neither an NB101 TFRecord nor an HDF5 file of {CONVERTER}")
    return read_hdf5(path)


def is_tfrecord(path: Path) -> bool:
    """The file starts with a TFRecord header: a length and its masked CRC32C."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from None
    return len(header) == HEADER and struct.unpack_from("<I", header, 8)[0] == masked_crc32c(header[:8])


def read_hdf5(path: Path, shown: Path | None = None) -> Dataset:
    """The arrays of an HDF5 of schema HDF5_SCHEMA_VERSION; DataFileError naming `shown` (default: path)."""
    shown = shown or path
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
            check_schema_version(shown, attrs)
            missing = [f"dataset {k!r}" for k in DATASETS + RECORD_ORDER if k not in f]
            missing += ["attribute 'epochs'"] if "epochs" not in attrs else []
            if missing:
                raise DataFileError(
                    f"{shown}: no {missing[0]}, which {CONVERTER} writes: convert the TFRecord with it, or give"
                    " NASBench the TFRecord itself"
                )
            arrays = {k: mapped(path, f[k]) for k in DATASETS + RECORD_ORDER}
            epochs = [int(e) for e in np.atleast_1d(attrs["epochs"])]
    except OSError as e:
        raise DataFileError(f"{shown}: not an HDF5 file of {CONVERTER} ({e})") from None
    n = len(arrays["hash"])
    if any(len(a) != n for a in arrays.values()) or not set(epochs) <= set(EPOCHS):
        raise DataFileError(f"{shown}: its datasets do not fit together: convert the TFRecord again")
    return Dataset(path, arrays, epochs)


def mapped(path: Path, ds: h5py.Dataset) -> np.ndarray:
    """The dataset's array, memory-mapped where it is stored in one piece, else read."""
    offset = ds.id.get_offset()
    if offset is None or ds.chunks is not None or ds.size == 0:
        return ds[()]
    return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)


# ----------------------------------------------------------------------------- the cache of converted TFRecords


def cache_dir() -> Path:
    """$NB101_NASBENCH_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / CACHE_NAME


def cached_hdf5(tfrecord: Path) -> Path:
    """The HDF5 of a TFRecord in the cache, converted first if the cache lacks this version of it (one
    line on stdout says where). Older conversions of the same path are removed."""
    real = tfrecord.resolve()
    st = real.stat()
    place = hashlib.sha256(str(real).encode()).hexdigest()[:12]
    version = hashlib.sha256(f"{st.st_size} {st.st_mtime_ns} {HDF5_SCHEMA_VERSION}".encode()).hexdigest()[:12]
    out = cache_dir() / f"{real.stem}-{place}-{version}.hdf5"
    if out.exists():
        return out
    print(f"Converting {tfrecord} once, into {out}; later loads read that file")
    try:
        convert(real, out)
    except OSError as e:  # the cache cannot be written (the input was checked by then)
        raise DataFileError(f"{out.parent}: {e.strerror or e}; set {CACHE_ENV} to a folder you can write") from None
    if real.stat().st_mtime_ns != st.st_mtime_ns or real.stat().st_size != st.st_size:
        out.unlink(missing_ok=True)
        raise DataFileError(f"{tfrecord}: changed while it was converted; load it again")
    for old in out.parent.glob(f"{real.stem}-{place}-*.hdf5"):
        if old != out:
            old.unlink(missing_ok=True)
    return out
