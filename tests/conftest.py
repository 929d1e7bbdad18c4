"""Shared fixtures, and the cells and records that several test files build. The real data (the 20k
NB101 TFRecord, the CIFAR-10 JPEG tarball) is read from $NB101_SHARED_DATA, by default ../shared/data
beside the checkout (the Makefile's SHARED_DATA); tests that need it fail without it."""

import contextlib
import fcntl
import importlib
import math
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

from lib.nb101 import cell as nb101_cell
from lib.nb101 import space as nb101_space
from lib.nb101.network import trainable_parameters
from lib.nb101.schema import HDF5_SCHEMA_VERSION, RECORD_FIELDS
from lib.tfrecord import records as R
from lib.tfrecord.convert import convert
from lib.util.errors import USAGE_ERROR, exit_on_user_error

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker per core: one torch thread each, not two fighting for one core
    import torch

    torch.set_num_threads(1)
SHARED_DATA = Path(os.environ.get("NB101_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
REAL_TFRECORD = SHARED_DATA / "nb101_real_20k.tfrecord"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def run_script(script: str, *args, cwd: Path = REPO, env: dict | None = None, timeout: float = 600):
    """`python SCRIPT ARGS` as a user types it, in a process of its own; its output captured."""
    cmd = [sys.executable, str(REPO / script), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_main(prog: str, main, *args) -> int:
    """The exit status of `python PROG ARGS`, with main run in this process (lib.util.errors.exit_on_user_error)."""
    try:
        return exit_on_user_error(prog, main, [str(a) for a in args])
    except SystemExit as e:
        return e.code


def require(path: Path) -> Path:
    """The real data file at `path`; its absence fails the test (a set-up step is missing), never skips it."""
    if not path.exists():
        pytest.fail(f"real data {path} is absent: set NB101_SHARED_DATA to the folder that holds it", pytrace=False)
    return path


@pytest.fixture(scope="session")
def space():
    """The enumerated NB101 space with every hash, from the repo's cache. The first worker process to
    need it builds the cache (the hashes: about 25 s on 2 cores) while the others wait for it."""
    cache = nb101_space.DEFAULT_SPACE_CACHE
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_name(cache.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
    images of each class (fails without the tarball). Searches with real training, and trainer.py's test on
    real images, run on these."""
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


@pytest.fixture(scope="session")
def ray_address():
    """One real local Ray cluster for the session's tests of the Ray engine, which join it by address:
    `ray start --head --block` in a process group of its own (2 CPUs, a small object store), ended with
    its group at the end. Token authentication off: a local cluster of the tests' own."""
    with socket.socket() as s:  # a port free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    cmd += ["--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000"]
    env = os.environ | {"RAY_AUTH_MODE": "disabled"}
    pipe = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    head = subprocess.Popen(cmd, env=env, start_new_session=True, **pipe)
    said = []
    for line in head.stdout:  # until it says it is up, or ends
        said.append(line)
        if "Ray runtime started" in line:
            break
    assert head.poll() is None, "`ray start --head` failed:\n" + "".join(said[-20:])
    threading.Thread(target=head.stdout.read, daemon=True).start()  # its further output, never a full pipe
    try:
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the cluster's processes as it ends
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its group is left
        head.wait()


@pytest.fixture
def one_ray_at_a_time():
    """The tests that run trials on Ray take turns, also across pytest-xdist workers (2 cores)."""
    with open(Path(tempfile.gettempdir()) / "nb101-ray-tests.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
        fcntl.flock(f, fcntl.LOCK_UN)


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


# ----------------------------------------------------------------------------- HDF5 files


def write_h5(path: Path, metrics: np.ndarray, cells: dict | None = None, version=HDF5_SCHEMA_VERSION, synthetic=None):
    """An HDF5 in the converter's schema: len(metrics) cells, `cells` (padded arrays and hashes such as
    rows_of's, or a list of Cells) or else a 3-vertex chain each; their parameters by the closed form."""
    n = len(metrics)
    if cells is None:
        cells = [nb101_cell.make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])] * n
    if isinstance(cells, list):
        adj, ops = map(np.stack, zip(*[c.padded() for c in cells]))
        cells = {
            "adjacency": adj,
            "operations": ops,
            "num_vertices": np.array([c.num_vertices for c in cells], np.int8),
        }
        cells["hash"] = np.array([f"{i:032x}" for i in range(n)])
    adj, ops, nv = cells["adjacency"], cells["operations"], cells["num_vertices"]
    with h5py.File(path, "w") as f:
        f["hash"] = np.asarray(cells["hash"]).astype("S32")
        f["num_vertices"], f["adjacency"], f["operations"] = nv, adj, ops
        f["trainable_parameters"] = trainable_parameters(adj, ops, nv).astype(np.int32)
        f["metrics"] = np.asarray(metrics, np.float32)
        if version is not None:
            f.attrs["schema_version"] = version
        if synthetic is not None:
            f.attrs["synthetic_labels"] = synthetic
    return path


def rows_of(space: dict, rows) -> dict:
    """The enumerated space's cells `rows`, as write_h5 takes them."""
    return {k: space[k][rows] for k in ("adjacency", "operations", "num_vertices", "hash")}


def final_accuracies(val, test=None) -> np.ndarray:
    """[N,4,3,2,4] metrics whose 108-epoch final val (and test) accuracies are `val` / `test` ([N] or [N,3]);
    every other value NaN."""
    m = np.full((len(val), 4, 3, 2, 4), np.nan, np.float32)
    m[:, 3, :, 1, 2] = np.asarray(val).reshape(len(val), -1)
    if test is not None:
        m[:, 3, :, 1, 3] = np.asarray(test).reshape(len(test), -1)
    return m


# ----------------------------------------------------------------------------- predictors


@pytest.fixture(scope="session")
def demo_h5(space, tmp_path_factory):
    """A small HDF5 made the way `make demo` does (demo tool + converter): 400 real cells, synthetic
    but learnable 108-epoch labels, 3 repeats, no test accuracy missing."""
    from tools import make_demo_data

    tmp = tmp_path_factory.mktemp("demo")
    cells = make_demo_data.choose_cells(space, 400, seed=0)
    make_demo_data.write_demo(tmp / "demo.tfrecord", cells, epochs=(108,), repeats=3, seed=0)
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


class Graph:
    """A search pool's neighbourhood given by hand; mutate() takes the first neighbour and records the parent."""

    kind = "a graph"

    def __init__(self, edges: dict[int, list[int]]):
        self.edges, self.parents = edges, []

    def neighbours(self, row):
        return np.array(self.edges[row])

    def mutate(self, row, rng):
        self.parents.append(row)
        return self.edges[row][0]


def pool_of(n: int, neighbourhood=None):
    """A lib.search.ask_tell.Pool of n blank cells, with the neighbourhood given (e.g. a Graph)."""
    from lib.search.ask_tell import Pool

    pool = Pool(blank_cells(n))
    if neighbourhood is not None:
        pool.__dict__["neighbourhood"] = neighbourhood  # the cached property, given
    return pool


def step(strategy, values) -> tuple[int, int]:
    """One ask and tell: the strategy's first cell, told values[row]."""
    (row, epochs), *_ = strategy.ask()
    strategy.tell(row, epochs, values[row])
    return row, epochs


def table_of(labels: np.ndarray, seconds: np.ndarray | None = None, test=None):
    """A lib.search.table.Table of blank cells answering `labels` [n, epochs, repeats], each query costing
    `seconds` (default 1); the truth is the 108-epoch mean, test 1 pp below unless given; hashes h0, h1, ..."""
    from lib.search.report import Truth
    from lib.search.table import Table

    n = len(labels)
    seconds = np.ones(labels.shape) if seconds is None else seconds
    val = labels[:, -1].mean(1)
    truth = Truth(np.array([f"h{i}" for i in range(n)]), val, val - 0.01 if test is None else test)
    return Table(blank_cells(n), labels, seconds, truth)


# ----------------------------------------------------------------------------- image data
# Tiny CIFAR-10 data in the real on-disk formats: cifar-10-batches-py pickles (Python 2 str keys, so
# b'data' / b'labels' with encoding='bytes' as NB101 reads them, 'data' with latin1 as torchvision
# does) and JPEG / PNG image folders.

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


# ----------------------------------------------------------------------------- refusals: the sweep of wrong inputs
# Each case runs a script's main in this process, as `python SCRIPT ARGS` runs it (exit_on_user_error), from
# a folder that holds its inputs and an existing output, and asserts: exit status 2, exactly one line on
# stderr, `SCRIPT: error: ...` naming what is wrong, no file or temp file left behind, and every file that
# was there byte-identical.

SWEEP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PROGS = {  # a script's name in a refusal's test, its name in messages and the module of its main
    "converter": ("nasbench_tfrecord_converter.py", "tools.nasbench_tfrecord_converter"),
    "demo": ("make_demo_data.py", "tools.make_demo_data"),
    "train": ("train.py", "train"),
    "search": ("search.py", "search"),
    "budgeted_search": ("budgeted_search.py", "budgeted_search"),
    "trainer": ("trainer.py", "trainer"),
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (links not followed) with a file's bytes, None for a folder or link."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def refused(script: str, argv: list[str], folder: Path, capsys) -> str:
    """Run SCRIPT's main on argv in `folder`; assert the one-line refusal that changes nothing; its message."""
    prog, module = PROGS[script]
    main = importlib.import_module(module).main
    before = snapshot(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        exit_on_user_error(prog, main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == USAGE_ERROR, err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert snapshot(folder) == before  # nothing new (no temp file either), nothing changed or gone
    return err[len(prog) + 9 : -1]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working folder, the current directory of the case."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


LONE = {"--download", "--no-channels-last", "--recompute", "--frobnicate", "--quiet", "--space-all"}


def command(base: list[str], argv: list) -> list[str]:
    """`base` with the case's flags replacing its own (a None value drops one) and the others after them;
    what follows `--` is passed as it is."""
    cut = argv.index("--") if "--" in argv else len(argv)
    argv, tail = argv[:cut], argv[cut:]

    def pairs(a: list) -> list[tuple]:
        out, i = [], 0
        while i < len(a):
            lone = a[i] in LONE or i + 1 == len(a)
            out.append((a[i],) if lone else (a[i], a[i + 1]))
            i += 1 if lone else 2
        return out

    given = pairs(argv)
    mine = {p[0]: p for p in given}
    kept = [mine.pop(p[0], p) for p in pairs(base)]
    rest = [p for p in given if p[0] in mine]
    return [str(a) for p in kept + rest if p[-1] is not None for a in p] + [str(a) for a in tail]


def setup(folder: Path, steps) -> None:
    """Make what a case needs in `folder`: ("file", name[, text]), ("dir", name), ("copy", src, name),
    ("link", target, name)."""
    for step in steps:
        kind, *a = step
        if kind == "file":
            (folder / a[0]).parent.mkdir(parents=True, exist_ok=True)
            (folder / a[0]).write_text(a[1] if len(a) > 1 else "mine\n")
        elif kind == "dir":
            (folder / a[0]).mkdir(parents=True, exist_ok=True)
        elif kind == "copy":
            (shutil.copytree if Path(a[0]).is_dir() else shutil.copy)(a[0], folder / a[1])
        elif kind == "link":
            os.symlink(a[0], folder / a[1])


# ----------------------------------------------------------------------------- fixtures: inputs the cases misuse


@pytest.fixture(scope="session")
def tfrecord(cells, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "demo.tfrecord"
    importlib.import_module("tools.make_demo_data").write_demo(
        path, {k: v[:30] for k, v in cells.items()}, epochs=(108,)
    )
    return path


@pytest.fixture(scope="session")
def predictor(demo_h5, tmp_path_factory) -> Path:
    """A train.py run (mlp, 2 epochs) on demo_h5: its folder."""
    run = tmp_path_factory.mktemp("sweep") / "run"
    with contextlib.chdir(run.parent):  # its runs/latest goes there, not into the checkout's runs/
        importlib.import_module("train").main(
            ["--data", str(demo_h5), "--model", "mlp", "--epochs", "2", "--quiet", "--out", str(run)]
        )
    return run


@pytest.fixture(scope="session")
def cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_batches(root)
    return root


CELL = ["--adjacency", "[[0,1,1,0],[0,0,1,1],[0,0,0,1],[0,0,0,0]]", "--ops", "input,conv3x3-bn-relu,maxpool3x3,output"]
OTHER_CELL = ["--adjacency", "[[0,1],[0,0]]", "--ops", "input,output"]
TINY = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1", "--batch-size", "64", "--epochs", "2"]


@pytest.fixture(scope="session")
def trainer_runs(cifar, tmp_path_factory) -> dict[str, Path]:
    """Two trainer.py runs stopped after epoch 1 of 2 (resumable), of two different cells."""
    root = tmp_path_factory.mktemp("trainer_runs")
    for name, cell in (("run", CELL), ("other", OTHER_CELL)):
        importlib.import_module("trainer").main(
            [*cell, *TINY, "--stop-after", "1", "--data-root", str(cifar), "--out", str(root / name)]
        )
    return {"run": root / "run", "other": root / "other"}


def corrupt(kind: str):
    """An image-folder tree of 10 classes with one damaged image train/cat/bad.jpg: empty, junk, or a JPEG
    cut short."""

    def make(root: Path) -> Path:
        image_tree(root, CLASSES)
        bad = root / "train" / "cat" / "bad.jpg"
        if kind == "cut":
            Image.fromarray(images(1, seed=0)[0][0]).save(bad)
            bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
        else:
            bad.write_bytes(b"" if kind == "empty" else b"\xff\xd8\xff\xe0 not a jpeg" * 10)
        return root

    return make


def tree(classes, **kw):
    return lambda root: image_tree(root, classes, **kw)


def other_test_classes(root: Path) -> Path:
    image_tree(root, CLASSES)
    shutil.rmtree(root / "test" / "cat")
    return root


def image_tree(
    root: Path,
    classes: list[str],
    per_class: int = 5,
    empty: str | None = None,
    size: tuple[int, int] = (32, 32),
    test: bool = True,
    mode: str = "RGB",
    ext: str = "png",
) -> Path:
    """root/train/<class>/N.<ext> and (with test) root/test/<class>/N.<ext>: per_class random images of `size`
    (width, height) in PIL `mode` each (+ an empty class folder `empty` in both)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test") if test else ("train",):
        (root / split).mkdir(parents=True)
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).convert(mode).save(root / split / c / f"{i}.{ext}")
        if empty:
            (root / split / empty).mkdir()
    return root
