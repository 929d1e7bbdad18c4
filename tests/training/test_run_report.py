"""Tests for lib/training/run_report.py: NB101's record of a cell, the parameter line, the summary and curves.png."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from lib.training import run_report as R

FULL = {"stem_channels": 128, "num_stacks": 3, "cells_per_stack": 3, "num_classes": 10}
REDUCED = FULL | {"stem_channels": 16}


def record(synthetic: bool = False) -> dict:
    """NB101's record of one cell: 36-epoch validation accuracy from two repeats (and a missing third), no test."""
    metrics = np.full((1, 4, 3, 2, 4), np.nan)
    metrics[0, 2, :2, 1, 2] = 0.93, 0.935
    metrics[0, 3, 0, 1, 2:] = 0.94, 0.939
    nb = SimpleNamespace(metrics=metrics, trainable_parameters=np.array([5_356_682]), synthetic=synthetic)
    return R.nb101_record(nb, 0)


def history(epochs: int) -> list[dict]:
    """Epoch entries as trainer.py writes them: loss 1/e, accuracy 0.5 + e/100, the same for every split."""
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e}
        for split in ("train", "valid", "test"):
            row |= {f"{split}_loss": 1 / e, f"{split}_acc": 0.5 + e / 100}
        rows.append(row)
    return rows


def test_record_and_means_skip_missing_repeats():
    rec = record()
    assert rec["36"]["val"][:2] == [0.93, 0.935] and rec["36"]["val"][2] is None and not rec["synthetic"]
    assert R.recorded(rec, 36, "val") == np.mean([0.93, 0.935])
    assert R.recorded(rec, 108, "test") == np.float64(0.939)  # one repeat of three
    assert (
        R.recorded(rec, 36, "test") is None
        and R.recorded(rec, 12, "val") is None
        and R.recorded(None, 36, "val") is None
    )


def test_params_line_shows_nb101_count_only_for_the_full_network():
    assert R.params_line(6_170, REDUCED, record()) == "params 6,170 (this reduced network)"
    assert R.params_line(5_356_682, FULL, None) == "params 5,356,682 (this network)"
    want = "params 5,356,682 (this network; NB101 trainable_parameters 5,356,682)"
    assert R.params_line(5_356_682, FULL, record()) == want
    assert not R.is_full_network(FULL | {"num_classes": 100})


def test_summary_line_beside_the_record_of_the_same_budget():
    final = {"epoch": 36, "valid_acc": 0.931, "test_acc": 0.928}
    mean = 100 * np.mean([0.93, 0.935])
    assert (
        R.summary_line(final, record(), 36)
        == f"after 36 epochs: valid 93.10% test 92.80% (NB101 at 36 epochs: valid {mean:.2f}%)"
    )
    assert "NB101 at 36 epochs, SYNTHETIC labels: valid" in R.summary_line(final, record(True), 36)
    assert R.summary_line(final, record(), 12).endswith("(NB101 at 12 epochs: no record)")
    assert R.summary_line(final, None, 36) == "after 36 epochs: valid 93.10% test 92.80%"


def test_curves_png_says_synthetic_only_where_a_synthetic_record_is_marked(tmp_path: Path):
    title = R.plot_training_curves(tmp_path / "c.png", history(36), record(True), 36, "cell x")
    assert "SYNTHETIC" in title and (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert R.plot_training_curves(tmp_path / "d.png", history(36), record(False), 36, "cell x") == "cell x"
    assert R.plot_training_curves(tmp_path / "e.png", history(3), None, 4, "cell x") == "cell x"  # no record
    # a synthetic record with no budget within the run marks nothing, so it needs no warning
    assert R.plot_training_curves(tmp_path / "f.png", history(3), record(True), 4, "cell x") == "cell x"


def test_a_run_without_test_images_says_test_dash_and_draws_no_test_curve(tmp_path: Path):
    final = {"epoch": 4, "valid_acc": 0.5, "test_acc": None}
    assert R.summary_line(final, None, 4) == "after 4 epochs: valid 50.00% test -"
    rows = [h | {"test_loss": None, "test_acc": None} for h in history(3)]
    assert R.plot_training_curves(tmp_path / "c.png", rows, None, 3, "cell x") == "cell x"
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
