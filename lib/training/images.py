"""CIFAR-10 as NB101 used it, and any image-folder dataset the same way: the two formats, the train / valid /
test split, and what the data is (its classes, image counts and size, split and normalisation).

    from lib.training.images import load_images, data_info, describe
    d = load_images(Path("data/cifar10-jpeg"))   # uint8 NHWC train_x, valid_x, test_x + int64 labels, classes
    info = data_info(d)                          # as metrics.json and ckpt.pt record it
    print(describe(info))                        # 10 classes, 40,000 / 10,000 / 10,000 train / valid / test ...

Two on-disk formats: torchvision's CIFAR10 batches (`cifar-10-batches-py/`), or an image-folder tree
`train/<class>/*` (+ optionally `test/<class>/*`), decoded once and cached beside it
(lib.training.image_folders). Without test/ the test split is empty. The classes are the data's:
CIFAR-10's ten, or the tree's class folders (at least two). d["valid_split"] says how validation was
held out. Normalisation (`normalization`) uses NB101's CIFAR-10 mean and std for CIFAR-10 (its ten
classes in 32x32 images), else the per-channel mean and std of the training images. The augmentation
on the device is lib.training.augment's.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from lib.training.image_folders import IMAGE_EXTENSIONS, ImageDataError, decode_folders

# nasbench lib/cifar.py: RGB_MEAN / RGB_STD on 0..255 pixels (CIFAR-10's true per-channel values).
RGB_MEAN = (125.31, 122.95, 113.87)
RGB_STD = (62.99, 62.09, 66.70)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
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
            fetch_cifar10(root)
        except (OSError, RuntimeError) as e:  # offline (URLError is an OSError), a failed checksum
            if not existed and root.is_dir() and not any(root.iterdir()):
                root.rmdir()  # torchvision made it for the download
            raise ImageDataError(f"--download: cannot fetch CIFAR-10 into {root} ({e})") from None
    if (root / "cifar-10-batches-py").is_dir():
        return split_batches(root)
    if (root / "train").is_dir():
        return split_folder(decode_folders(root))
    raise ImageDataError(not_data(root))


ARCHIVES = (".tar.gz", ".tgz", ".tar")
EXPECTED = "train/<class>/* or cifar-10-batches-py/"  # what --data-root holds


def not_data(root: Path) -> str:
    """Why `root` holds neither format, as the one line to show: which case it is (no such folder, a file,
    an archive, an empty folder, the train/ folder itself, one of its class folders, class folders without
    train/, data one folder down) and what to do."""
    what = f"--data-root {root}"
    if not root.exists():
        return f"{what}: no such folder (give the folder that holds {EXPECTED})"
    if not root.is_dir():
        if root.name.endswith(ARCHIVES):
            return (
                f"{what}: an archive, not a folder (unpack it: tar -xf {root} -C data/, and give the folder it makes)"
            )
        return f"{what}: a file, not a folder (give the folder that holds {EXPECTED})"
    entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    if not entries:
        return f"{what}: an empty folder (put {EXPECTED} in it)"
    if (root / "train").exists():
        return f"{what}: its train is a file, not the folder train/<class>/*"
    if root.name in ("train", "test") and (root.parent / "train").is_dir():
        return f"{what}: the {root.name}/ folder itself; give the folder above it (--data-root {root.parent})"
    if root.parent.name in ("train", "test") and (root.parent.parent / "train").is_dir():
        split, top = root.parent.name, root.parent.parent
        return f"{what}: a class folder of {split}/; give the folder above {split}/ (--data-root {top})"
    below = [p for p in sorted(root.iterdir()) if (p / "train").is_dir() or (p / "cifar-10-batches-py").is_dir()]
    if below:
        return f"{what}: no {EXPECTED} in it, but {below[0]} has (--data-root {below[0]})"
    archives = [name for name in entries if name.endswith(ARCHIVES)]
    if archives:
        return f"{what}: no {EXPECTED} in it, only {archives[0]} (unpack it: tar -xf {root / archives[0]} -C {root})"
    if any(is_class_folder(p) for p in root.iterdir()):
        return f"{what}: class folders, but no train/ above them (the tree is {root}/train/<class>/*)"
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    return f"{what}: no {EXPECTED} in it (it holds {shown})"


def is_class_folder(path: Path) -> bool:
    """A folder with image files in it (a class folder of an image-folder tree)."""
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


def fetch_cifar10(root: Path) -> None:
    """torchvision's download of CIFAR-10's batches into root, checked against their md5s (imported here:
    torchvision's import alone takes seconds, and only --download needs it)."""
    from torchvision.datasets import CIFAR10

    CIFAR10(str(root), train=True, download=True)


def split_batches(root: Path) -> dict:
    """cifar-10-batches-py: train = data_batch_1..4, valid = data_batch_5 (the last fifth), test = test_batch."""
    folder = root / "cifar-10-batches-py"
    try:
        x, y = read_batches(folder, BATCHES[:5])
        test_x, test_y = read_batches(folder, BATCHES[5:])
        with open(folder / "batches.meta", "rb") as f:
            classes = pickle.load(f, encoding="latin1")["label_names"]
    except (OSError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as e:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise ImageDataError(f"{folder}: cannot read CIFAR-10's batches ({why})") from None
    n_valid = len(x) // 5  # five equal batches
    return {
        "train_x": x[:-n_valid],
        "train_y": y[:-n_valid],
        "valid_x": x[-n_valid:],
        "valid_y": y[-n_valid:],
        "test_x": test_x,
        "test_y": test_y,
        "classes": np.array(classes),
        "valid_split": BATCHES_SPLIT,
    }


def read_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The pickled batches `names` as torchvision's CIFAR10 reads them (without its md5 check, which would
    refuse subsets and re-encodings in the same format): uint8 [N,32,32,3] images and int64 labels."""
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        images.append(batch["data"])
        labels.extend(batch["labels"])
    return np.vstack(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, np.int64)


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


# ----------------------------------------------------------------------------- what the data is


def data_info(d: dict) -> dict:
    """What the data is, as metrics.json and ckpt.pt record it (and --resume holds against the data):
    its classes, image counts, image size [height, width], validation split and normalisation."""
    info = {
        "classes": [str(c) for c in d["classes"]],
        "images": {s: len(d[f"{s}_x"]) for s in ("train", "valid", "test")},
    }
    info["image_size"] = list(d["train_x"].shape[1:3])
    info["valid_split"] = dict(d["valid_split"])
    return info | {"normalization": normalization(d)}


def describe(info: dict) -> str:
    """data_info in a phrase: '10 classes, 40,000 / 10,000 / 10,000 train / valid / test images of 32x32'."""
    n, (h, w) = info["images"], info["image_size"]
    return (
        f"{len(info['classes'])} classes, {n['train']:,} / {n['valid']:,} / {n['test']:,} train / valid / test images "
        f"of {w}x{h}"
    )


def is_cifar10(classes, image_size) -> bool:
    """CIFAR-10's ten classes in 32x32 images: the data NB101's mean and std were measured on, and the data
    NB101's record can stand beside."""
    return tuple(str(c) for c in classes) == CIFAR10_CLASSES and tuple(image_size) == (32, 32)


def nb101_normalization() -> dict:
    return {"mean": list(RGB_MEAN), "std": list(RGB_STD), "of": "NB101's CIFAR-10 values"}


def normalization(d: dict) -> dict:
    """The per-channel mean and std (of 0..255 pixels) that normalize uses, as metrics.json records them.

    NB101's values for CIFAR-10, so a CIFAR-10 run is NB101's; for other data the training images' own
    (after validation is held out, before any --train-images subset), rounded to 4 decimals so that the
    recorded values are the ones used. A constant channel's std counts as 1 (no division by 0).
    """
    if is_cifar10(d["classes"], d["train_x"].shape[1:3]):
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
