"""dataset.py on small HDF5 files written here in the converter's schema, and on the demo data."""

import h5py
import numpy as np
import pytest
import torch
from conftest import final_accuracies, write_h5

import dataset as D
from lib.nb101 import cell as C


def test_splits_follow_the_published_definition(tmp_path):
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.75, 0.95, 2000)
    data = D.load_nb101(write_h5(tmp_path / "d.h5", final_accuracies(np.stack([acc] * 3, 1))))
    rs = np.random.RandomState(0)
    draws = {k: rs.permutation(2000)[:k] for k in (172, 334, 860)}
    for k, idx in draws.items():
        assert np.array_equal(data.split(str(k)), idx)
        hi = data.split(f"91-{k}")
        assert np.array_equal(hi, idx[acc[idx] > 0.91]) and 0 < len(hi) < k
    assert np.array_equal(data.split("denoise-91"), np.flatnonzero(acc > 0.91))
    assert np.array_equal(data.split("denoise-80"), np.flatnonzero(acc > 0.80))
    assert np.array_equal(data.split("all"), np.arange(2000))
    assert not np.array_equal(data.split("172", seed=1), draws[172])
    assert np.array_equal(data.split("172", seed=1), np.random.RandomState(1).permutation(2000)[:172])
    with pytest.raises(ValueError, match="unknown split '17'"):
        data.split("17")


def test_labels_skip_blown_and_absent_repeats(tmp_path):
    val = np.array(
        [
            [0.90, 0.92, 0.94],  # normal
            [0.10, 0.92, 0.94],  # repeat 0 blown → repeat 1
            [0.10, 0.05, np.nan],  # nothing usable → mean of all usable values in the file
            [np.nan, np.nan, np.nan],  # no value at all → NaN
            [0.91, np.nan, np.nan],  # one repeat only (like the real 20k file)
        ]
    )
    data = D.load_nb101(write_h5(tmp_path / "d.h5", final_accuracies(val)))
    usable_mean = np.mean([0.90, 0.92, 0.94, 0.92, 0.94, 0.91])
    r0 = data.labels("val", 108, 0)
    np.testing.assert_allclose(r0[[0, 1, 2, 4]], [0.90, 0.92, usable_mean, 0.91], rtol=1e-6)
    assert np.isnan(r0[3])
    np.testing.assert_allclose(data.labels("val", 108, 2)[[0, 1, 4]], [0.94, 0.94, 0.91], rtol=1e-6)
    mean = data.labels("val", 108, "mean")
    np.testing.assert_allclose(mean[[0, 1, 2, 4]], [0.92, 0.93, usable_mean, 0.91], rtol=1e-6)
    assert np.isnan(mean[3])
    assert np.isnan(data.labels("test", 108, 0)).all()


def test_features_are_one_hot_and_masked(tmp_path):
    cells = [
        C.make_cell([[0, 1], [0, 0]], ["input", "output"]),
        C.make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"]),
    ]
    data = D.load_nb101(write_h5(tmp_path / "d.h5", final_accuracies(np.full((2, 3), 0.9)), cells))
    x = data.features()
    assert x["operations"].shape == (2, 7, 5) and x["adjacency"].shape == (2, 7, 7)
    # columns: output, input, conv3x3, conv1x1, maxpool (label + 2), padding all zero
    assert x["operations"][1, :3].argmax(1).tolist() == [1, 4, 0]
    assert x["operations"][0, 2:].sum() == 0 and x["operations"][1, 3:].sum() == 0
    assert x["mask"].sum(1).tolist() == [2.0, 3.0] and x["num_vertices"].tolist() == [2.0, 3.0]
    assert torch.equal(x["adjacency"][1, :3, :3], torch.tensor([[0, 1, 1], [0, 0, 1], [0, 0, 0]]).float())


def test_missing_or_foreign_file_says_how_to_make_one(tmp_path):
    with pytest.raises(D.DataFileError, match="no such file.*nasbench_tfrecord_converter.*make demo"):
        D.load_nb101(tmp_path / "absent.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(D.DataFileError, match="not an NB101 HDF5 file"):
        D.load_nb101(tmp_path / "junk.hdf5")
    write_h5(tmp_path / "v9.h5", final_accuracies(np.full((1, 3), 0.9)), version=9)
    with pytest.raises(D.DataFileError, match="schema version 9"):
        D.load_nb101(tmp_path / "v9.h5")


def test_a_file_of_an_older_schema_says_how_to_convert_it_again(tmp_path):
    path = write_h5(tmp_path / "v1.hdf5", final_accuracies(np.full((1, 3), 0.9)), version=1)
    with h5py.File(path, "a") as f:
        f.attrs["source"] = "nasbench_full.tfrecord"
    with pytest.raises(D.DataFileError) as e:
        D.load_nb101(path)
    assert str(e.value) == (
        f"{path}: HDF5 schema version 1, this toolkit reads version 2: convert the TFRecord again,"
        f" `python tools/nasbench_tfrecord_converter.py --input nasbench_full.tfrecord --output {path}`"
    )


def test_the_files_doubles_are_held_as_float32_as_every_stage_trains_on_them(demo_h5):
    """The converter keeps the records' doubles; every stage has always trained and searched on them as float32."""
    with h5py.File(demo_h5) as f:
        doubles = f["metrics"][()]
    assert doubles.dtype == np.float64 and not np.array_equal(doubles, doubles.astype(np.float32))
    data = D.load_nb101(demo_h5)
    assert data.metrics.dtype == np.float32 and np.array_equal(data.metrics, doubles.astype(np.float32), equal_nan=True)


def test_neuralpredictor_files_without_attributes_load(tmp_path):
    data = D.load_nb101(write_h5(tmp_path / "np.h5", final_accuracies(np.full((3, 3), 0.9)), version=None))
    assert len(data) == 3 and data.index_of(f"{2:032x}") == 2
    with pytest.raises(KeyError, match="not in"):
        data.index_of("f" * 32)


def test_fingerprint_tracks_the_data(tmp_path):
    a = D.load_nb101(write_h5(tmp_path / "a.h5", final_accuracies(np.full((3, 3), 0.9))))
    b = D.load_nb101(write_h5(tmp_path / "b.h5", final_accuracies(np.full((3, 3), 0.9))))
    c = D.load_nb101(write_h5(tmp_path / "c.h5", final_accuracies(np.full((3, 3), 0.8))))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_synthetic_labels_are_exposed(tmp_path):
    m = final_accuracies(np.full((2, 3), 0.9))
    for synthetic, want in ((True, True), (np.bool_(False), False), (None, False)):  # None: no attribute
        data = D.load_nb101(write_h5(tmp_path / f"{synthetic}.h5", m, synthetic=synthetic))
        assert data.synthetic is want


def test_parse_target():
    assert D.parse_target("val") == ("val", 0)
    assert D.parse_target("test:2") == ("test", 2)
    assert D.parse_target("val:mean") == ("val", "mean")
    assert set(D.TARGETS) == {f"{m}{r}" for m in ("val", "test") for r in ("", ":0", ":1", ":2", ":mean")}
