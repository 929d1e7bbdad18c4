"""CIFAR-10 as NB101 used it: the readers, its train / valid / test split and the device-resident augmentation.

    from lib.cifar10 import load_cifar10, epoch_plan, pad_for_crops, augment, normalizer, normalize
    d = load_cifar10(Path("data/cifar10-jpeg"))   # uint8 NHWC train_x, valid_x, test_x + int64 labels, classes
    padded = pad_for_crops(torch.from_numpy(d["train_x"]).to(device))
    plan = torch.from_numpy(epoch_plan(seed, epoch, len(padded), 256)).to(device)
    x = normalize(augment(padded, plan[:, 0]), *normalizer(device))   # step 0's batch, float NCHW

Two on-disk formats: torchvision's CIFAR10 batches (`cifar-10-batches-py/`), or an image-folder
tree `train/<class>/*` + `test/<class>/*`, decoded once and cached as uint8 beside it (CACHE_NAME;
a damaged cache is decoded again, with a warning). The classes are the data's: CIFAR-10's ten, or
the tree's class folders (at least two, none empty); an image that cannot be read is named.
The whole uint8 dataset lives on the device and crops/flips are one gather per batch (airbench
style). The data order and augmentation are a pure function of (seed, epoch).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import CIFAR10, ImageFolder
from tqdm import tqdm

from lib.errors import UserError
from lib.outputs import save_npz_atomic

# nasbench lib/cifar.py: RGB_MEAN / RGB_STD on 0..255 pixels (CIFAR-10's true per-channel values).
RGB_MEAN = (125.31, 122.95, 113.87)
RGB_STD = (62.99, 62.09, 66.70)
CACHE_NAME = "cifar10-uint8.npz"
POOL_MIN_IMAGES = 4096  # fewer images decode faster in-process than a pool starts
PAD = 4  # NB101 pads 4 pixels, then crops 32x32: offsets 0..8


class CIFAR10Error(UserError):
    """No readable CIFAR-10 under the given root, or an image that is not 32x32; the message says what was
    expected."""


class CIFAR10Batches(CIFAR10):
    """torchvision's CIFAR10 reader, checking that the batch files exist instead of their md5s.

    The md5s would reject subsets and re-encodings in the same on-disk format (and test fixtures);
    download=True still goes through torchvision's own checked download first.
    """

    def _check_integrity(self) -> bool:
        files = [f for f, _ in self.train_list + self.test_list]
        return all((Path(self.root) / self.base_folder / f).exists() for f in files)

    def _load_meta(self) -> None:  # torchvision's, without the md5
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]


# ----------------------------------------------------------------------------- reading and splitting


def load_cifar10(root: Path, download: bool = False) -> dict[str, np.ndarray]:
    """CIFAR-10 as uint8 NHWC images + int64 labels, split train / valid / test as NB101 does, and the
    class names ("classes", label i is classes[i]): CIFAR-10's ten, or an image-folder tree's folders.
    CIFAR10Error for data that is absent or unreadable, an unreadable image (named), an empty class
    folder, or fewer than two classes."""
    if download:
        existed = root.exists()
        try:
            CIFAR10(str(root), train=True, download=True)
        except (OSError, RuntimeError) as e:  # offline (URLError is an OSError), a failed checksum
            if not existed and root.is_dir() and not any(root.iterdir()):
                root.rmdir()  # torchvision made it for the download
            raise CIFAR10Error(f"--download: cannot fetch CIFAR-10 into {root} ({e})") from None
    if (root / "cifar-10-batches-py").is_dir():
        return split_batches(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return split_folder(decode_folders(root))
    raise CIFAR10Error(
        f"no CIFAR-10 under --data-root {root}: expected either {root}/cifar-10-batches-py (torchvision's "
        f"CIFAR10; add --download when online) or an image-folder tree {root}/train/<class>/* + "
        f"{root}/test/<class>/* (e.g. cifar10-jpeg.tar.gz (CIFAR-10 as JPEGs) unpacked by "
        "tar -xzf cifar10-jpeg.tar.gz -C data/, then --data-root data/cifar10-jpeg)"
    )


def split_batches(root: Path) -> dict[str, np.ndarray]:
    """cifar-10-batches-py: train = data_batch_1..4, valid = data_batch_5 (the last fifth), test = test_batch."""
    try:
        train, test = CIFAR10Batches(str(root), train=True), CIFAR10Batches(str(root), train=False)
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as e:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise CIFAR10Error(f"{root}/cifar-10-batches-py: cannot read CIFAR-10's batches ({why})") from None
    x, y = np.asarray(train.data), np.asarray(train.targets, np.int64)
    n_valid = len(x) // 5  # five equal batches
    return {
        "train_x": x[:-n_valid],
        "train_y": y[:-n_valid],
        "valid_x": x[-n_valid:],
        "valid_y": y[-n_valid:],
        "test_x": np.asarray(test.data),
        "test_y": np.asarray(test.targets, np.int64),
        "classes": np.array(train.classes),
    }


def decode_folders(root: Path) -> dict[str, np.ndarray]:
    """Decode train/ and test/ with torchvision's ImageFolder once; cache as uint8 in root/CACHE_NAME.

    A cache that cannot be read (cut short, damaged) is decoded again, with a warning on stderr."""
    sets = {s: image_folder(root / s) for s in ("train", "test")}
    if sets["train"].classes != sets["test"].classes:
        only = sorted(set(sets["train"].classes) ^ set(sets["test"].classes))
        raise CIFAR10Error(f"{root}: train/ and test/ have different class folders ({', '.join(only)} in one only)")
    if len(sets["train"].classes) < 2:  # checked before any image is decoded
        names = ", ".join(sets["train"].classes)
        raise CIFAR10Error(f"{root}/train: one class folder ({names}); a classifier needs at least 2")
    if not (np.bincount(sets["train"].targets) // 5).any():  # split_folder holds out a fifth of each class
        raise CIFAR10Error(f"{root}/train: no valid images: validation takes a fifth of each class (5 images or more)")
    # Fingerprint: relative paths and sizes, so an edited tree never loads a stale cache.
    h = hashlib.sha1()
    for ds in sets.values():
        for path, label in ds.samples:
            h.update(f"{os.path.relpath(path, root)}:{os.path.getsize(path)}:{label}\n".encode())
    cache = root / CACHE_NAME
    classes = {"classes": np.array(sets["train"].classes)}
    cached = read_cache(cache, h.hexdigest(), {s: len(ds.samples) for s, ds in sets.items()})
    if cached is not None:
        return cached | classes
    out = {"fingerprint": np.array(h.hexdigest())}
    for s, ds in sets.items():
        out[f"{s}_x"] = decode_images([path for path, _ in ds.samples], f"decoding {s}/")
        out[f"{s}_y"] = np.array(ds.targets, np.int64)
    try:
        save_npz_atomic(cache, out)
    except OSError as e:  # read-only data dir: works, just decodes again next time
        print(f"note: could not cache decoded images at {cache} ({e})")
    return {k: v for k, v in out.items() if k != "fingerprint"} | classes


def image_folder(path: Path) -> ImageFolder:
    """torchvision's ImageFolder of `path`; CIFAR10Error naming a class folder without images."""
    try:
        ds = ImageFolder(str(path), allow_empty=True)
    except FileNotFoundError:  # torchvision's word for a folder without class folders
        raise CIFAR10Error(f"{path}: no class folders (expected {path}/<class>/<image>)") from None
    counts = np.bincount(np.array(ds.targets, np.int64), minlength=len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise CIFAR10Error(f"{path / empty[0]}: no images in this class folder (remove it, or add its images)")
    return ds


def read_cache(cache: Path, fingerprint: str, sizes: dict[str, int]) -> dict[str, np.ndarray] | None:
    """The decoded images cached for this tree, or None: absent, made for another tree, or unreadable
    (then a warning on stderr: it is decoded again and replaced)."""
    if not cache.exists():
        return None
    keys = ("train_x", "train_y", "test_x", "test_y")
    try:
        with np.load(cache) as f:
            if str(f["fingerprint"]) != fingerprint:
                return None
            d = {k: f[k] for k in keys}
        for s, n in sizes.items():
            if d[f"{s}_x"].shape != (n, 32, 32, 3) or d[f"{s}_x"].dtype != np.uint8 or d[f"{s}_y"].shape != (n,):
                raise ValueError(f"{s}_x holds {d[f'{s}_x'].shape}, not the {n} images of {s}/")
    except Exception as e:  # noqa: BLE001 - a damaged zip or array fails in many ways; all mean "decode again"
        print(f"warning: {cache}: damaged cache ({type(e).__name__}: {e}); decoding the images again", file=sys.stderr)
        return None
    return d


def decode_images(paths: list[str], desc: str = "decoding", workers: int | None = None) -> np.ndarray:
    """uint8 [N,32,32,3] of the image files, decoded by a process pool (all usable cores) when there are many."""
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    chunks = [paths[i : i + 1024] for i in range(0, len(paths), 1024)]
    bar = tqdm(total=len(paths), desc=desc, mininterval=2, leave=False, disable=None)
    if workers < 2 or len(paths) < POOL_MIN_IMAGES:
        parts = [_decode(c, bar) for c in chunks]
    else:  # fork: the workers need nothing but PIL, and start at once
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=ctx) as pool:
            parts = []
            for part in pool.map(_decode, chunks):  # in order; a worker's CIFAR10Error is raised here
                parts.append(part)
                bar.update(len(part))
    bar.close()
    return np.concatenate(parts) if parts else np.empty((0, 32, 32, 3), np.uint8)


def _decode(paths: list[str], bar=None) -> np.ndarray:
    x = np.empty((len(paths), 32, 32, 3), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as f:
                img = np.asarray(f.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # empty, cut short, not an image
            raise CIFAR10Error(f"{path}: not a readable image ({e}); remove or replace it") from None
        if img.shape != (32, 32, 3):
            raise CIFAR10Error(f"{path}: {img.shape[1]}x{img.shape[0]} image, CIFAR-10 needs 32x32")
        x[i] = img
        if bar is not None:
            bar.update()
    return x


def split_folder(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validation = a fixed fifth of each class of train/ (1000/class for CIFAR-10), like data_batch_5."""
    rng, y = np.random.default_rng(0), d["train_y"]  # fixed: the split never depends on --seed
    valid = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: (y == c).sum() // 5] for c in np.unique(y)])
    is_valid = np.zeros(len(y), bool)
    is_valid[valid] = True
    return {
        "train_x": d["train_x"][~is_valid],
        "train_y": y[~is_valid],
        "valid_x": d["train_x"][is_valid],
        "valid_y": y[is_valid],
        "test_x": d["test_x"],
        "test_y": d["test_y"],
        "classes": d["classes"],
    }


def subset(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of n images (all if n is 0); the same for every seed and run."""
    if not n or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(0).permutation(len(x))[:n])
    return x[keep], y[keep]


# ----------------------------------------------------------------------------- order and augmentation


def epoch_plan(seed: int, epoch: int, n: int, batch: int) -> np.ndarray:
    """[4, steps, batch] int64: image index, crop dy, crop dx, flip of each example of `epoch`.

    A pure function of (seed, epoch), so a resumed run replays the exact data and every DDP rank
    derives the same global batches. Like NB101's shuffle_and_repeat, a stream of fresh
    per-pass permutations is cut into batches across pass boundaries, and epoch e runs the
    steps e*n//batch .. (e+1)*n//batch - 1 (int(epochs * n / batch) steps in all, as NB101).
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
    """[N,32,32,3] -> [N,40,40,3] with a zero border, as NB101 pads the raw pixels."""
    return F.pad(x_u8, (0, 0, PAD, PAD, PAD, PAD))


def augment(padded: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """Random 32x32 crops of the zero-padded 40x40 uint8 NHWC images, flipped where plan[3]; one gather.

    Same as NB101's pad-4 (with 0 before normalisation), random_crop, random_flip_left_right.
    Returns uint8 [B,3,32,32] in channels_last memory layout.
    """
    idx, dy, dx, flip = plan
    ar = torch.arange(32, device=padded.device)
    rows = dy[:, None] + ar
    cols = dx[:, None] + torch.where(flip[:, None].bool(), 31 - ar, ar)  # flipping the crop = reading it backwards
    return padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalizer(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB_MEAN and RGB_STD as [1,3,1,1] tensors on `device`, for normalize."""
    return tuple(torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (RGB_MEAN, RGB_STD))


def normalize(x_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x_u8.float() - mean) / std
