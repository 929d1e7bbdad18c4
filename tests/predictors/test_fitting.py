"""lib/predictors/fitting.py, through model.train_model: the loop lowers the loss and learns a ranking, its
threads (capped per model), AdamSteps against torch.optim.Adam, a batch larger than the training set."""

import numpy as np
import pytest
import torch

from dataset import load_nb101
from lib.predictors.features import cell_features
from lib.predictors.fitting import AdamSteps, TrainError
from lib.predictors.inference import predict
from lib.predictors.metrics import kendall_tau
from model import MODELS, Predictor, build_model, hyperparams, train_model


@pytest.mark.slow
def test_training_lowers_the_loss_and_learns_the_ranking(demo_h5):
    data = load_nb101(demo_h5)
    y = data.labels("val")
    train, held_out = np.arange(0, 200), np.arange(200, len(data))
    hp = dict(epochs=40, batch_size=10, lr=1e-3, wd=0.0, loss="mse")
    threads = torch.get_num_threads()
    model, history = train_model("gcn", data.features(train), y[train], hp, seed=0, quiet=True)
    assert len(history) == 40 and history[-1] < 0.5 * history[0]
    assert model.label_mean.item() == pytest.approx(y[train].mean())  # normalised with training labels only
    assert model.label_std.item() == pytest.approx(y[train].std())
    assert kendall_tau(predict(model, data.features(held_out)), y[held_out]) > 0.3
    assert torch.get_num_threads() == threads and not model.training  # training's 1 thread restored


@pytest.mark.parametrize("cap, want", [(1, 1), (None, 2)])
def test_training_threads_are_capped_by_the_model(cap, want, cells, monkeypatch):
    """A model trains on `threads` intra-op threads, at most its TRAIN_THREADS, and the setting is restored."""
    seen = []

    class Threads(Predictor):
        name, TRAIN_THREADS = "threads", cap

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(5))

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return (x["operations"] * self.w).sum((1, 2))

    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])
    before = torch.get_num_threads()
    y = np.linspace(0.8, 0.9, len(cells["num_vertices"]))
    monkeypatch.setitem(MODELS, "threads", Threads)
    train_model("threads", x, y, dict(epochs=2, batch_size=16, lr=1e-3, wd=0.0, loss="mse"), threads=2, quiet=True)
    assert set(seen) == {want} and torch.get_num_threads() == before


@pytest.mark.parametrize("wd", [0.0, 1e-3])
def test_adam_steps_are_torch_optim_adam(wd, cells):
    """AdamSteps against torch.optim.Adam (fused) on the same gradients and learning rates: bitwise."""
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])
    target = torch.linspace(-1, 1, len(cells["num_vertices"]))
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("gcn").train())
    ours, theirs = models
    adam = AdamSteps(list(ours.parameters()), wd=wd)
    reference = torch.optim.Adam(theirs.parameters(), lr=1.0, weight_decay=wd, fused=True)
    for step, lr in enumerate(np.linspace(3e-3, 1e-4, 12)):
        for model in models:
            torch.manual_seed(step)  # the same dropout masks
            torch.nn.functional.mse_loss(model(x), target).backward()
        adam.step(float(lr))
        for group in reference.param_groups:
            group["lr"] = float(lr)
        reference.step()
        adam.zero_grad()
        reference.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    start = build_model("gcn")
    for a, b, before in zip(ours.parameters(), theirs.parameters(), start.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, before)  # every parameter moved


def test_fit_rejects_a_batch_larger_than_the_training_set(demo_h5):
    data = load_nb101(demo_h5)
    with pytest.raises(TrainError, match="batch size 10 is larger than the 5 training cells"):
        train_model("mlp", data.features(np.arange(5)), data.labels()[:5], hyperparams("mlp"), quiet=True)
