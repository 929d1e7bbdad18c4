"""lib/nb101/space.py against NB101's own rules: validation, pruning, parameters, enumeration, and the
join of data files to the space by cell (against the join by NB101 hash) with hashes only on demand."""

import numpy as np
import pytest
from conftest import nb101_hash, random_cells
from nasbench_pytorch.model import graph_util

from dataset import load_nb101
from lib.nb101 import cell as C
from lib.nb101 import join as J
from lib.nb101 import network as N
from lib.nb101 import space as S

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
    with pytest.raises(C.InvalidSpecError, match=why):
        C.make_cell(matrix, ops)


def test_prune_drops_vertices_off_the_input_output_path():
    # vertex 2 is a dead end (no path to output), vertex 3 is unreachable from input
    m = np.array([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    cell = C.make_cell(m, ["input", CONV3, POOL, CONV1, "output"])
    assert cell.ops == ("input", CONV3, "output")
    assert cell.matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_edge_limit_applies_after_pruning():
    # chain 0-1-2-3-4-6 plus 0→2, 0→3, 1→3 (8 edges) and a dead-end vertex 5 fed by 0 and 1
    m = np.zeros((7, 7), int)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 2), (0, 3), (1, 3), (0, 5), (1, 5)]:
        m[a, b] = 1
    cell = C.make_cell(m, ["input", *[CONV3] * 5, "output"])
    assert m.sum() == 10 and cell.num_edges == 8 and cell.num_vertices == 6


def test_closed_form_parameters_equal_the_built_network():
    cells = random_cells(12, seed=2) + [C.make_cell([[0, 1], [0, 0]], ["input", "output"])]
    adj, labels = zip(*[c.padded() for c in cells])
    n = [c.num_vertices for c in cells]
    closed = N.trainable_parameters(np.stack(adj), np.stack(labels), np.array(n))
    built = [N.count_parameters(N.build_network(c)) for c in cells]
    assert closed.tolist() == built
    small = N.trainable_parameters(
        np.stack(adj), np.stack(labels), np.array(n), stem_channels=16, num_stacks=2, cells_per_stack=1
    )
    assert small.tolist() == [N.count_parameters(N.build_network(c, 16, 2, 1)) for c in cells]


def test_build_network_uses_nb101_batchnorm():
    import torch.nn as nn

    net = N.build_network(random_cells(1, seed=3)[0])
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.003 and m.eps == 1e-5 for m in bns)


def test_json_round_trip_and_hash_check():
    cell = random_cells(1, seed=4)[0]
    assert C.Cell.from_json(cell.to_json()) == cell
    with pytest.raises(C.InvalidSpecError, match="does not match"):
        C.Cell.from_json({**cell.to_json(), "hash": "0" * 32})


def test_cell_from_row_inverts_padded():
    for cell in random_cells(20, seed=5):
        assert C.cell_from_row(*cell.padded(), cell.num_vertices) == cell


def test_enumeration_of_small_sizes_matches_nb101_generate_graphs():
    # Brute force of generate_graphs.py for up to 5 vertices: first (bits, labeling) per hash.
    import itertools

    for n in (2, 3, 4, 5):
        seen = {}
        for bits in range(2 ** (n * (n - 1) // 2)):
            m = np.fromfunction(graph_util.gen_is_edge_fn(bits), (n, n), dtype=np.int8).astype(np.int8)
            if not graph_util.is_full_dag(m) or m.sum() > C.MAX_EDGES:
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
        cell = C.cell_from_row(space["adjacency"][i], space["operations"][i], space["num_vertices"][i])
        assert nb101_hash(cell) == space["hash"][i]


def test_enumeration_reproduces_nb101_cells_of_the_real_file(space, real_h5):
    import dataset

    real = dataset.load_nb101(real_h5)
    row = {h: i for i, h in enumerate(space["hash"].tolist())}
    idx = np.array([row[h] for h in real.hash.tolist()])  # KeyError: a real cell not enumerated
    assert np.array_equal(space["adjacency"][idx], real.adjacency)
    assert np.array_equal(space["operations"][idx], real.operations)
    assert np.array_equal(space["num_vertices"][idx], real.num_vertices)


def test_hashes_saved_from_elsewhere_load_as_the_enumerations_own(space, tmp_path):
    cache = tmp_path / "space.npz"
    cells = {k: space[k] for k in ("adjacency", "operations", "num_vertices")}
    S.save_space_cache(cells, space["hash"].astype("S32"), cache)  # kept as enumerate_space keeps them
    loaded = S.enumerate_space(cache)
    assert sorted(loaded) == sorted(space)
    assert all(np.array_equal(loaded[k], space[k]) and loaded[k].dtype == space[k].dtype for k in space)


def test_hashes_for_other_cells_are_not_saved(space, tmp_path):
    with pytest.raises(ValueError, match="423623 hashes for 423624 cells"):
        S.save_space_cache(space, space["hash"][1:], tmp_path / "space.npz")
    assert not (tmp_path / "space.npz").exists()


# ----------------------------------------------------------------------------- without hashes: joining by cell


def hash_join(space, hashes: np.ndarray) -> np.ndarray:
    """The join by NB101 hash that space_rows replaces: row of each hash in the space, -1 if absent."""
    order = np.argsort(space["hash"])
    at = order[np.searchsorted(space["hash"], hashes, sorter=order).clip(0, len(order) - 1)]
    return np.where(space["hash"][at] == hashes, at, -1)


def test_cell_codes_name_every_cell_once_and_reject_broken_layouts(space):
    codes = J.cell_codes(space["adjacency"], space["operations"], space["num_vertices"])
    assert len(np.unique(codes)) == S.NUM_CELLS and (codes >= 0).all()
    i = np.flatnonzero(space["num_vertices"] == 5)[:1]
    adj, ops, n = space["adjacency"][i].copy(), space["operations"][i].copy(), space["num_vertices"][i]
    for broken in ("below", "past n", "input", "op"):
        a, o = adj.copy(), ops.copy()
        if broken == "below":
            a[0, 3, 1] = 1
        elif broken == "past n":
            a[0, 1, 5] = 1
        elif broken == "input":
            o[0, 0] = 0
        else:
            o[0, 2] = 3
        assert J.cell_codes(a, o, n)[0] == -1, broken
    junk_ops = ops.copy()
    junk_ops[0, 5:] = 2  # padding ops are not part of the cell
    assert J.cell_codes(adj, junk_ops, n)[0] == codes[i][0]


def test_space_rows_equals_the_hash_join_on_demo_data(space, demo_h5):
    data = load_nb101(demo_h5)
    rows = J.space_rows(space, data.adjacency, data.operations, data.num_vertices)
    np.testing.assert_array_equal(rows, hash_join(space, data.hash))
    assert (rows >= 0).all()


def test_space_rows_equals_the_hash_join_on_the_real_file(space, real_h5):
    data = load_nb101(real_h5)
    rows = J.space_rows(space, data.adjacency, data.operations, data.num_vertices)
    assert len(rows) == 20_001 and (rows >= 0).all()
    np.testing.assert_array_equal(rows, hash_join(space, data.hash))


def test_space_rows_finds_re_encoded_cells_and_rejects_foreign_ones(space):
    """Interior vertices renumbered (still upper-triangular): no longer NB101's representative arrays,
    the same cell; space_rows brings them back (canonical_cells), as the hash would find them."""
    rng = np.random.default_rng(0)
    idx = rng.choice(S.NUM_CELLS, 400, replace=False)
    adj, ops, nv = space["adjacency"][idx].copy(), space["operations"][idx].copy(), space["num_vertices"][idx]
    moved = []
    for j, n in enumerate(nv):
        for _ in range(50):
            p = np.concatenate([[0], 1 + rng.permutation(n - 2), [n - 1]])
            a = adj[j, :n, :n][np.ix_(p, p)]
            if not np.tril(a).any() and (a != adj[j, :n, :n]).any():
                adj[j, :n, :n], ops[j, :n] = a, ops[j, :n][p]
                moved.append(j)
                break
    assert len(moved) > 100
    codes = J.cell_codes(space["adjacency"], space["operations"], space["num_vertices"])
    assert not np.isin(J.cell_codes(adj[moved], ops[moved], nv[moved]), codes).any()  # the exact join misses them
    for j in moved[:20]:  # the same cell by NB101's hash
        cell = C.cell_from_row(adj[j], ops[j], nv[j])
        assert nb101_hash(cell) == space["hash"][idx[j]]
    np.testing.assert_array_equal(J.space_rows(space, adj, ops, nv), idx)
    ten_edges = np.triu(np.ones((1, 7, 7), np.int8), 1)
    ops7 = np.array([[-1, 0, 0, 0, 0, 0, -2]], np.int8)
    assert J.space_rows(space, ten_edges, ops7, np.array([7])).tolist() == [-1]
    unpruned = np.zeros((1, 7, 7), np.int8)
    unpruned[0, 0, 2], unpruned[0, 1, 2] = 1, 1  # vertex 1 has no input: NB101 files hold such cells pruned
    ops3 = np.array([[-1, 0, -2, 0, 0, 0, 0]], np.int8)
    assert J.space_rows(space, unpruned, ops3, np.array([3])).tolist() == [-1]


@pytest.mark.slow
def test_enumeration_without_hashes_is_cached_apart_and_hashes_come_on_demand(space, tmp_path, monkeypatch):
    calls = []

    def fake_hash_cells(adj, ops, nv):  # the real one takes ~50 s here; its values are tested above
        calls.append(len(nv))
        return space["hash"][: len(nv)]

    monkeypatch.setattr(S, "hash_cells", fake_hash_cells)
    cache = tmp_path / "space.npz"
    cells = S.enumerate_space(cache, hashes=False)
    assert sorted(cells) == ["adjacency", "num_vertices", "operations"] and calls == []
    assert not cache.exists() and S.cells_cache(cache).exists()
    for key in cells:
        np.testing.assert_array_equal(cells[key], space[key])
    again = S.enumerate_space(cache, hashes=False)  # from the cells cache
    assert all(np.array_equal(again[k], cells[k]) for k in cells) and calls == []
    full = S.enumerate_space(cache)  # hashes asked for: computed once, cached with the cells
    assert calls == [S.NUM_CELLS] and cache.exists()
    np.testing.assert_array_equal(S.enumerate_space(cache)["hash"], full["hash"])
    assert calls == [S.NUM_CELLS] and "hash" not in S.enumerate_space(cache, hashes=False)
    assert S.space_fingerprint(cells) == S.space_fingerprint(space)
    rows = np.array([5, 100_000, S.NUM_CELLS - 1])
    monkeypatch.undo()
    np.testing.assert_array_equal(S.space_hashes(cells, rows), space["hash"][rows])  # computed for these rows
    np.testing.assert_array_equal(S.space_hashes(space, rows), space["hash"][rows])
