"""lib/search/neighbourhood.py on real cells: the space's own neighbourhood and mutation, and a partial
pool's k nearest by path encoding."""

import numpy as np
import pytest

from lib.nb101.cell import LABEL_TO_OP, make_cell
from lib.nb101.space import NUM_CELLS
from lib.predictors.path_encoding import path_encoding
from lib.search.neighbourhood import EditDistance, NearestByPaths, neighbourhood_of


def edits(a: dict, b: dict) -> int:
    """Edge flips plus op changes between two cells of equal size."""
    return int((a["adjacency"] != b["adjacency"]).sum() + (a["operations"] != b["operations"]).sum())


@pytest.mark.slow
def test_the_space_neighbourhood_is_one_edit_and_mutations_are_valid(space):
    neighbourhood = neighbourhood_of(space)
    assert isinstance(neighbourhood, EditDistance) and neighbourhood.kind == "edit distance 1"
    rng = np.random.default_rng(1)
    for row in rng.choice(NUM_CELLS, 5, replace=False).tolist():
        nb = neighbourhood.neighbours(row)
        assert len(nb) > 3 and row not in nb
        edges = space["adjacency"][nb].sum((1, 2)).astype(int) - int(space["adjacency"][row].sum())
        same = space["num_vertices"][nb] == space["num_vertices"][row]  # no vertex pruned away: one edit
        assert same.any() and (np.abs(edges[same]) <= 1).all()
        child = neighbourhood.mutate(row, rng)
        assert 0 <= child < NUM_CELLS and child != row
    n = 5  # a hand-made cell and one of its one-edit variants are neighbours
    adj = np.triu(np.ones((n, n), np.int8), 1)
    adj[0, 4] = adj[1, 3] = 0
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]
    cell = make_cell(adj, ops)
    other = make_cell(adj, [*ops[:1], "conv1x1-bn-relu", *ops[2:]])
    rows = neighbourhood._rows([(c.padded()[0][:n, :n], c.padded()[1][:n]) for c in (cell, other)])
    assert rows[1] in neighbourhood.neighbours(int(rows[0]))
    assert LABEL_TO_OP[int(space["operations"][rows[1], 1])] == "conv1x1-bn-relu"


def test_a_partial_pool_has_its_k_nearest_by_path_encoding(space):
    rows = np.random.default_rng(2).choice(NUM_CELLS, 500, replace=False)
    cells = {k: space[k][rows] for k in ("adjacency", "operations", "num_vertices")}
    neighbourhood = neighbourhood_of(cells)
    assert isinstance(neighbourhood, NearestByPaths) and neighbourhood.kind == "10 nearest by path encoding"
    codes = path_encoding(cells["adjacency"], cells["operations"], cells["num_vertices"])
    d = (codes != codes[7]).sum(1)
    d[7] = 10**6
    nb = neighbourhood.neighbours(7)
    assert len(nb) == 10 and 7 not in nb and d[nb].max() <= np.sort(d)[9]  # none nearer left out
    assert neighbourhood.mutate(7, np.random.default_rng(0)) in nb
