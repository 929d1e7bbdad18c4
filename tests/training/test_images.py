"""Tests for lib/training/images.py: both on-disk formats, NB101's split, the classes, the normalisation
statistics. Its refusals (no data, unreadable batches...) are trainer.py's, in tests/test_trainer_refusals.py;
the image-folder trees' reading is tests/training/test_image_folders.py's.

Tiny data is written in the real on-disk formats: cifar-10-batches-py pickles (Python 2 str keys,
so b'data' / b'labels' with encoding='bytes' as NB101 reads them, 'data' with latin1 as torchvision
does) and JPEG / PNG image folders, by tests/conftest.py.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from conftest import CLASSES, image_tree, write_batches

from lib.training import images


def test_batches_format_is_the_real_one(tmp_path: Path):
    write_batches(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        as_nb101 = pickle.load(f, encoding="bytes")  # how NB101's generate_cifar10_tfrecords reads it
    assert {b"data", b"labels"} <= as_nb101.keys() and as_nb101[b"data"].shape == (64, 3072)


def test_batches_split_like_nb101(tmp_path: Path):
    written = write_batches(tmp_path)
    d = images.load_images(tmp_path)
    assert len(d["train_x"]) == 256 and len(d["valid_x"]) == 64 and len(d["test_x"]) == 64
    np.testing.assert_array_equal(d["valid_x"], written["data_batch_5"][0])  # data_batch_5 is validation
    np.testing.assert_array_equal(d["valid_y"], written["data_batch_5"][1])
    np.testing.assert_array_equal(d["train_x"][:64], written["data_batch_1"][0])
    np.testing.assert_array_equal(d["test_x"], written["test_batch"][0])
    assert d["valid_split"] == images.BATCHES_SPLIT and images.normalization(d) == images.nb101_normalization()


def test_classes_come_from_the_data(tmp_path: Path):
    write_batches(tmp_path / "b")
    assert list(images.load_images(tmp_path / "b")["classes"]) == CLASSES  # batches.meta's names
    d = images.load_images(image_tree(tmp_path / "f", ["ant", "bee", "cow"]))
    assert list(d["classes"]) == ["ant", "bee", "cow"] and set(d["train_y"]) == set(d["test_y"]) == {0, 1, 2}
    assert len(d["valid_x"]) == 3  # a fifth of each class


def test_subset_is_fixed_and_zero_means_all():
    x, y = np.arange(100) * 10, np.arange(100)
    sx, sy = images.subset(x, y, 30)
    assert len(sx) == 30 and np.array_equal(sx, sy * 10) and np.all(np.diff(sy) > 0)  # pairs kept, order kept
    np.testing.assert_array_equal(sy, images.subset(x, y, 30)[1])  # the same subset every call
    assert images.subset(x, y, 0)[0] is x and images.subset(x, y, 500)[0] is x


def test_the_normalisation_is_nb101s_for_cifar10_else_the_training_images_own(tmp_path: Path):
    """The mean and std of the training split (validation held out), as recorded and used; NB101's values for
    CIFAR-10's classes in 32x32 images, whatever the images hold."""
    d = images.load_images(image_tree(tmp_path / "d", ["ant", "bee", "cow"], per_class=10, size=(40, 40)))
    got = images.normalization(d)
    x = d["train_x"].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(got["mean"], x.mean(0), atol=1e-4)
    np.testing.assert_allclose(got["std"], x.std(0), atol=1e-4)
    assert got["of"] == "the training images" and got["mean"] != list(images.RGB_MEAN)
    # a constant channel: std 1, not a division by zero
    flat = {"classes": np.array(["ant", "bee"]), "train_x": np.full((4, 8, 8, 3), 7, np.uint8)}
    assert images.normalization(flat) == {"mean": [7.0] * 3, "std": [1.0] * 3, "of": "the training images"}
    cifar = {"classes": np.array(images.CIFAR10_CLASSES), "train_x": np.zeros((4, 32, 32, 3), np.uint8)}
    assert images.normalization(cifar) == {"mean": list(images.RGB_MEAN), "std": list(images.RGB_STD)} | {
        "of": "NB101's CIFAR-10 values"
    }
    small = images.normalization(cifar | {"train_x": np.zeros((4, 28, 28, 3), np.uint8)})
    assert small["of"] == "the training images"  # CIFAR-10's classes at another size are not CIFAR-10
