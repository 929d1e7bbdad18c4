"""Shared fixtures. Real data lives in ../shared/data beside the checkout; tests that need it skip without it."""

from pathlib import Path

import pytest

from lib import nb101_space

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_TFRECORD = SHARED_DATA / "nb101_real_20k.tfrecord"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def space():
    """The enumerated NB101 space, from the repo's cache (built on first use, ~1 min)."""
    return nb101_space.enumerate_space()


@pytest.fixture(scope="session")
def real_h5(tmp_path_factory):
    """../shared/data/nb101_real_20k.tfrecord converted once per session (skips without it)."""
    from tools import nasbench_tfrecord_converter

    src = require(REAL_TFRECORD)
    dst = tmp_path_factory.mktemp("real") / "real.hdf5"
    assert nasbench_tfrecord_converter.main(["--input", str(src), "--output", str(dst)]) == 0
    return dst


# ----------------------------------------------------------------------------- predictors (issue 3)


@pytest.fixture(scope="session")
def demo_h5(space, tmp_path_factory):
    """A small HDF5 made the way `make demo` does (demo tool + converter): 400 real cells, synthetic
    but learnable 108-epoch labels, 3 repeats, no test accuracy missing."""
    from tools import make_demo_data, nasbench_tfrecord_converter

    tmp = tmp_path_factory.mktemp("demo")
    cells = make_demo_data.choose_cells(space, 400, seed=0)
    make_demo_data.write_demo(tmp / "demo.tfrecord", cells, budgets=(108,), repeats=3, seed=0)
    nasbench_tfrecord_converter.convert(tmp / "demo.tfrecord", tmp / "demo.hdf5")
    return tmp / "demo.hdf5"
