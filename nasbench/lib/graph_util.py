"""NB101's graph utilities (nasbench/lib/graph_util.py): the edge bits of generate_graphs.py, full DAGs,
the module hash, and vertex permutations.

    from nasbench.lib import graph_util
    graph_util.hash_module(matrix, [-1, 0, 2, -2])      # the hash that keys the dataset
    graph_util.is_isomorphic((m1, labels1), (m2, labels2))

The hash is this toolkit's own, lib/nb101/hashing.hash_module.
"""

from __future__ import annotations

import itertools

import numpy as np

from lib.nb101 import hashing


def gen_is_edge_fn(bits: int):
    """A vectorised is_edge(x, y) for np.fromfunction: bit x + y(y-1)/2 of `bits` says whether x -> y
    (x < y) is an edge, so the bits fill the upper triangle column by column, the lowest bit first, and
    the same bits mean the same edges in a matrix of any size."""

    def is_edge(x, y):
        if x >= y:
            return 0
        return (bits >> (x + y * (y - 1) // 2)) % 2 == 1

    return np.vectorize(is_edge)


def is_full_dag(matrix: np.ndarray) -> bool:
    """Every vertex lies on a path from the input (vertex 0) to the output (the last): for an upper-triangular
    matrix, each vertex but the output has an out-edge and each but the input an in-edge."""
    n = np.shape(matrix)[0]
    no_out = np.all(matrix[: n - 1, :] == 0, axis=1).any()
    no_in = np.all(matrix[:, 1:] == 0, axis=0).any()
    return not no_out and not no_in


def num_edges(matrix: np.ndarray):
    """The number of edges (a numpy integer, as np.sum gives it)."""
    return np.sum(matrix)


def hash_module(matrix: np.ndarray, labeling: list) -> str:
    """NB101's isomorphism-invariant md5 hash of a labelled graph (any size, any directed graph)."""
    assert np.shape(matrix)[0] == len(labeling), "one label per vertex"
    return hashing.hash_module(matrix, labeling)


def permute_graph(graph: np.ndarray, label: list, permutation: list) -> tuple[np.ndarray, list]:
    """The graph with vertex v moved to permutation[v]: (bool matrix, labels)."""
    old = np.argsort(permutation, kind="stable").tolist()  # old[new vertex] = its vertex in `graph`
    return np.asarray(graph)[np.ix_(old, old)] == 1, [label[v] for v in old]


def is_isomorphic(graph1: tuple, graph2: tuple) -> bool:
    """Whether some vertex permutation maps (matrix1, labels1) onto (matrix2, labels2); tries them all."""
    matrix1, label1 = np.array(graph1[0]), graph1[1]
    matrix2, label2 = np.array(graph2[0]), graph2[1]
    assert np.shape(matrix1) == np.shape(matrix2) and len(label1) == len(label2), "graphs of one size"
    for perm in itertools.permutations(range(np.shape(matrix1)[0])):
        matrix, labels = permute_graph(matrix1, label1, perm)
        if np.array_equal(matrix, matrix2) and labels == label2:
            return True
    return False
