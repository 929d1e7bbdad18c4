"""What every bench shares: the machine record and the real-data HDF5.

    from bench.common import machine, real_hdf5
    info = machine()            # CPU, cores, load average, versions, date (and the GPU, if any)
    data = real_hdf5()          # the real 20k cells (nb101_real_20k.tfrecord), converted once to data/real20k.hdf5

The real TFRecord is read from $NB101_REAL_TFRECORD, by default data/nb101_real_20k.tfrecord
(`make bench` sets it from the Makefile's SHARED_DATA). Run a bench from the repository root:
`python -m bench.predictors`.

Benches import this module and the toolkit's modules, never each other.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import h5py

from lib.nb101.schema import HDF5_SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
REAL_TFRECORD = Path(os.environ.get("NB101_REAL_TFRECORD", REPO / "data" / "nb101_real_20k.tfrecord"))
REAL_HDF5 = REPO / "data" / "real20k.hdf5"


def machine(device=None) -> dict:
    """The machine a bench ran on, with the load average at the time of the call."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_1_5_15": os.getloadavg(),
    }
    if "torch" in sys.modules or device is not None:
        import torch

        info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        if device is not None:
            info["device"] = str(device)
            if torch.device(device).type == "cuda":
                info |= {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    return info


def real_hdf5(path: Path = REAL_HDF5, tfrecord: Path = REAL_TFRECORD) -> Path:
    """The real-data HDF5, converted from the real TFRecord on first use, and again when the HDF5 schema changes."""
    if path.exists() and schema_version(path) == HDF5_SCHEMA_VERSION:
        return path
    if not tfrecord.exists():
        sys.exit(f"error: neither {path} nor {tfrecord} exists (set NB101_REAL_TFRECORD to the real TFRecord)")
    print(f"converting {tfrecord} -> {path}")
    converter = REPO / "tools" / "nasbench_tfrecord_converter.py"
    subprocess.run([sys.executable, str(converter), "--input", str(tfrecord), "--output", str(path)], check=True)
    return path


def schema_version(path: Path):
    """The HDF5's schema_version attribute; None for a file h5py cannot read."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("schema_version")
    except OSError:
        return None
