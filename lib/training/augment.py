"""The data order and NB101's augmentation and normalisation, on the device: one gather per batch.

    from lib.training.augment import epoch_plan, pad_for_crops, augment, normalizer, normalize
    padded = pad_for_crops(torch.from_numpy(d["train_x"]).to(device))   # uint8 NHWC, zero border
    plan = torch.from_numpy(epoch_plan(seed, epoch, len(padded), 256)).to(device)
    x = normalize(augment(padded, plan[:, 0]), *normalizer(device, info["normalization"]))  # step 0's batch

The whole uint8 dataset lives on the device (airbench style). The data order and the augmentation are
a pure function of (seed, epoch), so a resumed run replays them exactly and every DDP rank derives the
same global batches. Augmentation is NB101's whatever the image size: pad 4 with zeros, a random crop of
the image's own size, a random horizontal flip.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lib.training.images import nb101_normalization

PAD = 4  # NB101 pads 4 pixels, then crops the image's size (32x32 for CIFAR-10): offsets 0..8


def epoch_plan(seed: int, epoch: int, n: int, batch: int) -> np.ndarray:
    """[4, steps, batch] int64: image index, crop dy, crop dx, flip of each example of `epoch`.

    Like NB101's shuffle_and_repeat, a stream of fresh per-pass permutations is cut into batches
    across pass boundaries, and epoch e runs the steps e*n//batch .. (e+1)*n//batch - 1
    (int(epochs * n / batch) steps in all, as NB101).
    """
    s0, s1 = epoch * n // batch, (epoch + 1) * n // batch
    p0, p1 = s0 * batch, s1 * batch
    if p1 == p0:
        return np.zeros((4, 0, batch), np.int64)
    passes = range(p0 // n, (p1 - 1) // n + 1)
    draws = []
    for k in passes:
        rng = np.random.default_rng([seed, k])
        draws.append(np.stack([rng.permutation(n), *rng.integers(0, 2 * PAD + 1, (2, n)), rng.integers(0, 2, n)]))
    stream = np.concatenate(draws, axis=1)[:, p0 - passes[0] * n : p1 - passes[0] * n]
    return stream.reshape(4, s1 - s0, batch)


def pad_for_crops(x_u8: torch.Tensor) -> torch.Tensor:
    """[N,H,W,3] -> [N,H+8,W+8,3] with a zero border, as NB101 pads the raw pixels (32x32 -> 40x40)."""
    return F.pad(x_u8, (0, 0, PAD, PAD, PAD, PAD))


def augment(padded: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """Random HxW crops of the zero-padded (H+8)x(W+8) uint8 NHWC images, flipped where plan[3]; one gather.

    Same as NB101's pad-4 (with 0 before normalisation), random_crop, random_flip_left_right; the crop
    has the image's own size (32x32 for CIFAR-10). Returns uint8 [B,3,H,W] in channels_last memory layout.
    """
    idx, dy, dx, flip = plan
    h, w = padded.shape[1] - 2 * PAD, padded.shape[2] - 2 * PAD
    rows = dy[:, None] + torch.arange(h, device=padded.device)
    ar = torch.arange(w, device=padded.device)
    cols = dx[:, None] + torch.where(flip[:, None].bool(), w - 1 - ar, ar)  # flipping the crop = reading it backwards
    return padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalizer(device: torch.device, stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std of `stats` (lib.training.images.normalization's; default NB101's RGB_MEAN and RGB_STD)
    as [1,3,1,1] tensors on `device`, for normalize."""
    stats = stats or nb101_normalization()
    return tuple(torch.tensor(stats[k], device=device).view(1, 3, 1, 1) for k in ("mean", "std"))


def normalize(x_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x_u8.float() - mean) / std
