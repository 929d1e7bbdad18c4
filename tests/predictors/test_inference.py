"""lib/predictors/inference.py: batched prediction (batch sizes, threads, the plan it runs with, bf16 against
fp32, a failing batch, the whole space) and the predictions stored in and reused from checkpoints."""

import resource
import threading
import time

import numpy as np
import pytest
import torch

from dataset import load_nb101
from lib.nb101.space import NUM_CELLS, space_fingerprint
from lib.predictors import inference as I
from lib.predictors.features import cell_features
from lib.predictors.inference import (
    inference_plan,
    predict,
    predict_cells,
    reusable_predictions,
    space_predictions,
    stored_predictions,
)
from lib.predictors.metrics import kendall_tau
from lib.util.memory import keep_freed_memory
from model import Predictor, build_model, hyperparams, train_model


@pytest.mark.parametrize("name", ["mlp", "gcn", "gin"])
def test_predict_is_batch_independent_and_denormalised(name, cells):
    torch.manual_seed(0)
    model = build_model(name).eval()
    model.set_label_norm(0.9, 0.02)
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])
    with torch.no_grad():
        want = model(x).double().numpy() * 0.02 + 0.9
    for bs in (1, 7, None):
        for threads in (1, 2):
            np.testing.assert_allclose(predict(model, x, bs, threads, "fp32"), want, rtol=0, atol=1e-6)
    assert not model.training
    np.testing.assert_array_equal(predict_cells(model, cells, 7), predict(model, x, 7))


# ----------------------------------------------------------------------------- inference: plan, threads, bf16


class Probe(Predictor):
    """score = sum of the one-hot ops weighted 1..5 + 10 * edges: exact in bf16 and fp32; records threads."""

    name = "probe"

    def __init__(self, fail_at: int | None = None, seconds: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.arange(1.0, 6.0))
        self.fail_at, self.seconds, self.threads = fail_at, seconds, set()

    def forward(self, x):
        self.threads.add(threading.get_ident())
        time.sleep(self.seconds)  # a batch that takes time: one worker cannot take them all before the other starts
        if self.fail_at is not None and x["num_vertices"][0] == self.fail_at:
            raise RuntimeError("probe failed")
        return (x["operations"] * self.w).sum((1, 2)) + 10 * x["adjacency"].sum((1, 2))


def probe_score(cells) -> np.ndarray:
    real = np.arange(7)[None] < cells["num_vertices"][:, None]
    ops = np.where(real, cells["operations"].astype(int) + 3, 0)  # one-hot column label+2, weighted 1..5
    return ops.sum(1) + 10 * cells["adjacency"].sum((1, 2))


@pytest.mark.parametrize("bf16_cpu", [True, False])
def test_inference_plan_resolves_every_default(bf16_cpu, monkeypatch):
    monkeypatch.setattr(I, "free_cores", lambda: 3)
    monkeypatch.setattr(I, "native_bf16", lambda device: bf16_cpu)
    model = Probe()
    plan = inference_plan(model)
    assert plan == {"device": "cpu", "threads": 3, "precision": "bf16" if bf16_cpu else "fp32", "batch_size": 1024}
    assert inference_plan(model, 64, 2, "fp32") == {
        "device": "cpu",
        "threads": 2,
        "precision": "fp32",
        "batch_size": 64,
    }
    model.BF16 = False  # a model that opts out runs in fp32 whatever the CPU
    assert inference_plan(model)["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision 'fp8'"):
        inference_plan(model, precision="fp8")


def test_freed_memory_is_reused_by_the_next_batch():
    """Batches free and allocate the same big tensors; without keep_freed_memory glibc hands the freed
    heap back and maps it again, every page faulting (~240,000 faults for these 20 batches)."""
    if not keep_freed_memory():
        pytest.skip("the C library has no mallopt (not glibc)")

    def batch():
        a, b = torch.ones(4 << 20), torch.ones(4 << 20)  # 16 MB each, as a batch's activations
        return (a + b).sum()

    for _ in range(20):  # the heap grows to hold them once
        batch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        batch()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 4096


def test_threads_take_effect_and_give_the_same_predictions(cells):
    threads, one, two = torch.get_num_threads(), Probe(), Probe(seconds=0.02)
    a = predict_cells(one, cells, batch_size=16, threads=1, precision="fp32")  # fp32: the model itself runs
    b = predict_cells(two, cells, batch_size=16, threads=2, precision="fp32")
    np.testing.assert_array_equal(a, probe_score(cells))
    np.testing.assert_array_equal(a, b)
    assert one.threads == {threading.get_ident()}  # one thread: the caller's
    assert len(two.threads) == 2 and threading.get_ident() not in two.threads  # two workers scored the batches
    assert torch.get_num_threads() == threads  # torch's own setting restored


def test_a_failing_batch_reaches_the_caller(cells):
    for threads in (1, 2):
        with pytest.raises(RuntimeError, match="probe failed"):
            predict_cells(Probe(fail_at=6), cells, batch_size=8, threads=threads)


def test_whole_space_in_batches_on_two_threads(space):
    """The 423,624-cell path: every batch scored once, in order, on two worker threads."""
    pred = predict_cells(Probe(), space, threads=2)
    assert len(pred) == NUM_CELLS
    np.testing.assert_array_equal(pred, probe_score(space))


@pytest.mark.slow
@pytest.mark.parametrize("name,epochs", [("gin", 40), ("mlp", 40), ("gcn", 30)])
def test_bf16_moves_kendall_tau_by_less_than_0_001(name, epochs, real_h5):
    """Trained on split 172 of the real 20k cells, evaluated on all of them in bf16 and in fp32."""
    data = load_nb101(real_h5)
    y, train = data.labels("val"), data.split("172")
    model, _ = train_model(name, data.features(train), y[train], hyperparams(name, {"epochs": epochs}), quiet=True)
    x = data.features()
    fp32, bf16 = predict(model, x, precision="fp32"), predict(model, x, precision="bf16")
    tau32 = kendall_tau(fp32, y)
    assert tau32 > 0.4  # a model that ranks, so that the comparison means something
    assert abs(kendall_tau(bf16, y) - tau32) < 0.001
    assert 0 < np.abs(bf16 - fp32).max() < 0.002  # bf16 did run, and stays within 0.2 pp


# ----------------------------------------------------------------------------- stored predictions


def test_stored_predictions_are_reused_only_for_their_cells_and_precision():
    values = np.linspace(0.8, 0.9, 5)
    info = {"predictions": {"data": stored_predictions(values, "abc", "bf16")}}
    got, why = reusable_predictions(info, "data", "abc")
    np.testing.assert_array_equal(got, values)
    assert "bf16" in why and "abc" in why
    assert reusable_predictions(info, "data", "abc", "bf16")[0] is not None
    got, why = reusable_predictions(info, "data", "xyz")
    assert got is None and "cells abc, these are xyz" in why
    got, why = reusable_predictions(info, "data", "abc", "fp32")
    assert got is None and "made in bf16, --precision fp32 asked" in why
    got, why = reusable_predictions(info, "space", "abc")
    assert got is None and "no predictions of all NB101 cells" in why
    assert reusable_predictions({}, "data", "abc")[0] is None  # checkpoints from before


def test_space_predictions_join_the_data_file_and_predict_the_rest(space):
    rows = np.random.default_rng(0).choice(NUM_CELLS, 500, replace=False)
    cells = {k: space[k][rows] for k in ("adjacency", "operations", "num_vertices")}
    model, plan = Probe(), {"batch_size": 4096, "threads": 2, "precision": "fp32"}
    pred = np.full(len(rows), 0.5)  # known values for the file's cells
    assert space_predictions(model, cells, pred, plan) is None  # not every cell: only when asked
    entry = space_predictions(model, cells, pred, plan, rest=True)
    values = entry["values"].numpy()
    assert entry["fingerprint"] == space_fingerprint(space) and entry["precision"] == "fp32"
    np.testing.assert_array_equal(values[rows], 0.5)
    rest = np.setdiff1d(np.arange(NUM_CELLS), rows)
    np.testing.assert_array_equal(values[rest], probe_score({k: space[k][rest] for k in cells}))
