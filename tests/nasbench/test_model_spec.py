"""nasbench.lib.model_spec against NB101's own model_spec.py, which nasbench_pytorch ships with one change (its
pruned matrix becomes a torch tensor): validation, pruning, copies; the hash against this toolkit's cells;
visualize with and without graphviz."""

import sys
import types

import numpy as np
import pytest
from nasbench_pytorch.model import model_spec as nb101

from lib.nb101 import cell as nb101_cell
from nasbench.lib import config, model_spec

OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]


def random_specs(count, seed):
    """Upper-triangular 0/1 matrices of 1-9 vertices, dense and sparse, with NB101 op names."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 10))
        m = np.triu(rng.random((n, n)) < rng.choice([0.2, 0.5, 0.8]), 1).astype(int)
        yield m, ["input", *rng.choice(OPS, max(n - 2, 0)).tolist(), "output"][:n]


def nb101_pruned(matrix, ops):
    """NB101's own pruning (its __init__ would then fail to make a tensor of an invalid spec's None)."""
    spec = nb101.ModelSpec.__new__(nb101.ModelSpec)
    spec.original_matrix, spec.original_ops, spec.matrix, spec.ops = matrix, ops, matrix.copy(), list(ops)
    spec.valid_spec = True
    spec._prune()
    return spec


def test_pruning_like_nb101():
    valid = 0
    for m, ops in random_specs(600, seed=0):
        got, want = model_spec.ModelSpec(m, ops), nb101_pruned(m, ops)
        assert got.valid_spec is want.valid_spec
        assert np.array_equal(got.original_matrix, m) and got.original_ops == ops
        if want.valid_spec:
            valid += 1
            assert got.matrix.dtype == want.matrix.dtype and np.array_equal(got.matrix, want.matrix)
            assert got.ops == want.ops and type(got.ops) is list
        else:
            assert got.matrix is None and got.ops is None
    assert 100 < valid < 600  # both kinds drawn


@pytest.mark.parametrize(
    "matrix, ops",
    [
        ([[0, 1, 1], [0, 0, 1]], ["input", "a", "output"]),
        ([0, 1, 0], ["input", "output"]),
        ([[0, 1], [0, 0]], ["input", "a", "output"]),
        ([[0, 1, 0], [0, 0, 1], [1, 0, 0]], ["input", "a", "output"]),
        ([[1]], ["input"]),
    ],
    ids=["not square", "one dimension", "ops", "lower triangle", "diagonal"],
)
def test_bad_shapes_raise_nb101s_value_errors(matrix, ops):
    with pytest.raises(ValueError) as want:
        nb101.ModelSpec(matrix, ops)
    with pytest.raises(ValueError, match=f"^{want.value}$"):
        model_spec.ModelSpec(matrix, ops)


def test_is_upper_triangular_like_nb101():
    rng = np.random.default_rng(1)
    for n in range(0, 6):
        for _ in range(20):
            m = rng.integers(0, 2, (n, n)) * (rng.random((n, n)) < 0.2)
            assert model_spec.is_upper_triangular(m) == nb101.is_upper_triangular(m)


def test_the_spec_keeps_copies_of_what_it_was_given():
    m, ops = np.eye(4, k=1, dtype=int), ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    spec = model_spec.ModelSpec(m, ops, data_format="channels_first")
    m[0, 1], ops[1] = 0, "changed"
    assert spec.original_matrix[0, 1] == spec.matrix[0, 1] == 1
    assert spec.original_ops[1] == spec.ops[1] == "conv3x3-bn-relu" and spec.data_format == "channels_first"


def test_hash_is_the_cells_for_pruned_and_unpruned_specs(cells):
    available = config.build_config()["available_ops"]
    for i in range(0, len(cells["hash"]), 4):
        n = int(cells["num_vertices"][i])
        m = cells["adjacency"][i, :n, :n].astype(int)
        ops = [nb101_cell.LABEL_TO_OP[x] for x in cells["operations"][i, :n].tolist()]
        assert model_spec.ModelSpec(m, ops).hash_spec(available) == cells["hash"][i]
        grown = np.zeros((n + 1, n + 1), int)  # one more vertex, before the output: fed by the input, feeding nothing
        grown[np.ix_([*range(n - 1), n], [*range(n - 1), n])], grown[0, n - 1] = m, 1
        spec = model_spec.ModelSpec(grown, [*ops[:-1], "maxpool3x3", "output"])
        assert spec.ops == ops and np.array_equal(spec.matrix, m) and spec.hash_spec(available) == cells["hash"][i]


def test_visualize_draws_the_pruned_cell(monkeypatch):
    drawn = []

    class Digraph:
        def node(self, name, label):
            drawn.append(("node", name, label))

        def edge(self, src, dst):
            drawn.append(("edge", src, dst))

    monkeypatch.setitem(sys.modules, "graphviz", types.SimpleNamespace(Digraph=Digraph))
    m = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]  # vertex 2 leads nowhere
    g = model_spec.ModelSpec(m, ["input", "conv1x1-bn-relu", "maxpool3x3", "output"]).visualize()
    assert isinstance(g, Digraph)
    assert drawn == [
        ("node", "0", "input"),
        ("node", "1", "conv1x1-bn-relu"),
        ("node", "2", "output"),
        ("edge", "0", "1"),
        ("edge", "1", "2"),
    ]


def test_visualize_without_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz then fails
    spec = model_spec.ModelSpec(np.eye(3, k=1, dtype=int), ["input", "conv3x3-bn-relu", "output"])
    with pytest.raises(ImportError, match="^ModelSpec.visualize needs the graphviz package: pip install graphviz$"):
        spec.visualize()
