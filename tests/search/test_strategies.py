"""lib/search/strategies.py: what every strategy of the catalogue does with a failed trial."""

import numpy as np
import pytest
from conftest import blank_cells

from lib.nb101.schema import EPOCHS
from lib.search.ask_tell import Pool
from lib.search.strategies import PREDICTOR_STRATEGIES, STRATEGIES


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_failed_trials_told_as_nan_are_never_labels_parents_or_promoted(name):
    """Real training fails now and then: a NaN tell marks the cell queried and nothing else."""
    pool = Pool(blank_cells(60))
    kwargs = {
        "train": lambda x, y, seed, start=None: lambda f: np.tile(np.arange(len(f["num_vertices"]))[:, None], (1, 2))
    }
    s = STRATEGIES[name](pool, 0, **(kwargs if name in PREDICTOR_STRATEGIES else {}))
    told = []
    for q in range(40):
        (row, epochs), *_ = s.ask()
        acc = float("nan") if q % 3 == 0 else 0.5 + 0.01 * (row % 7)
        s.tell(row, epochs, acc)
        told.append((row, epochs, acc))
    rows, acc = s.labelled()
    assert np.isfinite(acc).all()
    assert sorted(rows.tolist()) == sorted(r for r, e, a in told if e == 108 and np.isfinite(a))
    failed = [r for r, e, a in told if np.isnan(a)]
    assert all(s.touched[r] for r in failed)
    if name == "re":
        assert not {r for r, _ in s.population} & set(failed)
    asked = {(r, e) for r, e, _ in told}
    assert not [(r, e) for r, e, a in told if np.isnan(a) for more in EPOCHS if more > e and (r, more) in asked]
