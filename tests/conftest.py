"""Shared fixtures, and the cells and records that several test files build. The real data (the 20k
NB101 TFRecord, the CIFAR-10 JPEG tarball) is read from $NB101_SHARED_DATA, by default ../shared/data
beside the checkout (the Makefile's SHARED_DATA); tests that need it skip without it."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from lib import nb101_cell, nb101_space
from lib import nb101_records as R
from lib.nb101_convert import convert
from lib.nb101_schema import RECORD_FIELDS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NB101_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
REAL_TFRECORD = SHARED_DATA / "nb101_real_20k.tfrecord"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data {path} is absent (set NB101_SHARED_DATA to the folder that holds it)")
    return path


@pytest.fixture(scope="session")
def space():
    """The enumerated NB101 space, from the repo's cache (built on first use, ~1 min)."""
    return nb101_space.enumerate_space()


@pytest.fixture(scope="session")
def real_h5(tmp_path_factory):
    """The real 20k-cell TFRecord converted once per test session (skips without it)."""
    src = require(REAL_TFRECORD)
    dst = tmp_path_factory.mktemp("real") / "real.hdf5"
    convert(src, dst)
    return dst


@pytest.fixture(scope="session")
def cifar_jpegs(tmp_path_factory):
    """A few hundred real CIFAR-10 JPEGs in the tarball's own layout: the first 30 train and 10 test
    images of each class (skips without the tarball). Searches with real training run on these."""
    import tarfile

    root = tmp_path_factory.mktemp("cifar") / "cifar10-jpeg"
    quota = {"train": 30, "test": 10}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(require(CIFAR_JPEG)) as t:
        for member in t:
            parts = Path(member.name).parts  # cifar10-jpeg/<split>/<class>/<file>
            if not member.isfile() or len(parts) != 4 or parts[1] not in quota:
                continue
            key = parts[1], parts[2]
            if taken.get(key, 0) < quota[parts[1]]:
                taken[key] = taken.get(key, 0) + 1
                t.extract(member, root.parent, filter="data")
    return root


# ----------------------------------------------------------------------------- cells


def random_cells(count: int, seed: int = 0) -> list[nb101_cell.Cell]:
    """Valid cells of every size: a random path input→output plus random extra edges."""
    rng = np.random.default_rng(seed)
    cells = []
    while len(cells) < count:
        n = int(rng.integers(2, 8))
        m = np.triu(rng.random((n, n)) < 0.3, 1).astype(int)
        m[np.arange(n - 1), np.arange(1, n)] = 1
        ops = ["input", *[nb101_cell.OPS[i] for i in rng.integers(1, 4, n - 2)], "output"]
        try:
            cells.append(nb101_cell.make_cell(m, ops))
        except nb101_cell.InvalidSpecError:  # too many edges
            pass
    return cells


def nb101_hash(cell: nb101_cell.Cell) -> str:
    """NB101's reference hash_module, with Python-int labels as generate_graphs.py passes them."""
    from nasbench_pytorch.model import graph_util

    return graph_util.hash_module(cell.matrix, [nb101_cell.OP_TO_LABEL[o] for o in cell.ops])


# ----------------------------------------------------------------------------- NB101 records

HASH = "0123456789abcdef" * 2
ADJ = "0110000100010000"  # 4 vertices, row-major
OPS = "input,conv3x3-bn-relu,maxpool3x3,output"


def metrics_bytes(values=None, params=1234567, total_time=math.nan, checkpoint_path="") -> bytes:
    """Serialized ModelMetrics; values [3, 5] (current_epoch, *RECORD_FIELDS) per entry, NaN = unset."""
    values = np.arange(15.0).reshape(3, 5) / 16 if values is None else np.asarray(values, float)
    return R.encode_metrics_batch(values[None], np.array([params]), np.array([total_time]), checkpoint_path)[0]


def metrics_message(values, params=-1, total_time=math.nan, checkpoint_path="") -> R.ModelMetrics:
    """The same through the protobuf API, the reference."""
    m = R.ModelMetrics()
    for e, row in enumerate(values):
        ed = m.evaluation_data.add()
        for name, v in zip(("current_epoch", *RECORD_FIELDS), row, strict=True):
            if not math.isnan(v):
                setattr(ed, name, v)
        if e == 0 and checkpoint_path:
            ed.checkpoint_path = checkpoint_path
    if params >= 0:
        m.trainable_parameters = params
    if not math.isnan(total_time):
        m.total_time = total_time
    return m


# ----------------------------------------------------------------------------- predictors


@pytest.fixture(scope="session")
def demo_h5(space, tmp_path_factory):
    """A small HDF5 made the way `make demo` does (demo tool + converter): 400 real cells, synthetic
    but learnable 108-epoch labels, 3 repeats, no test accuracy missing."""
    from tools import make_demo_data

    tmp = tmp_path_factory.mktemp("demo")
    cells = make_demo_data.choose_cells(space, 400, seed=0)
    make_demo_data.write_demo(tmp / "demo.tfrecord", cells, budgets=(108,), repeats=3, seed=0)
    convert(tmp / "demo.tfrecord", tmp / "demo.hdf5")
    return tmp / "demo.hdf5"


@pytest.fixture(scope="session")
def cells(space):
    """Up to 40 cells of each size 2..7, spread over the enumerated space."""
    nv = space["num_vertices"]
    rows = [np.flatnonzero(nv == n) for n in range(2, 8)]
    idx = np.concatenate([r[np.unique(np.linspace(0, len(r) - 1, 40).astype(int))] for r in rows])
    return {k: v[idx] for k, v in space.items()}


# ----------------------------------------------------------------------------- search tables


def blank_cells(n: int) -> dict[str, np.ndarray]:
    """n placeholder cells (2 vertices, no edges): pools whose strategies never look at the cells."""
    cells = {"adjacency": np.zeros((n, 7, 7), np.int8), "operations": np.zeros((n, 7), np.int8)}
    return cells | {"num_vertices": np.full(n, 2)}


def table_of(labels: np.ndarray, seconds: np.ndarray | None = None, test=None):
    """A lib.budget.Table of blank cells answering `labels` [n, budgets, repeats], each query costing
    `seconds` (default 1); the truth is the 108-epoch mean, test 1 pp below unless given; hashes h0, h1, ..."""
    from lib.budget import Table

    n = len(labels)
    seconds = np.ones(labels.shape) if seconds is None else seconds
    truth = labels[:, -1].mean(1)
    test = truth - 0.01 if test is None else test
    return Table(blank_cells(n), labels, seconds, truth, test, np.array([f"h{i}" for i in range(n)]))
