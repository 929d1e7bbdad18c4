"""Tiny CIFAR-10 data in the real on-disk formats, for the tests of lib/cifar10.py and trainer.py.

cifar-10-batches-py pickles (Python 2 str keys, so b'data' / b'labels' with encoding='bytes' as NB101
reads them, 'data' with latin1 as torchvision does) and JPEG / PNG image folders.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose mean colour depends on the label, so a network can learn them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    colour = np.stack([(y * 25) % 256, (y * 70) % 256, (255 - y * 25) % 256], 1)[:, None, None, :]
    x = np.clip(colour + rng.normal(0, 40, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return x, y


class Py2Str(bytes):
    """A Python 2 `str`: pickled as BINSTRING, which is how the real CIFAR-10 pickles hold their keys."""


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler, so a dispatch entry can be added
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj: Py2Str) -> None:
        n = len(obj)
        op = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(op + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def write_batches(root: Path, per_batch: int = 64, n_test: int = 64) -> dict[str, np.ndarray]:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; returns what was written."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for i, name in enumerate(names):
        x, y = images(n_test if name == "test_batch" else per_batch, seed=i)
        entry = {
            Py2Str(b"batch_label"): Py2Str(f"{name} of 6".encode()),
            Py2Str(b"labels"): [int(v) for v in y],
            Py2Str(b"data"): x.transpose(0, 3, 1, 2).reshape(len(x), 3072),  # row = R plane, G plane, B plane
            Py2Str(b"filenames"): [Py2Str(f"img_{i}_{j}.png".encode()) for j in range(len(x))],
        }
        with open(d / name, "wb") as f:
            Py2Pickler(f, protocol=2).dump(entry)
        written[name] = (x, y)
    meta = {
        Py2Str(b"label_names"): [Py2Str(c.encode()) for c in CLASSES],
        Py2Str(b"num_vis"): 3072,
        Py2Str(b"num_cases_per_batch"): per_batch,
    }
    with open(d / "batches.meta", "wb") as f:
        Py2Pickler(f, protocol=2).dump(meta)
    return written


def write_folders(root: Path, n_train: int = 100, n_test: int = 30) -> dict[str, np.ndarray]:
    """root/train/<class>/NNNN.jpg (lossy, like cifar10-jpeg.tar.gz (CIFAR-10 as JPEGs)) and
    root/test/<class>/NNNN.png."""
    out = {}
    for split, n, ext in (("train", n_train, "jpg"), ("test", n_test, "png")):
        x, y = images(n, seed=len(split))
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            path = root / split / CLASSES[label] / f"{i:04d}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
        out[split] = (x, y)
    return out
