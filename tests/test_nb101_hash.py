"""lib/nb101_hash.py against NB101's reference graph_util.hash_module: one cell, many cells at once
(every size), pruned and unpruned input, isomorphic re-encodings."""

import numpy as np
from conftest import nb101_hash, random_cells

from lib import nb101_space as S
from lib.nb101_hash import hash_cells, hash_module

CONV3, CONV1, POOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


def test_hash_matches_nb101_reference_for_pruned_and_unpruned_input():
    cells = random_cells(300)
    for cell in cells:
        assert hash_module(cell.matrix, cell.labels) == cell.hash == nb101_hash(cell)
    unpruned = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    a = S.make_cell(unpruned, ["input", CONV3, POOL, "output"])
    b = S.make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", CONV3, "output"])
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
    cell = S.make_cell(
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", CONV3, POOL, CONV1, "output"],
    )
    # the same graph with the two branches numbered the other way round
    other = S.make_cell(
        [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", POOL, CONV3, CONV1, "output"],
    )
    assert cell.hash == other.hash
    relabelled = S.make_cell(other.matrix, ["input", CONV3, CONV3, CONV1, "output"])
    assert relabelled.hash != cell.hash
