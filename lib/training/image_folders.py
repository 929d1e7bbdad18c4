"""An image-folder tree read as uint8 arrays: its files listed as torchvision's ImageFolder lists them,
decoded once (by a process pool when there are many) and cached beside it.

    from lib.training.image_folders import decode_folders
    d = decode_folders(Path("data/cifar10-jpeg"))   # uint8 NHWC train_x, test_x, int64 train_y, test_y, classes

The tree is `train/<class>/*` (+ optionally `test/<class>/*`, with the same class folders). Images are
converted to RGB as ImageFolder's loader does (grayscale becomes three equal channels, alpha is dropped)
and must all have one size. The cache (CACHE_NAME) is keyed by the files' paths and sizes, so an edited
tree is decoded again; so is a damaged cache, with a warning. ImageDataError, naming what is wrong: no
class folders, an empty class folder, train/ and test/ of other classes, fewer than two classes, too few
images to hold out validation, an image that cannot be read, images of several sizes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from lib.util.devices import usable_cores
from lib.util.errors import UserError, one_line
from lib.util.outputs import save_npz_atomic
from lib.util.workers import in_workers

CACHE_NAME = "cifar10-uint8.npz"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
POOL_MIN_IMAGES = 4096  # fewer images decode faster in-process than a pool starts
SIZES_NAMED = 4  # a tree of mixed sizes: the sizes named in the error, one file each


class ImageDataError(UserError):
    """No readable data under the given root, an unreadable image, or images of mixed sizes; the message says
    what was expected."""


class ImageFiles(NamedTuple):
    """An image-folder split as torchvision's ImageFolder lists it: its class folders, and (path, label) for
    each image file (label i is classes[i])."""

    classes: list[str]
    samples: list[tuple[str, int]]

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def decode_folders(root: Path) -> dict[str, np.ndarray]:
    """Decode the images of train/ and test/ (when there is one) once; cache them as uint8 in root/CACHE_NAME.
    Without test/, test_x and test_y are empty.

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


def image_folder(path: Path, hint: str = "") -> ImageFiles:
    """The class folders of `path` and their image files, listed as torchvision's ImageFolder lists them:
    class folders in name order, each walked in name order (links followed), the files with an image
    extension. ImageDataError for a folder without class folders, or a class folder without images."""
    try:
        classes = sorted(entry.name for entry in os.scandir(path) if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        classes = []
    if not classes:
        raise ImageDataError(f"{path}: no class folders (expected {path}/<class>/<image>{hint})")
    samples = []
    for label, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(os.path.join(path, name), followlinks=True)):
            paths = (os.path.join(folder, f) for f in sorted(files))
            samples += [(p, label) for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
    found = ImageFiles(classes, samples)
    counts = np.bincount(np.array(found.targets, np.int64), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise ImageDataError(f"{path / empty[0]}: no images in this class folder (remove it, or add its images)")
    return found


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
