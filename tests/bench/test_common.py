"""bench/common.py: the real-data HDF5 is converted on first use and again when its schema is older."""

import h5py
import pytest

from bench.common import real_hdf5, schema_version
from lib.nb101.schema import HDF5_SCHEMA_VERSION


@pytest.mark.slow  # ~1.5 s: the converter runs as a command
def test_an_hdf5_of_an_older_schema_is_converted_again_and_then_kept(tfrecord, tmp_path):
    path = tmp_path / "real20k.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = HDF5_SCHEMA_VERSION - 1
    assert real_hdf5(path, tfrecord) == path and schema_version(path) == HDF5_SCHEMA_VERSION
    with h5py.File(path) as f:
        assert len(f["hash"]) == 30
    converted = path.stat().st_mtime_ns
    assert real_hdf5(path, tfrecord) == path and path.stat().st_mtime_ns == converted
