"""nasbench.lib.graph_util against NB101's own graph_util.py, which nasbench_pytorch ships unchanged: every
function on random graphs of many sizes, directed graphs with cycles and self-loops too, labels of several
types."""

import itertools

import numpy as np
import pytest
from nasbench_pytorch.model import graph_util as nb101

from nasbench.lib import graph_util


def random_graphs(count, seed, sizes=range(1, 13), dag=False):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.choice(list(sizes)))
        m = rng.integers(0, 2, (n, n))
        yield np.triu(m, 1) if dag else m


def test_edge_bits_fill_the_upper_triangle_like_nb101():
    rng = np.random.default_rng(0)
    for n in range(2, 8):
        for bits in [0, 2 ** (n * (n - 1) // 2) - 1, *rng.integers(0, 2 ** (n * (n - 1) // 2), 30).tolist()]:
            got = np.fromfunction(graph_util.gen_is_edge_fn(bits), (n, n), dtype=np.int8)
            want = np.fromfunction(nb101.gen_is_edge_fn(bits), (n, n), dtype=np.int8)
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_full_dags_and_edge_counts_like_nb101():
    for m in random_graphs(500, seed=0, sizes=range(2, 9), dag=True):
        assert graph_util.is_full_dag(m) is nb101.is_full_dag(m)
        edges = graph_util.num_edges(m)
        assert edges == nb101.num_edges(m) and type(edges) is type(nb101.num_edges(m))


@pytest.mark.parametrize(
    "labels",
    [
        lambda rng, n: [int(x) for x in rng.integers(-2, 3, n)],
        lambda rng, n: [str(x) for x in rng.choice(list("abc"), n)],
        lambda rng, n: [float(x) for x in rng.integers(0, 3, n)],
    ],
    ids=["int", "str", "float"],
)
def test_hash_equals_nb101s_for_any_directed_graph_and_labels(labels):
    rng = np.random.default_rng(1)
    for m in random_graphs(150, seed=2):
        lab = labels(rng, len(m))
        assert graph_util.hash_module(m, lab) == nb101.hash_module(m, lab)
        assert graph_util.hash_module(m.astype(bool), lab) == nb101.hash_module(m.astype(bool), lab)


def test_numpy_labels_hash_as_their_python_values():
    """As NB101's code hashed them under the numpy of its time; numpy 2 prints np.int64(1) where it printed 1."""
    for m in random_graphs(50, seed=3, sizes=range(2, 8), dag=True):
        lab = np.random.default_rng(len(m)).integers(-2, 3, len(m))
        assert graph_util.hash_module(m, lab) == nb101.hash_module(m, lab.tolist())


def test_hash_wants_one_label_per_vertex():
    with pytest.raises(AssertionError):
        graph_util.hash_module(np.zeros((3, 3), int), [-1, -2])


def test_permuted_graphs_like_nb101_and_their_hash_unchanged():
    rng = np.random.default_rng(4)
    for m in random_graphs(200, seed=5):
        n = len(m)
        perm = rng.permutation(n).tolist()
        labels = [int(x) for x in rng.integers(0, 4, n)]
        got, got_labels = graph_util.permute_graph(m, labels, perm)
        want, want_labels = nb101.permute_graph(m, labels, perm)
        assert got.dtype == want.dtype and np.array_equal(got, want) and got_labels == want_labels
        assert all(got[perm[i], perm[j]] == m[i, j] for i, j in itertools.product(range(n), repeat=2))
        assert graph_util.hash_module(got.astype(int), got_labels) == graph_util.hash_module(m, labels)


def test_isomorphism_like_nb101():
    rng = np.random.default_rng(6)
    for m in random_graphs(60, seed=7, sizes=range(1, 6)):
        n = len(m)
        labels = [int(x) for x in rng.integers(0, 2, n)]
        permuted = graph_util.permute_graph(m, labels, rng.permutation(n).tolist())
        other = (rng.integers(0, 2, (n, n)), [int(x) for x in rng.integers(0, 2, n)])
        assert graph_util.is_isomorphic((m, labels), (permuted[0].astype(int), permuted[1])) is True
        assert graph_util.is_isomorphic((m, labels), other) is nb101.is_isomorphic((m, labels), other)
