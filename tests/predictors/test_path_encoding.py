"""lib/predictors/path_encoding.py on real cells of the space."""

import numpy as np

from lib.nb101.space import NUM_CELLS
from lib.predictors.path_encoding import PATHS, path_encoding, path_index


def test_path_encoding_equals_a_path_walk(space):
    rows = np.random.default_rng(0).choice(NUM_CELLS, 300, replace=False)
    codes = path_encoding(space["adjacency"][rows], space["operations"][rows], space["num_vertices"][rows])
    for r, code in zip(rows, codes):
        n, adj, ops = space["num_vertices"][r], space["adjacency"][r], space["operations"][r]
        want = np.zeros(PATHS, np.uint8)

        def walk(v, seq, n=n, adj=adj, ops=ops, want=want):
            if v == n - 1:
                want[path_index(seq)] = 1
            for w in range(v + 1, n):
                if adj[v, w]:
                    walk(w, seq + ([int(ops[w])] if w < n - 1 else []))

        walk(0, [])
        assert (code == want).all()
    assert path_index([]) == 0 and path_index([2, 2, 2, 2, 2]) == PATHS - 1
