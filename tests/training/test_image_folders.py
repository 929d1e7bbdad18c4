"""Tests for trainer.py on image-folder datasets of one's own: any image size and number of classes, no
test/, grayscale images, the recorded validation split and normalisation, and the one-line errors for
images of mixed sizes and unreadable images.

The trees are tiny (3 classes of 10 images) and the network is reduced, so each run takes a second or two.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

import trainer
from lib.training import images as cifar10
from lib.util.errors import USAGE_ERROR, exit_on_user_error

CELL = ["--adjacency", "[[0,1,1,0],[0,0,1,1],[0,0,0,1],[0,0,0,0]]", "--ops", "input,conv3x3-bn-relu,maxpool3x3,output"]
TINY = ["--stem-channels", "4", "--num-stacks", "1", "--cells-per-stack", "1", "--epochs", "1", "--batch-size", "8"]
CLASSES = ["ant", "bee", "cow"]


def write_tree(root, size=(40, 40), per_class=(10, 4), mode="RGB", ext="png", test=True):
    """root/train/<class>/NN.<ext> (+ root/test/<class>/NN.<ext>): `per_class` images a class in each split,
    of `size` (width, height); each class has its own mean colour, so the images differ by class."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test") if test else ("train",), per_class):
        for label, c in enumerate(CLASSES):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(60 * label + rng.normal(40, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).convert(mode).save(root / split / c / f"{i:02d}.{ext}")
    return root


def run(root, out, *argv: str) -> dict:
    return trainer.main([*CELL, *TINY, "--data-root", str(root), "--out", str(out), *argv])


def refused(argv: list[str], capsys) -> str:
    """trainer.py's main as the script runs it: the message of its one-line error, exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        exit_on_user_error("trainer.py", trainer.main, argv)
    err = capsys.readouterr().err
    assert e.value.code == USAGE_ERROR and err.count("\n") == 1 and err.startswith("trainer.py: error: "), err
    return err.removeprefix("trainer.py: error: ").rstrip("\n")


# ----------------------------------------------------------------------------- sizes, classes, the record


@pytest.mark.parametrize("size", [(28, 28), (40, 40), (64, 48)], ids=["28x28", "40x40", "64x48"])
def test_any_image_size_trains_and_is_recorded(tmp_path, size):
    root = write_tree(tmp_path / "d", size=size, ext="jpg" if size == (28, 28) else "png")
    m = run(root, tmp_path / "run", "--num-stacks", "2")  # 2 stacks: a downsampling max-pool in between
    w, h = size
    assert m["status"] == "done" and m["network"]["num_classes"] == 3
    data = m["data"]
    assert data["classes"] == CLASSES and data["image_size"] == [h, w]
    assert data["images"] == {"train": 24, "valid": 6, "test": 12}  # valid: 10 // 5 of each class
    assert data["valid_split"] == {
        "held_out_of": "train/",
        "fraction": 0.2,
        "per_class": True,
        "seed": 0,
        "method": "numpy default_rng(0): a permutation of each class's images in class order, its first n // 5",
    }
    assert data["normalization"]["of"] == "the training images"
    assert all(np.isfinite(v) for v in (m["final"]["valid_acc"], m["final"]["test_acc"]))
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    assert ckpt["data"] == data and ckpt["model"]["classifier.weight"].shape[0] == 3


def test_the_normalisation_is_the_training_images_own(tmp_path):
    """The mean and std of the training split (validation held out), recorded, and the ones used."""
    root = write_tree(tmp_path / "d")
    d = cifar10.load_images(root)
    got = cifar10.normalization(d)
    x = d["train_x"].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(got["mean"], x.mean(0), atol=1e-4)
    np.testing.assert_allclose(got["std"], x.std(0), atol=1e-4)
    assert got["mean"] != list(cifar10.RGB_MEAN) and got["mean"][0] > 60  # mean colours 40, 100, 160
    mean, std = cifar10.normalizer(torch.device("cpu"), got)
    assert mean.flatten().tolist() == pytest.approx(got["mean"]) and std.flatten().tolist() == pytest.approx(got["std"])
    # a constant channel: std 1, not a division by zero
    flat = {"classes": np.array(CLASSES), "train_x": np.full((4, 8, 8, 3), 7, np.uint8)}
    assert cifar10.normalization(flat) == {"mean": [7.0] * 3, "std": [1.0] * 3, "of": "the training images"}
    # CIFAR-10's classes in 32x32 images: NB101's values, whatever the images hold
    cifar = {"classes": np.array(cifar10.CIFAR10_CLASSES), "train_x": np.zeros((4, 32, 32, 3), np.uint8)}
    assert cifar10.normalization(cifar) == cifar10.nb101_normalization()
    assert (
        cifar10.normalization(cifar | {"train_x": np.zeros((4, 28, 28, 3), np.uint8)})["of"]
        != "NB101's CIFAR-10 values"
    )


def test_augment_crops_and_flips_any_size():
    """pad 4 + a crop of the image's own size + flip, against numpy, on 64x48 (width x height) images."""
    x = np.random.default_rng(1).integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)
    padded = cifar10.pad_for_crops(torch.from_numpy(x))
    assert padded.shape == (5, 56, 72, 3)
    plan = torch.tensor([[0, 1, 2, 3, 4], [0, 8, 3, 4, 1], [8, 0, 5, 4, 2], [0, 1, 0, 1, 1]])
    got = cifar10.augment(padded, plan)
    assert got.shape == (5, 3, 48, 64)
    for j, (i, dy, dx, flip) in enumerate(plan.T.tolist()):
        ref = np.pad(x[i], ((4, 4), (4, 4), (0, 0)))[dy : dy + 48, dx : dx + 64]
        np.testing.assert_array_equal(got[j].permute(1, 2, 0).numpy(), ref[:, ::-1] if flip else ref)


def test_grayscale_images_become_three_equal_channels(tmp_path):
    root = write_tree(tmp_path / "d", mode="L")
    Image.fromarray(np.full((40, 40, 3), (10, 20, 30), np.uint8)).save(root / "train" / "ant" / "rgb.png")  # mixed
    d = cifar10.load_images(root)
    assert d["train_x"].shape[1:] == (40, 40, 3) and d["test_x"].shape[1:] == (40, 40, 3)
    gray = d["test_x"]  # all grayscale
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    all_train = np.concatenate([d["train_x"], d["valid_x"]])
    assert any((img == (10, 20, 30)).all() for img in all_train)  # the RGB image is kept in colour
    m = run(root, tmp_path / "run")
    assert m["status"] == "done" and m["data"]["image_size"] == [40, 40]


# ----------------------------------------------------------------------------- no test/


def test_no_test_folder_reports_no_test_accuracy(tmp_path, capsys):
    root = write_tree(tmp_path / "d", test=False)
    out = tmp_path / "run"
    m = run(root, out, "--epochs", "2", "--stop-after", "1", "--eval-images", "3")
    printed = capsys.readouterr().out
    assert "/ no test images of 3 classes, 40x40" in printed and "| test - |" in printed
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    saved = json.loads(text)
    assert saved["status"] == "stopped" and saved["data"]["images"] == {"train": 24, "valid": 6, "test": 0}
    epoch = saved["epochs"][0]
    assert epoch["test_loss"] is None and epoch["test_acc"] is None and 0 <= epoch["valid_acc"] <= 1
    assert saved["summary"] == f"after 1 epochs: valid {100 * epoch['valid_acc']:.2f}% test -"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --resume continues it the same way; the checkpoint's data (no test) matches the data again
    resumed = trainer.main(["--resume", str(out)])
    assert resumed["status"] == "done" and [e["test_acc"] for e in resumed["epochs"]] == [None, None]
    assert capsys.readouterr().out.splitlines()[-1].endswith("test -")
    assert m["data"] == resumed["data"]


def test_a_run_from_before_the_normalisation_was_recorded_resumes_with_nb101s(tmp_path):
    """Such a run was normalised with NB101's CIFAR-10 values: its continuation keeps them."""
    root = write_tree(tmp_path / "d")
    out = tmp_path / "run"
    run(root, out, "--epochs", "2", "--stop-after", "1")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    ckpt["data"] = {k: ckpt["data"][k] for k in ("classes", "images")}  # what such a checkpoint records
    torch.save(ckpt, out / "ckpt.pt")
    resumed = trainer.main(["--resume", str(out)])
    assert resumed["status"] == "done" and resumed["data"]["normalization"] == cifar10.nb101_normalization()


def test_no_test_folder_refuses_eval_images_beyond_valid(tmp_path, capsys):
    root = write_tree(tmp_path / "d", test=False)
    says = refused([*CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o"), "--eval-images", "7"], capsys)
    assert says == "--eval-images 7: the data holds 6 valid images (0 takes them all)"


def test_an_empty_test_folder_is_named(tmp_path, capsys):
    root = write_tree(tmp_path / "d", test=False)
    (root / "test").mkdir()
    says = refused([*CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o")], capsys)
    assert says == f"{root}/test: no class folders (expected {root}/test/<class>/<image>; or remove test/ to " + (
        "train without a test set)"
    )


# ----------------------------------------------------------------------------- errors


def test_mixed_sizes_name_one_file_of_each(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    Image.fromarray(np.zeros((40, 41, 3), np.uint8)).save(root / "train" / "bee" / "wide.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "test" / "cow" / "short.png")
    says = refused([*CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o")], capsys)
    assert says == (
        f"images of 3 sizes (40x40 {root}/train/ant/00.png, 41x40 {root}/train/bee/wide.png, "
        f"40x30 {root}/test/cow/short.png): every image of the data must have one size; resize them first"
    )
    assert not (root / cifar10.CACHE_NAME).exists()


def test_train_and_test_of_different_sizes_are_refused(tmp_path):
    write_tree(tmp_path / "a", size=(40, 40), test=False)
    write_tree(tmp_path / "b", size=(32, 32))
    (tmp_path / "b" / "train").rename(tmp_path / "train")
    (tmp_path / "a" / "train").rename(tmp_path / "b" / "train")
    with pytest.raises(cifar10.ImageDataError, match=r"images of 2 sizes \(40x40 .*/train/ant/00.png, 32x32 .*/test/"):
        cifar10.load_images(tmp_path / "b")


def test_images_too_small_for_the_stacks(tmp_path, capsys):
    root = write_tree(tmp_path / "d", size=(3, 3))
    argv = [*CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o"), "--num-stacks", "3"]
    says = refused(argv, capsys)
    assert says.endswith(
        "3x3 images are too small for --num-stacks 3 (each stack after the first halves them; 4x4 at least)"
    )


@pytest.mark.parametrize("kind", ["text", "cut"])
def test_an_unreadable_image_is_named(tmp_path, capsys, kind):
    root = write_tree(tmp_path / "d", ext="jpg")
    bad = root / "train" / "bee" / "x.jpg"
    if kind == "text":
        bad.write_text("not an image\n")
    else:
        good = (root / "train" / "bee" / "03.jpg").read_bytes()
        bad.write_bytes(good[: len(good) // 2])  # a JPEG cut short
    says = refused([*CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o")], capsys)
    assert says.startswith(f"{bad}: not a readable image (") and says.endswith("); remove or replace it")


@pytest.mark.slow
def test_the_command_exits_2_with_one_line_for_an_unreadable_image(tmp_path):
    root = write_tree(tmp_path / "d", per_class=(5, 1))
    (root / "train" / "ant" / "x.jpg").write_text("a text file named x.jpg\n")
    cmd = [sys.executable, "trainer.py", *CELL, *TINY, "--data-root", str(root), "--out", str(tmp_path / "o")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"trainer.py: error: {root}/train/ant/x.jpg: not a readable image (cannot identify")
    assert r.stderr.count("\n") == 1
