"""nasbench.lib.dataset_file: a TFRecord converted once into the cache and read from there, converted again when it
or its cached file changes, nothing ever written beside it; every kind of bad input a one-line error that leaves no
file behind; arrays read where the HDF5 cannot be mapped."""

import os
import shutil

import h5py
import numpy as np
import pytest
from conftest import snapshot, write_h5

from lib.nb101.schema import DATASETS, RECORD_ORDER, DataFileError
from lib.tfrecord.records import RecordError
from nasbench import api
from nasbench.lib import dataset_file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(dataset_file.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def mine(tmp_path, tfrecord):
    """The user's folder, with a demo TFRecord in it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(tfrecord, folder / "demo.tfrecord")
    return folder


def answers(nb):
    """Every cell's statistics, its matrix as lists (comparable with ==)."""
    out = []
    for h in nb.hash_iterator():
        fixed, computed = nb.get_metrics_from_hash(h)
        out.append((fixed | {"module_adjacency": fixed["module_adjacency"].tolist()}, computed))
    return out


def test_a_tfrecord_is_converted_once_into_the_cache(mine, cache, capsys, tfrecord):
    before = snapshot(mine)
    first = api.NASBench(str(mine / "demo.tfrecord"))
    out = capsys.readouterr().out.splitlines()
    (cached,) = cache.iterdir()
    assert out[1] == f"Converting {mine / 'demo.tfrecord'} once, into {cached}; later loads read that file"
    assert len(out) == 3 and cached.suffix == ".hdf5"
    again = api.NASBench(str(mine / "demo.tfrecord"))
    assert "Converting" not in capsys.readouterr().out and list(cache.iterdir()) == [cached]
    assert answers(again) == answers(first) == answers(api.NASBench(str(tfrecord)))  # another path: its own
    assert len(list(cache.iterdir())) == 2 and snapshot(mine) == before


def test_a_changed_tfrecord_is_converted_again(mine, cache, capsys):
    api.NASBench(str(mine / "demo.tfrecord"))
    (old,) = cache.iterdir()
    st = os.stat(mine / "demo.tfrecord")
    os.utime(mine / "demo.tfrecord", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    capsys.readouterr()
    api.NASBench(str(mine / "demo.tfrecord"))
    (new,) = cache.iterdir()
    assert new != old and "Converting" in capsys.readouterr().out  # and the old conversion is gone


def test_a_damaged_cached_file_is_converted_again(mine, cache, capsys):
    want = answers(api.NASBench(str(mine / "demo.tfrecord")))
    (cached,) = cache.iterdir()
    cached.write_bytes(cached.read_bytes()[:1000])
    capsys.readouterr()
    assert answers(api.NASBench(str(mine / "demo.tfrecord"))) == want
    assert "Converting" in capsys.readouterr().out and list(cache.iterdir()) == [cached]


def test_the_cache_is_the_users_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(dataset_file.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dataset_file.cache_dir() == tmp_path / "nb101-nasbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dataset_file.cache_dir() == tmp_path / "home" / ".cache" / "nb101-nasbench"


def test_a_damaged_tfrecord_leaves_no_cache_behind(mine, cache):
    data = bytearray((mine / "demo.tfrecord").read_bytes())
    data[len(data) // 2] ^= 1
    (mine / "demo.tfrecord").write_bytes(data)
    before = snapshot(mine)
    with pytest.raises(RecordError) as e:
        api.NASBench(str(mine / "demo.tfrecord"))
    assert "\n" not in str(e.value) and "CRC mismatch" in str(e.value) and str(mine / "demo.tfrecord") in str(e.value)
    assert snapshot(mine) == before and not (cache.exists() and list(cache.iterdir()))


def test_a_cache_that_cannot_be_written_says_so(mine, tmp_path, monkeypatch):
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv(dataset_file.CACHE_ENV, str(tmp_path / "a file" / "cache"))
    with pytest.raises(DataFileError, match=f"^{tmp_path / 'a file' / 'cache'}: .*; set NB101_NASBENCH_CACHE to a"):
        api.NASBench(str(mine / "demo.tfrecord"))


def hdf5_without(path, name):
    with h5py.File(path, "a") as f:
        del f[name]
    return path


def older_schema(path):
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 1
    return path


BAD = {  # name -> (make the input in a folder, what the message says after the path)
    "missing": (lambda d, h5: d / "nasbench.hdf5", "no such file"),
    "folder": (lambda d, h5: d, "is a folder, not an NB101 TFRecord or HDF5 file"),
    "text": (lambda d, h5: d / "x.hdf5", "neither an NB101 TFRecord nor an HDF5 file of python tools/nasbench_tfrec"),
    "empty": (lambda d, h5: d / "empty", "neither an NB101 TFRecord nor an HDF5 file of python tools/nasbench_tfrec"),
    "older schema": (
        lambda d, h5: older_schema(shutil.copy(h5, d / "old.hdf5")),
        "HDF5 schema version 1, this toolkit reads version 2: convert the TFRecord again, `python tools/nasbench_tf"
        "record_converter.py --input demo.tfrecord --output ",
    ),
    "no records' order": (
        lambda d, h5: write_h5(d / "other.hdf5", np.full((2, 4, 3, 2, 4), 0.9)),
        "no dataset 'repeats', which python tools/nasbench_tfrecord_converter.py writes: convert the TFRecord",
    ),
    "no metrics": (
        lambda d, h5: hdf5_without(shutil.copy(h5, d / "part.hdf5"), "metrics"),
        "no dataset 'metrics', which",
    ),
    "foreign HDF5": (lambda d, h5: h5py.File(d / "f.h5", "w").close() or d / "f.h5", "no dataset 'hash', which"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, cache, demo_h5):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "x.hdf5").write_text("not an HDF5\n")
    (folder / "empty").write_bytes(b"")
    make, says = BAD[case]
    path = make(folder, demo_h5)
    before = snapshot(folder)
    with pytest.raises(DataFileError) as e:
        api.NASBench(str(path))
    assert str(e.value).startswith(f"{path}: {says}") and "\n" not in str(e.value)
    assert snapshot(folder) == before and not cache.exists()


def test_an_hdf5_stored_in_chunks_is_read_and_answers_the_same(demo_h5, tmp_path):
    with h5py.File(demo_h5) as src, h5py.File(tmp_path / "chunked.hdf5", "w") as dst:
        for name in DATASETS + RECORD_ORDER:
            dst.create_dataset(name, data=src[name][()], chunks=True, compression="gzip")
        dst.attrs.update(src.attrs)
    mapped, read = dataset_file.open_dataset(demo_h5), dataset_file.open_dataset(tmp_path / "chunked.hdf5")
    assert isinstance(mapped.metrics, np.memmap) and not isinstance(read.metrics, np.memmap)
    assert answers(api.NASBench(str(tmp_path / "chunked.hdf5"))) == answers(api.NASBench(str(demo_h5)))
