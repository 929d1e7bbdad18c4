"""lib/nb101/hashing.py against NB101's reference graph_util.hash_module: one cell, many cells at once
(every size), pruned and unpruned input, isomorphic re-encodings; its process pool at the size that uses
it, a worker's error and a killed worker (an error, never a hang)."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, nb101_hash, random_cells

from lib.nb101 import cell as C
from lib.nb101.hashing import POOL_MIN_CELLS, hash_cells, hash_module

CONV3, CONV1, POOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


def test_hash_matches_nb101_reference_for_pruned_and_unpruned_input():
    cells = random_cells(300)
    for cell in cells:
        assert hash_module(cell.matrix, cell.labels) == cell.hash == nb101_hash(cell)
    unpruned = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    a = C.make_cell(unpruned, ["input", CONV3, POOL, "output"])
    b = C.make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", CONV3, "output"])
    assert a.hash == b.hash == nb101_hash(b)


def test_vectorised_hash_equals_reference_on_every_size():
    cells = random_cells(400, seed=1)
    padded = [c.padded() for c in cells]
    adj, labels = np.stack([p[0] for p in padded]), np.stack([p[1] for p in padded])
    n = np.array([c.num_vertices for c in cells])
    assert sorted(set(n.tolist())) == [2, 3, 4, 5, 6, 7]
    got = hash_cells(adj, labels, n, workers=1)
    assert got.tolist() == [nb101_hash(c) for c in cells]


def test_hash_is_invariant_to_isomorphic_reencoding():
    cell = C.make_cell(
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", CONV3, POOL, CONV1, "output"],
    )
    # the same graph with the two branches numbered the other way round
    other = C.make_cell(
        [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", POOL, CONV3, CONV1, "output"],
    )
    assert cell.hash == other.hash
    relabelled = C.make_cell(other.matrix, ["input", CONV3, CONV3, CONV1, "output"])
    assert relabelled.hash != cell.hash


# ----------------------------------------------------------------------------- the process pool (large inputs)


@pytest.mark.slow  # ~5 s: 50,000 cells in 2 processes
def test_pool_of_processes_equals_the_cached_hashes(space):
    rows = np.arange(200_000, 200_000 + POOL_MIN_CELLS)  # the smallest input that goes to the pool
    got = hash_cells(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows], workers=2)
    np.testing.assert_array_equal(got, space["hash"][rows])


def test_a_worker_error_reaches_the_caller(space):
    rows = np.arange(POOL_MIN_CELLS)
    bad_labels = space["operations"][rows][:, :3]  # too few columns: every worker fails at once
    with pytest.raises(ValueError, match="same shape"):  # raised in a worker, re-raised here
        hash_cells(space["adjacency"][rows], bad_labels, space["num_vertices"][rows], workers=2)


KILL_A_WORKER = """
import multiprocessing, os, signal, sys, threading, time
import numpy as np
from lib.nb101.space import enumerate_space
from lib.nb101.hashing import POOL_MIN_CELLS, hash_cells
from lib.util.workers import WorkerError

def kill_first_worker():
    while not multiprocessing.active_children():
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)

if __name__ == "__main__":
    space = enumerate_space()
    rows = np.arange(2 * POOL_MIN_CELLS)
    threading.Thread(target=kill_first_worker, daemon=True).start()
    try:
        hash_cells(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows], workers=2)
    except WorkerError as e:
        sys.exit(f"error: {e}")
    print("finished without the killed worker's rows")
"""


@pytest.mark.slow
def test_a_killed_worker_is_an_error_not_a_hang(tmp_path):
    script = tmp_path / "kill_a_worker.py"
    script.write_text(KILL_A_WORKER)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: a hashing worker process died (exit code -9)" in done.stderr
