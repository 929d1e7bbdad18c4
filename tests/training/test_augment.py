"""Tests for lib/training/augment.py: the data order, NB101's pad-crop-flip as one gather, the normalisation."""

from __future__ import annotations

import numpy as np
import torch
from conftest import images

from lib.training import augment as A
from lib.training.images import RGB_MEAN, RGB_STD


def test_epoch_plan_is_a_pure_stream_of_permutations():
    n, batch, epochs = 100, 32, 5
    plans = [A.epoch_plan(7, e, n, batch) for e in range(epochs)]
    assert sum(p.shape[1] for p in plans) == epochs * n // batch  # NB101: int(epochs * n / batch) steps
    stream = np.concatenate([p[0].reshape(-1) for p in plans])
    for k in range(len(stream) // n):  # every full pass is a permutation
        assert sorted(stream[k * n : (k + 1) * n]) == list(range(n))
    np.testing.assert_array_equal(plans[3], A.epoch_plan(7, 3, n, batch))  # pure in (seed, epoch)
    assert not np.array_equal(plans[3], A.epoch_plan(8, 3, n, batch))
    assert plans[0][1:3].max() <= 8 and plans[0][3].max() == 1


def reference_crop(x: np.ndarray, dy: int, dx: int, flip: int) -> np.ndarray:
    """NB101's augmentation of one HxW image, in numpy: pad 4 with zeros, crop HxW at (dy, dx), flip."""
    h, w = x.shape[:2]
    crop = np.pad(x, ((4, 4), (4, 4), (0, 0)))[dy : dy + h, dx : dx + w]
    return np.flip(crop, axis=1) if flip else crop


def test_augment_matches_a_per_image_reference_pixel_for_pixel():
    """The one-gather crop/flip of a whole epoch against numpy pad + crop + flip, image by image:
    every offset 0..8 in both axes, both flips, repeated images, channels_last uint8 output."""
    x, _ = images(300, seed=3)
    padded = A.pad_for_crops(torch.from_numpy(x))
    plan = torch.from_numpy(A.epoch_plan(5, 2, len(x), 64))
    offsets = set()
    for j in range(plan.shape[1]):
        got = A.augment(padded, plan[:, j])
        assert got.dtype == torch.uint8 and got.is_contiguous(memory_format=torch.channels_last)
        for k, (i, dy, dx, flip) in enumerate(plan[:, j].T.tolist()):
            np.testing.assert_array_equal(got[k].permute(1, 2, 0).numpy(), reference_crop(x[i], dy, dx, flip))
            offsets.add((dy, dx, flip))
    assert len(offsets) > 120  # most of the 9 x 9 x 2 crops were checked


def test_augment_crops_and_flips_any_size():
    """A crop of the image's own size: 64x48 (width x height) images, the extreme offsets included."""
    x = np.random.default_rng(1).integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)
    padded = A.pad_for_crops(torch.from_numpy(x))
    assert padded.shape == (5, 56, 72, 3)
    plan = torch.tensor([[0, 1, 2, 3, 4], [0, 8, 3, 4, 1], [8, 0, 5, 4, 2], [0, 1, 0, 1, 1]])
    got = A.augment(padded, plan)
    assert got.shape == (5, 3, 48, 64)
    for j, (i, dy, dx, flip) in enumerate(plan.T.tolist()):
        np.testing.assert_array_equal(got[j].permute(1, 2, 0).numpy(), reference_crop(x[i], dy, dx, flip))


def test_normalize_uses_the_given_statistics_by_default_nb101s():
    x = torch.full((2, 3, 4, 4), 200, dtype=torch.uint8)
    got = A.normalize(x, *A.normalizer(torch.device("cpu")))
    want = (200 - np.array(RGB_MEAN)) / np.array(RGB_STD)
    np.testing.assert_allclose(got[0, :, 0, 0].numpy(), want, rtol=1e-6)
    assert got.shape == x.shape and got.dtype == torch.float32
    own = {"mean": [10.0, 20.0, 30.0], "std": [1.0, 2.0, 4.0]}
    np.testing.assert_allclose(A.normalize(x, *A.normalizer(torch.device("cpu"), own))[1, :, 3, 3], [190, 90, 42.5])
