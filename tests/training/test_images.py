"""Tests for lib/training/images.py: both on-disk formats, NB101's split, the cache, the data order and the
augmentation.

Tiny data is written in the real on-disk formats: cifar-10-batches-py pickles (Python 2 str keys,
so b'data' / b'labels' with encoding='bytes' as NB101 reads them, 'data' with latin1 as torchvision
does) and JPEG / PNG image folders, by tests/conftest.py.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLASSES, images, write_batches, write_folders

# ----------------------------------------------------------------------------- reading and splitting
from PIL import Image

from lib.training import images as cifar10
from lib.util.errors import UserError


def test_batches_format_is_the_real_one(tmp_path: Path):
    write_batches(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        as_nb101 = pickle.load(f, encoding="bytes")  # how NB101's generate_cifar10_tfrecords reads it
    assert {b"data", b"labels"} <= as_nb101.keys() and as_nb101[b"data"].shape == (64, 3072)


def test_batches_split_like_nb101(tmp_path: Path):
    written = write_batches(tmp_path)
    d = cifar10.load_images(tmp_path)
    assert len(d["train_x"]) == 256 and len(d["valid_x"]) == 64 and len(d["test_x"]) == 64
    np.testing.assert_array_equal(d["valid_x"], written["data_batch_5"][0])  # data_batch_5 is validation
    np.testing.assert_array_equal(d["valid_y"], written["data_batch_5"][1])
    np.testing.assert_array_equal(d["train_x"][:64], written["data_batch_1"][0])
    np.testing.assert_array_equal(d["test_x"], written["test_batch"][0])
    assert d["valid_split"] == cifar10.BATCHES_SPLIT and cifar10.normalization(d) == cifar10.nb101_normalization()


def test_folders_decode_split_and_cache(tmp_path: Path):
    written = write_folders(tmp_path)
    d = cifar10.load_images(tmp_path)
    assert d["train_x"].dtype == np.uint8 and d["train_x"].shape[1:] == (32, 32, 3)
    assert d["valid_split"] == cifar10.FOLDER_SPLIT and cifar10.is_cifar10(d)
    # PNG is lossless: test images come back exactly (ImageFolder orders by class, then file name).
    x, y = written["test"]
    order = sorted(range(len(y)), key=lambda i: (CLASSES[y[i]], i))
    np.testing.assert_array_equal(d["test_x"], x[order])
    # validation: a fifth of each training class, disjoint from train
    counts = np.bincount(written["train"][1], minlength=10)
    np.testing.assert_array_equal(np.bincount(d["valid_y"], minlength=10), counts // 5)
    assert len(d["train_x"]) + len(d["valid_x"]) == 100
    cache = tmp_path / cifar10.CACHE_NAME
    assert cache.exists() and not list(tmp_path.glob("*.tmp"))
    again = cifar10.load_images(tmp_path)  # from the cache, same arrays
    for k in d:
        np.testing.assert_array_equal(d[k], again[k])
    # an edited tree invalidates the cache
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "test" / "cat" / "9999.png")
    assert len(cifar10.load_images(tmp_path)["test_x"]) == 31


def test_folders_without_test_decode_and_cache_an_empty_test_split(tmp_path: Path):
    write_folders(tmp_path)
    for f in (tmp_path / "test").rglob("*.png"):
        f.unlink()
    for c in (tmp_path / "test").iterdir():
        c.rmdir()
    (tmp_path / "test").rmdir()
    d = cifar10.load_images(tmp_path)
    assert d["test_x"].shape == (0, 32, 32, 3) and d["test_y"].shape == (0,)
    assert len(d["train_x"]) + len(d["valid_x"]) == 100
    again = cifar10.load_images(tmp_path)  # from the cache
    assert again["test_x"].shape == (0, 32, 32, 3) and np.array_equal(again["train_x"], d["train_x"])


def test_classes_come_from_the_data(tmp_path: Path):
    write_batches(tmp_path / "b")
    assert list(cifar10.load_images(tmp_path / "b")["classes"]) == CLASSES  # batches.meta's names
    for split in ("train", "test"):
        for c in ("ant", "bee", "cow"):
            (tmp_path / "f" / split / c).mkdir(parents=True)
            for i in range(5):
                Image.fromarray(np.full((32, 32, 3), i, np.uint8)).save(tmp_path / "f" / split / c / f"{i}.png")
    d = cifar10.load_images(tmp_path / "f")
    assert list(d["classes"]) == ["ant", "bee", "cow"] and set(d["train_y"]) == set(d["test_y"]) == {0, 1, 2}
    assert len(d["valid_x"]) == 3  # a fifth of each class


def test_a_damaged_cache_is_decoded_again_with_a_warning(tmp_path: Path, capsys):
    write_folders(tmp_path)
    first = cifar10.load_images(tmp_path)
    cache = tmp_path / cifar10.CACHE_NAME
    good = cache.read_bytes()
    for damage in (good[: len(good) // 2], b"", b"PK\x03\x04junk"):  # cut short, emptied, garbage
        cache.write_bytes(damage)
        again = cifar10.load_images(tmp_path)
        err = capsys.readouterr().err
        assert err.startswith(f"warning: {cache}: damaged cache (") and err.count("\n") == 1, err
        assert err.rstrip().endswith("decoding the images again")
        for k in first:
            np.testing.assert_array_equal(first[k], again[k])
        assert cache.read_bytes() != damage and not list(tmp_path.glob("*.tmp"))  # rebuilt, whole
        cifar10.load_images(tmp_path)  # and read from it next time, silently
        assert capsys.readouterr().err == ""


def test_no_data_is_a_user_error_naming_both_ways(tmp_path: Path):
    with pytest.raises(UserError, match="cifar-10-batches-py.*--download.*train/<class>") as e:
        cifar10.load_images(tmp_path)
    assert isinstance(e.value, cifar10.ImageDataError)


def test_epoch_plan_is_a_pure_stream_of_permutations():
    n, batch, epochs = 100, 32, 5
    plans = [cifar10.epoch_plan(7, e, n, batch) for e in range(epochs)]
    assert sum(p.shape[1] for p in plans) == epochs * n // batch  # NB101: int(epochs * n / batch) steps
    stream = np.concatenate([p[0].reshape(-1) for p in plans])
    for k in range(len(stream) // n):  # every full pass is a permutation
        assert sorted(stream[k * n : (k + 1) * n]) == list(range(n))
    np.testing.assert_array_equal(plans[3], cifar10.epoch_plan(7, 3, n, batch))  # pure in (seed, epoch)
    assert not np.array_equal(plans[3], cifar10.epoch_plan(8, 3, n, batch))
    assert plans[0][1:3].max() <= 8 and plans[0][3].max() == 1


def test_augment_matches_pad_crop_flip():
    x, _ = images(6, seed=0)
    padded = cifar10.pad_for_crops(torch.from_numpy(x))
    plan = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 8, 3, 4, 1, 7], [8, 0, 5, 4, 2, 1], [0, 1, 0, 1, 1, 0]])
    got = cifar10.augment(padded, plan)
    assert got.shape == (6, 3, 32, 32) and got.is_contiguous(memory_format=torch.channels_last)
    for j, (i, dy, dx, flip) in enumerate(plan.T.tolist()):
        ref = np.pad(x[i], ((4, 4), (4, 4), (0, 0)))[dy : dy + 32, dx : dx + 32]  # pad 4 with 0, crop
        ref = ref[:, ::-1] if flip else ref
        np.testing.assert_array_equal(got[j].permute(1, 2, 0).numpy(), ref)


def test_augment_matches_a_per_image_reference_pixel_for_pixel():
    """The one-gather crop/flip of a whole epoch against numpy pad + crop + flip, image by image:
    every offset 0..8 in both axes, both flips, repeated images, channels_last output."""
    x, _ = images(300, seed=3)
    padded = cifar10.pad_for_crops(torch.from_numpy(x))
    plan = torch.from_numpy(cifar10.epoch_plan(5, 2, len(x), 64))
    offsets = set()
    for j in range(plan.shape[1]):
        got = cifar10.augment(padded, plan[:, j])
        assert got.dtype == torch.uint8 and got.is_contiguous(memory_format=torch.channels_last)
        for k, (i, dy, dx, flip) in enumerate(plan[:, j].T.tolist()):
            crop = np.zeros((40, 40, 3), np.uint8)
            crop[4:36, 4:36] = x[i]
            crop = crop[dy : dy + 32, dx : dx + 32]
            want = np.flip(crop, axis=1) if flip else crop
            np.testing.assert_array_equal(got[k].permute(1, 2, 0).numpy(), want)
            offsets.add((dy, dx, flip))
    assert len(offsets) > 120  # most of the 9 x 9 x 2 crops were checked


@pytest.mark.timeout(120)  # a worker pool that hangs fails the test instead of stalling the suite
def test_parallel_decode_equals_serial_and_reports_bad_images(tmp_path: Path, monkeypatch):
    write_folders(tmp_path, n_train=300, n_test=10)
    paths = sorted(str(p) for p in (tmp_path / "train").rglob("*.jpg"))
    serial = cifar10.decode_images(paths, workers=1)
    monkeypatch.setattr(cifar10, "POOL_MIN_IMAGES", 0)
    pooled = cifar10.decode_images(paths, workers=2)  # 1024-image chunks: make them small to use both workers
    np.testing.assert_array_equal(serial, pooled)
    assert serial.shape == (300, 32, 32, 3) and serial.any()
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(
        cifar10.ImageDataError, match=rf"images of 2 sizes \(32x32 {re.escape(paths[0])}, 32x16 .*/small.png\)"
    ):
        cifar10.decode_images(paths + [str(tmp_path / "small.png")], workers=2)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(cifar10.ImageDataError, match="bad.png: not a readable image"):
        cifar10.decode_images(paths + [str(tmp_path / "bad.png")], workers=2)


def test_subset_is_fixed_and_zero_means_all():
    x, y = np.arange(100) * 10, np.arange(100)
    sx, sy = cifar10.subset(x, y, 30)
    assert len(sx) == 30 and np.array_equal(sx, sy * 10) and np.all(np.diff(sy) > 0)  # pairs kept, order kept
    np.testing.assert_array_equal(sy, cifar10.subset(x, y, 30)[1])  # the same subset every call
    assert cifar10.subset(x, y, 0)[0] is x and cifar10.subset(x, y, 500)[0] is x


def test_normalize_uses_nb101_rgb_statistics():
    x = torch.full((2, 3, 4, 4), 200, dtype=torch.uint8)
    got = cifar10.normalize(x, *cifar10.normalizer(torch.device("cpu")))
    want = (200 - np.array(cifar10.RGB_MEAN)) / np.array(cifar10.RGB_STD)
    np.testing.assert_allclose(got[0, :, 0, 0].numpy(), want, rtol=1e-6)
    assert got.shape == x.shape and got.dtype == torch.float32
