"""lib/search/report.py: the incumbent after each query, the per-strategy summary against queries and
seconds, and the printed table, on runs worked by hand."""

import numpy as np
import pytest

from lib.search.report import Trace, Truth, budget_table, plot_search_curves, pool_summary, summarize


def test_the_incumbent_is_the_best_label_at_the_most_epochs_so_far():
    trace = Trace(
        rows=np.array([0, 1, 2, 1, 3]),
        epochs=np.array([4, 4, 12, 108, 108]),
        labels=np.array([0.5, 0.7, 0.6, 0.8, 0.75]),
        seconds=np.ones(5),
    )
    assert trace.incumbents().tolist() == [0, 1, 2, 1, 1]


def test_summary_curves_and_table_on_known_runs():
    val = np.array([0.90, 0.94, 0.92, 0.95, 0.91])
    truth = Truth(np.array([f"h{i}" for i in range(5)]), val, np.array([0.89, 0.93, np.nan, 0.94, 0.90]))
    runs = [
        Trace(np.array([0, 2, 3]), np.full(3, 108), val[[0, 2, 3]], np.array([10.0, 20.0, 30.0])),
        Trace(np.array([4, 1, 0]), np.full(3, 108), val[[4, 1, 0]], np.array([5.0, 5.0, 5.0])),
    ]
    s, curves = summarize(runs, truth, horizon=60.0)
    assert s["final_val_mean"] == pytest.approx(0.945) and s["final_val_std"] == pytest.approx(0.005)
    assert s["final_test_mean"] == pytest.approx(0.935) and s["found_best_in_pool"] == 1
    assert s["regret_mean"] == pytest.approx(0.005) and s["queries_to_best_median"] == 3
    assert s["curve_val_mean"] == pytest.approx([0.905, 0.93, 0.945])
    assert [(r["best_hash"], r["queries_to_best"], r["seconds"]) for r in s["runs"]] == [
        ("h3", 3, 60.0),
        ("h1", None, 15.0),
    ]
    grid, by_time = curves["time"]
    at = {float(g): list(v) for g, v in zip(grid, by_time.T)}
    assert np.isnan(at[0.0][0]) and np.isnan(at[0.0][1])  # nothing finished at time 0
    assert at[60.0] == pytest.approx([0.95, 0.94])
    i = int(np.searchsorted(grid, 10.0))  # at 10 s: run 0 finished its first query, run 1 its second
    assert by_time[:, i].tolist() == pytest.approx([0.90, 0.94])
    config = {"queries": 3, "seeds": 2}
    result = {"config": config, "pool": pool_summary(truth, None), "strategies": {"re": s}}
    lines = budget_table(result).splitlines()
    assert lines[2].split() == ["re", "94.50", "+-", "0.50", "93.50", "0.50", "1/2", "3", "0.0"]
    assert lines[3].split()[:3] == ["pool", "95.00", "94.00"]


def test_curves_with_no_query_ended_yet_are_plotted(tmp_path):
    """A strategy none of whose queries had ended at any point plotted (every value NaN) still gets its plots."""
    nan = np.full((2, 3), np.nan)
    curves = {"re": {"queries": nan, "time": (np.array([0.0, 1.0, 2.0]), nan)}}
    paths = plot_search_curves(tmp_path, curves, 0.95, "nothing yet")
    assert [p.name for p in paths] == ["curves_queries.png", "curves_time.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
