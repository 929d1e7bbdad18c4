"""Tests for lib/training/image_folders.py: an image-folder tree listed as torchvision's ImageFolder lists it,
decoded (by a pool of processes too) and cached; the cache rebuilt when damaged. The refusals of bad trees
are trainer.py's, in tests/test_trainer_refusals.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, image_tree, write_folders
from PIL import Image

from lib.training import image_folders
from lib.training.images import FOLDER_SPLIT, is_cifar10, load_images


def test_the_listing_is_torchvisions_imagefolders(tmp_path: Path):
    """Class folders and files in torchvision's order and labels: nested folders, upper-case and other image
    extensions, files that are not images, a linked class folder."""
    from torchvision.datasets import ImageFolder

    root = image_tree(tmp_path / "d", ["bee", "Ant", "cow"], per_class=3)
    (root / "train" / "bee" / "deeper" / "more").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "bee" / "deeper" / "more" / "a.PNG")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "bee" / "deeper" / "b.jpeg")
    (root / "train" / "cow" / "notes.txt").write_text("not an image\n")
    (root / "train" / "ant-link").symlink_to(root / "train" / "Ant")
    ours, theirs = image_folders.image_folder(root / "train"), ImageFolder(str(root / "train"))
    assert (ours.classes, ours.samples, ours.targets) == (theirs.classes, theirs.samples, theirs.targets)
    assert len(ours.samples) == 14 and ours.classes == ["Ant", "ant-link", "bee", "cow"]


def test_folders_decode_split_and_cache(tmp_path: Path):
    written = write_folders(tmp_path)
    d = load_images(tmp_path)
    assert d["train_x"].dtype == np.uint8 and d["train_x"].shape[1:] == (32, 32, 3)
    assert d["valid_split"] == FOLDER_SPLIT and is_cifar10(d["classes"], d["train_x"].shape[1:3])
    # PNG is lossless: test images come back exactly (ImageFolder orders by class, then file name).
    x, y = written["test"]
    order = sorted(range(len(y)), key=lambda i: (CLASSES[y[i]], i))
    np.testing.assert_array_equal(d["test_x"], x[order])
    # validation: a fifth of each training class, disjoint from train
    counts = np.bincount(written["train"][1], minlength=10)
    np.testing.assert_array_equal(np.bincount(d["valid_y"], minlength=10), counts // 5)
    assert len(d["train_x"]) + len(d["valid_x"]) == 100
    cache = tmp_path / image_folders.CACHE_NAME
    assert cache.exists() and not list(tmp_path.glob("*.tmp"))
    again = load_images(tmp_path)  # from the cache, same arrays
    for k in d:
        np.testing.assert_array_equal(d[k], again[k])
    # an edited tree invalidates the cache
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "test" / "cat" / "9999.png")
    assert len(load_images(tmp_path)["test_x"]) == 31


def test_folders_without_test_decode_and_cache_an_empty_test_split(tmp_path: Path):
    write_folders(tmp_path)
    for f in (tmp_path / "test").rglob("*.png"):
        f.unlink()
    for c in (tmp_path / "test").iterdir():
        c.rmdir()
    (tmp_path / "test").rmdir()
    d = load_images(tmp_path)
    assert d["test_x"].shape == (0, 32, 32, 3) and d["test_y"].shape == (0,)
    assert len(d["train_x"]) + len(d["valid_x"]) == 100
    again = load_images(tmp_path)  # from the cache
    assert again["test_x"].shape == (0, 32, 32, 3) and np.array_equal(again["train_x"], d["train_x"])


def test_a_damaged_cache_is_decoded_again_with_a_warning(tmp_path: Path, capsys):
    write_folders(tmp_path)
    first = load_images(tmp_path)
    cache = tmp_path / image_folders.CACHE_NAME
    good = cache.read_bytes()
    for damage in (good[: len(good) // 2], b"", b"PK\x03\x04junk"):  # cut short, emptied, garbage
        cache.write_bytes(damage)
        again = load_images(tmp_path)
        err = capsys.readouterr().err
        assert err.startswith(f"warning: {cache}: damaged cache (") and err.count("\n") == 1, err
        assert err.rstrip().endswith("decoding the images again")
        for k in first:
            np.testing.assert_array_equal(first[k], again[k])
        assert cache.read_bytes() != damage and not list(tmp_path.glob("*.tmp"))  # rebuilt, whole
        load_images(tmp_path)  # and read from it next time, silently
        assert capsys.readouterr().err == ""


@pytest.mark.timeout(120)  # a worker pool that hangs fails the test instead of stalling the suite
def test_parallel_decode_equals_serial_and_reports_bad_images(tmp_path: Path, monkeypatch):
    write_folders(tmp_path, n_train=300, n_test=10)
    paths = sorted(str(p) for p in (tmp_path / "train").rglob("*.jpg"))
    serial = image_folders.decode_images(paths, workers=1)
    monkeypatch.setattr(image_folders, "POOL_MIN_IMAGES", 0)
    pooled = image_folders.decode_images(paths, workers=2)  # 1024-image chunks: make them small to use both workers
    np.testing.assert_array_equal(serial, pooled)
    assert serial.shape == (300, 32, 32, 3) and serial.any()
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(
        image_folders.ImageDataError, match=rf"images of 2 sizes \(32x32 {re.escape(paths[0])}, 32x16 .*/small.png\)"
    ):
        image_folders.decode_images(paths + [str(tmp_path / "small.png")], workers=2)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(image_folders.ImageDataError, match="bad.png: not a readable image"):
        image_folders.decode_images(paths + [str(tmp_path / "bad.png")], workers=2)


def test_grayscale_images_become_three_equal_channels(tmp_path: Path):
    root = image_tree(tmp_path / "d", ["ant", "bee", "cow"], per_class=5, size=(40, 40), mode="L")
    Image.fromarray(np.full((40, 40, 3), (10, 20, 30), np.uint8)).save(root / "train" / "ant" / "rgb.png")  # mixed
    d = load_images(root)
    assert d["train_x"].shape[1:] == (40, 40, 3) and d["test_x"].shape[1:] == (40, 40, 3)
    gray = d["test_x"]  # all grayscale
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    all_train = np.concatenate([d["train_x"], d["valid_x"]])
    assert any((img == (10, 20, 30)).all() for img in all_train)  # the RGB image is kept in colour
