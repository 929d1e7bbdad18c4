"""CIFAR-10 as NB101 used it, and any image-folder dataset the same way: the readers, the train / valid /
test split and the device-resident augmentation.

    from lib.training.images import load_images, epoch_plan, pad_for_crops, augment, normalizer
    d = load_images(Path("data/cifar10-jpeg"))   # uint8 NHWC train_x, valid_x, test_x + int64 labels, classes
    padded = pad_for_crops(torch.from_numpy(d["train_x"]).to(device))
    plan = torch.from_numpy(epoch_plan(seed, epoch, len(padded), 256)).to(device)
    norm = normalizer(device, normalization(d))
    x = normalize(augment(padded, plan[:, 0]), *norm)   # step 0's batch, float NCHW

Two on-disk formats: torchvision's CIFAR10 batches (`cifar-10-batches-py/`), or an image-folder
tree `train/<class>/*` (+ optionally `test/<class>/*`, with the same class folders), decoded once
and cached as uint8 beside it (CACHE_NAME; a damaged cache is decoded again, with a warning).
Without test/ the test split is empty. The classes are the data's: CIFAR-10's ten, or the tree's
class folders (at least two, none empty). The images may have any size, but one size for the whole
tree (a tree of mixed sizes is refused, naming a file of each size); they are converted to RGB as
torchvision's ImageFolder loader does (a grayscale image becomes three equal channels, alpha is
dropped). An image that cannot be read is named. d["valid_split"] says how validation was held out.

Augmentation is NB101's whatever the size: pad 4 with zeros, a random crop of the image's own size,
a random horizontal flip. Normalisation (`normalization`) uses NB101's CIFAR-10 mean and std for
CIFAR-10 (its ten classes in 32x32 images), else the per-channel mean and std of the training images.
The whole uint8 dataset lives on the device and crops/flips are one gather per batch (airbench
style). The data order and augmentation are a pure function of (seed, epoch).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import CIFAR10, ImageFolder
from tqdm import tqdm

from lib.util.devices import usable_cores
from lib.util.errors import UserError, one_line
from lib.util.outputs import save_npz_atomic
from lib.util.workers import in_workers

# nasbench lib/cifar.py: RGB_MEAN / RGB_STD on 0..255 pixels (CIFAR-10's true per-channel values).
RGB_MEAN = (125.31, 122.95, 113.87)
RGB_STD = (62.99, 62.09, 66.70)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CACHE_NAME = "cifar10-uint8.npz"
POOL_MIN_IMAGES = 4096  # fewer images decode faster in-process than a pool starts
PAD = 4  # NB101 pads 4 pixels, then crops the image's size (32x32 for CIFAR-10): offsets 0..8
SIZES_NAMED = 4  # a tree of mixed sizes: the sizes named in the error, one file each
# How validation is held out, as metrics.json records it (so a search on validation accuracy can cite it).
BATCHES_SPLIT = {
    "held_out_of": "data_batch_1..5",
    "fraction": 0.2,
    "per_class": False,
    "seed": None,
    "method": "data_batch_5 (the last fifth), as NB101",
}
FOLDER_SPLIT = {
    "held_out_of": "train/",
    "fraction": 0.2,
    "per_class": True,
    "seed": 0,
    "method": "numpy default_rng(0): a permutation of each class's images in class order, its first n // 5",
}


class ImageDataError(UserError):
    """No readable data under the given root, an unreadable image, or images of mixed sizes; the message says
    what was expected."""


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


def load_images(root: Path, download: bool = False) -> dict:
    """CIFAR-10 (or an image-folder tree) as uint8 NHWC images + int64 labels, split train / valid / test as
    NB101 does, the class names ("classes", label i is classes[i]): CIFAR-10's ten, or the tree's folders;
    and how validation was held out ("valid_split": BATCHES_SPLIT or FOLDER_SPLIT). ImageDataError for data
    that is absent or unreadable, an unreadable image (named), images of mixed sizes, an empty class
    folder, or fewer than two classes."""
    if download:
        existed = root.exists()
        try:
            CIFAR10(str(root), train=True, download=True)
        except (OSError, RuntimeError) as e:  # offline (URLError is an OSError), a failed checksum
            if not existed and root.is_dir() and not any(root.iterdir()):
                root.rmdir()  # torchvision made it for the download
            raise ImageDataError(f"--download: cannot fetch CIFAR-10 into {root} ({e})") from None
    if (root / "cifar-10-batches-py").is_dir():
        return split_batches(root)
    if (root / "train").is_dir():
        return split_folder(decode_folders(root))
    raise ImageDataError(
        f"no CIFAR-10 under --data-root {root}: expected either {root}/cifar-10-batches-py (torchvision's "
        f"CIFAR10; add --download when online) or an image-folder tree {root}/train/<class>/* (+ optionally "
        f"{root}/test/<class>/*) (e.g. cifar10-jpeg.tar.gz (CIFAR-10 as JPEGs) unpacked by "
        "tar -xzf cifar10-jpeg.tar.gz -C data/, then --data-root data/cifar10-jpeg)"
    )


def split_batches(root: Path) -> dict:
    """cifar-10-batches-py: train = data_batch_1..4, valid = data_batch_5 (the last fifth), test = test_batch."""
    try:
        train, test = CIFAR10Batches(str(root), train=True), CIFAR10Batches(str(root), train=False)
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as e:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise ImageDataError(f"{root}/cifar-10-batches-py: cannot read CIFAR-10's batches ({why})") from None
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
        "valid_split": BATCHES_SPLIT,
    }


def decode_folders(root: Path) -> dict[str, np.ndarray]:
    """Decode train/ and test/ (when there is one) with torchvision's ImageFolder once; cache as uint8 in
    root/CACHE_NAME. Without test/, test_x and test_y are empty.

    A cache that cannot be read (cut short, damaged) is decoded again, with a warning on stderr."""
    sets = {"train": image_folder(root / "train")}
    if (root / "test").exists():  # optional: a run without it reports no test accuracy
        sets["test"] = image_folder(root / "test", hint="; or remove test/ to train without a test set")
    if "test" in sets and sets["train"].classes != sets["test"].classes:
        only = sorted(set(sets["train"].classes) ^ set(sets["test"].classes))
        raise ImageDataError(f"{root}: train/ and test/ have different class folders ({', '.join(only)} in one only)")
    if len(sets["train"].classes) < 2:  # checked before any image is decoded
        names = ", ".join(sets["train"].classes)
        raise ImageDataError(f"{root}/train: one class folder ({names}); a classifier needs at least 2")
    if not (np.bincount(sets["train"].targets) // 5).any():  # split_folder holds out a fifth of each class
        raise ImageDataError(
            f"{root}/train: no valid images: validation takes a fifth of each class (5 images or more)"
        )
    # Fingerprint: relative paths and sizes, so an edited tree never loads a stale cache.
    h = hashlib.sha1()
    for ds in sets.values():
        for path, label in ds.samples:
            h.update(f"{os.path.relpath(path, root)}:{os.path.getsize(path)}:{label}\n".encode())
    cache = root / CACHE_NAME
    classes = {"classes": np.array(sets["train"].classes)}
    sizes = {"train": len(sets["train"].samples), "test": len(sets["test"].samples) if "test" in sets else 0}
    cached = read_cache(cache, h.hexdigest(), sizes)
    if cached is not None:
        return cached | classes
    # One call for both splits, so that train/ and test/ must share one image size too.
    x = decode_images([path for ds in sets.values() for path, _ in ds.samples], f"decoding {root.name}/")
    n = sizes["train"]
    out = {"fingerprint": np.array(h.hexdigest()), "train_x": x[:n], "test_x": x[n:]}
    out |= {f"{s}_y": np.array(sets[s].targets if s in sets else [], np.int64) for s in ("train", "test")}
    try:
        save_npz_atomic(cache, out)
    except OSError as e:  # read-only data dir: works, just decodes again next time
        print(f"note: could not cache decoded images at {cache} ({e})")
    return {k: v for k, v in out.items() if k != "fingerprint"} | classes


def image_folder(path: Path, hint: str = "") -> ImageFolder:
    """torchvision's ImageFolder of `path`; ImageDataError naming a class folder without images."""
    try:
        ds = ImageFolder(str(path), allow_empty=True)
    except FileNotFoundError:  # torchvision's word for a folder without class folders
        raise ImageDataError(f"{path}: no class folders (expected {path}/<class>/<image>{hint})") from None
    counts = np.bincount(np.array(ds.targets, np.int64), minlength=len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise ImageDataError(f"{path / empty[0]}: no images in this class folder (remove it, or add its images)")
    return ds


def read_cache(cache: Path, fingerprint: str, sizes: dict[str, int]) -> dict[str, np.ndarray] | None:
    """The decoded images cached for this tree, or None: absent, made for another tree, or unreadable
    (then a warning on stderr: it is decoded again and replaced). `sizes`: the images of each split."""
    if not cache.exists():
        return None
    keys = ("train_x", "train_y", "test_x", "test_y")
    try:
        with np.load(cache) as f:
            if str(f["fingerprint"]) != fingerprint:
                return None
            d = {k: f[k] for k in keys}
        hw = d["train_x"].shape[1:3]  # one size for every image of the tree
        for s, n in sizes.items():
            x = d[f"{s}_x"]
            if x.shape != (n, *hw, 3) or x.dtype != np.uint8 or d[f"{s}_y"].shape != (n,):
                raise ValueError(f"{s}_x holds {x.shape}, not the {n} RGB images of {s}/")
    except Exception as e:  # noqa: BLE001 - a damaged zip or array fails in many ways; all mean "decode again"
        print(f"warning: {cache}: damaged cache ({type(e).__name__}: {e}); decoding the images again", file=sys.stderr)
        return None
    return d


def decode_images(paths: list[str], desc: str = "decoding", workers: int | None = None) -> np.ndarray:
    """uint8 [N,H,W,3] of the image files, decoded by a process pool (all usable cores) when there are many.
    ImageDataError naming the file that cannot be read, or one file of each size when they differ."""
    workers = workers or usable_cores()
    chunks = [paths[i : i + 1024] for i in range(0, len(paths), 1024)]
    bar = tqdm(total=len(paths), desc=desc, mininterval=2, leave=False, disable=None)
    workers = 1 if len(paths) < POOL_MIN_IMAGES else min(workers, len(chunks))
    parts = []  # fork: the workers need nothing but PIL, and start at once
    for k, part in in_workers(_decode, chunks, workers=workers, what="image decoding", start="fork"):
        parts.append(part)  # in order; a worker's ImageDataError is raised here
        bar.update(len(chunks[k]))
    bar.close()
    first_of_size = {}  # (h, w) -> the first file of that size
    for _, firsts in parts:
        for hw, path in firsts.items():
            first_of_size.setdefault(hw, path)
    if len(first_of_size) > 1:
        raise ImageDataError(mixed_sizes(first_of_size))
    return np.concatenate([x for x, _ in parts]) if parts else np.empty((0, 32, 32, 3), np.uint8)


def mixed_sizes(first_of_size: dict[tuple[int, int], str]) -> str:
    """The error for images of several sizes: one file of each (SIZES_NAMED of them at most)."""
    named = [f"{w}x{h} {path}" for (h, w), path in list(first_of_size.items())[:SIZES_NAMED]]
    more = f", and {len(first_of_size) - SIZES_NAMED} more sizes" if len(first_of_size) > SIZES_NAMED else ""
    return (
        f"images of {len(first_of_size)} sizes ({', '.join(named)}{more}): every image of the data must have "
        "one size; resize them first"
    )


def _decode(paths: list[str]) -> tuple[np.ndarray | None, dict[tuple[int, int], str]]:
    """The chunk's images stacked (None when their sizes differ), and the first file of each size."""
    images, first_of_size = [], {}
    for path in paths:
        try:
            with Image.open(path) as f:
                img = np.asarray(f.convert("RGB"))  # as ImageFolder's loader: grayscale becomes 3 equal channels
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # empty, cut short, not an image
            raise ImageDataError(f"{path}: not a readable image ({one_line(e)}); remove or replace it") from None
        first_of_size.setdefault(img.shape[:2], path)
        images.append(img)
    return (np.stack(images) if len(first_of_size) == 1 else None), first_of_size


def split_folder(d: dict[str, np.ndarray]) -> dict:
    """Validation = a fixed fifth of each class of train/ (1000/class for CIFAR-10), like data_batch_5
    (FOLDER_SPLIT: floor(n / 5) of a class of n images; none of a class under 5)."""
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
        "valid_split": FOLDER_SPLIT,
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


def data_info(d: dict, nb101_norm: bool = False) -> dict:
    """What the data is, as metrics.json and ckpt.pt record it (and --resume holds against the data):
    its classes, image counts, image size [height, width], validation split and normalisation (NB101's
    CIFAR-10 values with nb101_norm)."""
    info = {
        "classes": [str(c) for c in d["classes"]],
        "images": {s: len(d[f"{s}_x"]) for s in ("train", "valid", "test")},
    }
    info["image_size"] = list(d["train_x"].shape[1:3])
    info["valid_split"] = dict(d["valid_split"])
    return info | {"normalization": nb101_normalization() if nb101_norm else normalization(d)}


def describe(info: dict) -> str:
    """data_info in a phrase: '10 classes, 40,000 / 10,000 / 10,000 train / valid / test images of 32x32'."""
    n, (h, w) = info["images"], info["image_size"]
    return (
        f"{len(info['classes'])} classes, {n['train']:,} / {n['valid']:,} / {n['test']:,} train / valid / test images "
        f"of {w}x{h}"
    )


def is_cifar10(d: dict) -> bool:
    """CIFAR-10's ten classes in 32x32 images: the data NB101's mean and std were measured on."""
    return tuple(str(c) for c in d["classes"]) == CIFAR10_CLASSES and d["train_x"].shape[1:] == (32, 32, 3)


def nb101_normalization() -> dict:
    return {"mean": list(RGB_MEAN), "std": list(RGB_STD), "of": "NB101's CIFAR-10 values"}


def normalization(d: dict) -> dict:
    """The per-channel mean and std (of 0..255 pixels) that normalize uses, as metrics.json records them.

    NB101's values for CIFAR-10, so a CIFAR-10 run is NB101's; for other data the training images' own
    (after validation is held out, before any --train-images subset), rounded to 4 decimals so that the
    recorded values are the ones used. A constant channel's std counts as 1 (no division by 0).
    """
    if is_cifar10(d):
        return nb101_normalization()
    x = d["train_x"]
    sums, squares = np.zeros(3), np.zeros(3)
    for i in range(0, len(x), 4096):  # float64 a slice at a time: a large dataset is not copied whole
        part = x[i : i + 4096].astype(np.float64)
        sums += part.sum((0, 1, 2))
        squares += np.square(part).sum((0, 1, 2))
    n = max(1, len(x) * x.shape[1] * x.shape[2])
    mean = sums / n
    std = np.maximum(np.sqrt(np.maximum(squares / n - mean**2, 0)), 1.0)
    return {
        "mean": [round(float(v), 4) for v in mean],
        "std": [round(float(v), 4) for v in std],
        "of": "the training images",
    }


def normalizer(device: torch.device, stats: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std of `stats` (normalization's; default NB101's RGB_MEAN and RGB_STD) as [1,3,1,1] tensors
    on `device`, for normalize."""
    stats = stats or nb101_normalization()
    return tuple(torch.tensor(stats[k], device=device).view(1, 3, 1, 1) for k in ("mean", "std"))


def normalize(x_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x_u8.float() - mean) / std
