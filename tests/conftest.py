"""Shared fixtures. Real data lives in ../shared/data beside the checkout; tests that need it skip without it."""

from pathlib import Path

import pytest

import nb101_space

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
