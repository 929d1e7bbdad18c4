"""lib/nb101_space.py against NB101's own rules: validation, pruning, parameters, enumeration."""

import numpy as np
import pytest
from conftest import nb101_hash, random_cells
from nasbench_pytorch.model import graph_util

from lib import nb101_space as S

CONV3, CONV1, POOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


@pytest.mark.parametrize(
    "matrix, ops, why",
    [
        ([[0, 1, 0], [0, 0, 1]], ["input", CONV3, "output"], "not square"),
        ([[0, 1], [1, 0]], ["input", "output"], "not upper triangular"),
        ([[0, 1], [0, 0]], ["input", "conv5x5", "output"], "2 adjacency"),
        ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "unknown op 'conv5x5'"),
        ([[0, 0, 0], [0, 0, 1], [0, 0, 0]], ["input", CONV3, "output"], "input is not connected to output"),
        (np.triu(np.ones((8, 8), int), 1), ["input"] + [CONV3] * 6 + ["output"], "8 vertices"),
        (np.triu(np.ones((7, 7), int), 1), ["input"] + [CONV3] * 5 + ["output"], "21 edges"),
        ([[0, 2], [0, 0]], ["input", "output"], "only 0 and 1"),
    ],
)
def test_invalid_specs_say_why(matrix, ops, why):
    with pytest.raises(S.InvalidSpecError, match=why):
        S.make_cell(matrix, ops)


def test_prune_drops_vertices_off_the_input_output_path():
    # vertex 2 is a dead end (no path to output), vertex 3 is unreachable from input
    m = np.array([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    cell = S.make_cell(m, ["input", CONV3, POOL, CONV1, "output"])
    assert cell.ops == ("input", CONV3, "output")
    assert cell.matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_edge_limit_applies_after_pruning():
    # chain 0-1-2-3-4-6 plus 0→2, 0→3, 1→3 (8 edges) and a dead-end vertex 5 fed by 0 and 1
    m = np.zeros((7, 7), int)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 2), (0, 3), (1, 3), (0, 5), (1, 5)]:
        m[a, b] = 1
    cell = S.make_cell(m, ["input", *[CONV3] * 5, "output"])
    assert m.sum() == 10 and cell.num_edges == 8 and cell.num_vertices == 6


def test_closed_form_parameters_equal_the_built_network():
    cells = random_cells(12, seed=2) + [S.make_cell([[0, 1], [0, 0]], ["input", "output"])]
    adj, labels = zip(*[c.padded() for c in cells])
    n = [c.num_vertices for c in cells]
    closed = S.trainable_parameters(np.stack(adj), np.stack(labels), np.array(n))
    built = [S.count_parameters(S.build_network(c)) for c in cells]
    assert closed.tolist() == built
    small = S.trainable_parameters(
        np.stack(adj), np.stack(labels), np.array(n), stem_channels=16, num_stacks=2, cells_per_stack=1
    )
    assert small.tolist() == [S.count_parameters(S.build_network(c, 16, 2, 1)) for c in cells]


def test_build_network_uses_nb101_batchnorm():
    import torch.nn as nn

    net = S.build_network(random_cells(1, seed=3)[0])
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.003 and m.eps == 1e-5 for m in bns)


def test_json_round_trip_and_hash_check():
    cell = random_cells(1, seed=4)[0]
    assert S.Cell.from_json(cell.to_json()) == cell
    with pytest.raises(S.InvalidSpecError, match="does not match"):
        S.Cell.from_json({**cell.to_json(), "hash": "0" * 32})


def test_cell_from_row_inverts_padded():
    for cell in random_cells(20, seed=5):
        assert S.cell_from_row(*cell.padded(), cell.num_vertices) == cell


def test_enumeration_of_small_sizes_matches_nb101_generate_graphs():
    # Brute force of generate_graphs.py for up to 5 vertices: first (bits, labeling) per hash.
    import itertools

    for n in (2, 3, 4, 5):
        seen = {}
        for bits in range(2 ** (n * (n - 1) // 2)):
            m = np.fromfunction(graph_util.gen_is_edge_fn(bits), (n, n), dtype=np.int8).astype(np.int8)
            if not graph_util.is_full_dag(m) or m.sum() > S.MAX_EDGES:
                continue
            for lab in itertools.product(range(3), repeat=n - 2):
                seen.setdefault(graph_util.hash_module(m, [-1, *lab, -2]), (m, [-1, *lab, -2]))
        adj, labels = S._enumerate_n(n)
        assert len(adj) == len(seen)
        ours = [(a[:n, :n].tolist(), lab[:n].tolist()) for a, lab in zip(adj, labels)]
        assert ours == [(m.tolist(), lab) for m, lab in seen.values()]


def test_whole_space_has_423624_unique_cells(space):
    assert len(space["hash"]) == S.NUM_CELLS == len(np.unique(space["hash"]))
    assert np.bincount(space["num_vertices"]).tolist() == [0, 0, 1, 6, 84, 2441, 62010, 359082]
    rng = np.random.default_rng(0)
    for i in rng.choice(S.NUM_CELLS, 50, replace=False):
        cell = S.cell_from_row(space["adjacency"][i], space["operations"][i], space["num_vertices"][i])
        assert nb101_hash(cell) == space["hash"][i]


@pytest.mark.slow
def test_enumeration_reproduces_nb101_cells_of_the_real_file(space, real_h5):
    import dataset

    real = dataset.load_nb101(real_h5)
    row = {h: i for i, h in enumerate(space["hash"].tolist())}
    idx = np.array([row[h] for h in real.hash.tolist()])  # KeyError: a real cell not enumerated
    assert np.array_equal(space["adjacency"][idx], real.adjacency)
    assert np.array_equal(space["operations"][idx], real.operations)
    assert np.array_equal(space["num_vertices"][idx], real.num_vertices)
