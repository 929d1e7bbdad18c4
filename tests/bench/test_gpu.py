"""Tests for bench/gpu.sh, trainer.py measured on a GPU: its --smoke run end to end on the CPU, where it finds
its inputs, and its input errors.

The smoke run goes the whole path a CUDA machine goes (a CIFAR-10 tarball unpacked, a TFRecord
converted, bench/trainer.py, trainer.py twice, a search of one real trial), with a tiny network and 256
images; it is the one test that runs bench/gpu.sh as a command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_main, write_batches

from lib.nb101.cell import make_cell
from tools import make_demo_data

CELLS = [
    make_cell(
        [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    ),
    make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"]),
    make_cell([[0, 1], [0, 0]], ["input", "output"]),
]


def gpu_sh(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = ["bash", str(REPO / "bench" / "gpu.sh"), *argv]
    return subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A CIFAR-10 tarball (cifar-10-batches-py, 320 + 64 images) and a demo TFRecord of CELLS (synthetic labels)."""
    write_batches(tmp_path / "src")
    with tarfile.open(tmp_path / "cifar.tar.gz", "w:gz") as t:
        t.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    pads = [c.padded() for c in CELLS]
    cells = {
        "adjacency": np.stack([p[0] for p in pads]),
        "operations": np.stack([p[1] for p in pads]),
        "num_vertices": np.array([c.num_vertices for c in CELLS], np.int8),
        "hash": np.array([c.hash for c in CELLS]),
    }
    order = np.argsort(cells["hash"])  # hash order, as NB101's files
    make_demo_data.write_demo(tmp_path / "demo.tfrecord", {k: v[order] for k, v in cells.items()})
    return tmp_path / "cifar.tar.gz", tmp_path / "demo.tfrecord"


@pytest.mark.slow
def test_smoke_runs_every_step_on_the_cpu(inputs, tmp_path: Path):
    cifar, tfrecord = inputs
    out = tmp_path / "gpu.json"
    dirs = ["--data-dir", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--out", str(out)]
    r = gpu_sh("--smoke", "--cifar", str(cifar), "--nb101", str(tfrecord), *dirs)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    g = json.loads(out.read_text())
    assert g["status"] == "complete" and g["smoke"] and g["torch"] and g["budget_s"] == 540
    assert [s["status"] for s in g["steps"].values()] == ["ok"] * 5
    assert (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_5").exists()  # unpacked
    assert g["steps"]["prepare"]["nb101"] == str(tmp_path / "data" / "demo.hdf5")  # converted
    # (a): the baseline and each lever measured; CUDA graphs and the host wait said to need a GPU
    a = g["speed"]
    assert set(a["rows"]) == {"baseline", "fp32", "bf16"} and a["best"] == g["lever"] in ("fp32", "bf16")
    assert all(row["images_per_s"] > 0 for row in a["rows"].values()) and a["speedup"] > 0
    assert set(a["evaluation"]) == {"500", "2500"} and "host wait per step" in a["skipped"]
    # (b): two measured epochs of the median-size cell, extrapolated to 108
    b = g["epochs"]
    assert b["cell"]["hash"] == "f4f70a97275d1c8636268845a5167803" and len(b["epoch_log"]) == b["epochs_measured"] == 2
    assert b["extrapolated_108_epochs_s"] == pytest.approx(b["first_epoch_s"] + 107 * b["steady_epoch_s"])
    # (c): the demo file's best cell (highest 108-epoch validation), beside its SYNTHETIC record
    c = g["fidelity"]
    from dataset import load_nb101

    nb = load_nb101(tmp_path / "data" / "demo.hdf5")
    assert c["cell"]["hash"] == nb.hash[int(np.nanargmax(nb.labels("val", 108, "mean")))]
    assert c["run_status"] == "done" and c["epochs_done"] == c["epochs"] == 4 and len(c["epoch_log"]) == 4
    assert c["nb101_val"] == pytest.approx(np.mean(nb.metrics[nb.index_of(c["cell"]["hash"]), 0, :, 1, 2]))
    assert c["valid_minus_nb101_pp"] == pytest.approx(100 * (c["valid_acc"] - c["nb101_val"]))
    assert c["nb101_labels"] == "SYNTHETIC (demo data)" and "SYNTHETIC labels" in c["summary"]
    assert (tmp_path / "work" / "fidelity" / "curves.png").exists()
    assert "(c) best cell" in r.stdout and f"wrote {out}" in r.stdout
    # (d): a search of one real trial
    d = g["search"]
    assert d["trials"] == d["done"] == 1 and d["trials_per_hour"] == pytest.approx(3600 / d["wall_s"])
    assert "(d) search with real training: 1 trials" in r.stdout


def test_a_missing_input_is_one_line_status_2_and_recorded(tmp_path: Path, capsys):
    from bench import gpu

    tfrecord = tmp_path / "never-read.tfrecord"  # --cifar is looked for first
    out = tmp_path / "gpu.json"
    dirs = ["--data-dir", tmp_path / "data", "--work", tmp_path / "work", "--out", out]
    assert (
        run_main("bench/gpu.sh", gpu.main, "--smoke", "--cifar", tmp_path / "none.tar.gz", "--nb101", tfrecord, *dirs)
        == 2
    )
    assert capsys.readouterr().err == f"bench/gpu.sh: error: --cifar {tmp_path}/none.tar.gz: no such file or folder\n"
    saved = json.loads(out.read_text())
    assert saved["status"] == "failed" and saved["error"] == f"--cifar {tmp_path}/none.tar.gz: no such file or folder"


def test_an_unreadable_tarball_leaves_nothing_half_unpacked(tmp_path: Path):
    from bench import gpu

    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(gpu.InputError, match=f"^--cifar {tmp_path}/junk.tar.gz: not a readable tarball"):
        gpu.cifar_root(tmp_path / "junk.tar.gz", tmp_path / "data")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_a_broken_nasbench_pytorch_in_deps_names_both_remedies(tmp_path: Path, monkeypatch):
    """A broken copy given with --deps shadows the installed package; the error says how to install or copy it."""
    from bench import gpu

    (tmp_path / "deps" / "nasbench_pytorch").mkdir(parents=True)
    (tmp_path / "deps" / "nasbench_pytorch" / "__init__.py").write_text("raise ImportError('broken copy')")
    monkeypatch.syspath_prepend(str(tmp_path / "deps"))  # what main() does with --deps
    for name in [m for m in sys.modules if m.split(".")[0] == "nasbench_pytorch"]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    with pytest.raises(gpu.InputError) as e:
        gpu.require_nasbench_pytorch(str(tmp_path / "deps"))
    assert str(e.value).startswith(f"nasbench_pytorch cannot be imported (not in --deps {tmp_path / 'deps'} either)")
    assert "broken copy" in str(e.value) and "pip install nasbench_pytorch==1.3.1" in str(e.value)


def test_default_inputs_are_looked_for_in_the_inputs_folder(tmp_path: Path, monkeypatch):
    from bench import gpu

    monkeypatch.delenv(gpu.INPUTS_ENV, raising=False)
    assert gpu.parse_args([]).inputs == str(REPO / "data")
    monkeypatch.setenv(gpu.INPUTS_ENV, str(tmp_path))
    assert (
        gpu.parse_args([]).inputs == str(tmp_path) and gpu.parse_args(["--inputs", "elsewhere"]).inputs == "elsewhere"
    )

    def nb101() -> Path:
        return gpu.find_input(None, tmp_path, gpu.NB101_NAMES, "NB101 data", "--nb101")

    (tmp_path / "nb101_real_20k.tfrecord").touch()
    assert nb101() == tmp_path / "nb101_real_20k.tfrecord"
    (tmp_path / "real20k.hdf5").touch()
    assert nb101() == tmp_path / "real20k.hdf5"  # the first name there wins
    assert gpu.find_input(str(tmp_path / "nb101_real_20k.tfrecord"), Path("/"), gpu.NB101_NAMES, "x", "--nb101") == (
        tmp_path / "nb101_real_20k.tfrecord"
    )  # a given path wins over the folder
    with pytest.raises(gpu.InputError, match=f"^no CIFAR-10 in {tmp_path} .*--inputs DIR or BENCH_GPU_INPUTS=DIR$"):
        gpu.find_input(None, tmp_path, gpu.CIFAR_NAMES, "CIFAR-10", "--cifar")
