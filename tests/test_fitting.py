"""lib/fitting.py: targets and hyper-parameters, the training loop, batched prediction."""

import numpy as np
import pytest
import torch

from dataset import cell_features, load_nb101
from lib import fitting as FT
from lib.metrics import kendall_tau
from model import build_model


def test_parse_target_and_hyperparams():
    assert FT.parse_target("val") == ("val", 0)
    assert FT.parse_target("test:2") == ("test", 2)
    assert FT.parse_target("val:mean") == ("val", "mean")
    hp = FT.hyperparams("gcn", {"epochs": 5, "lr": None, "model": "gcn"})
    assert hp == dict(epochs=5, batch_size=10, lr=1e-4, wd=1e-3, loss="mse")


def test_training_lowers_the_loss_and_learns_the_ranking(demo_h5):
    data = load_nb101(demo_h5)
    y = data.labels("val")
    train, held_out = np.arange(0, 200), np.arange(200, len(data))
    hp = dict(epochs=40, batch_size=10, lr=1e-3, wd=0.0, loss="mse")
    threads = torch.get_num_threads()
    model, history = FT.train_model("gcn", data.features(train), y[train], hp, seed=0, quiet=True)
    assert len(history) == 40 and history[-1] < 0.5 * history[0]
    assert model.label_mean.item() == pytest.approx(y[train].mean())  # normalised with training labels only
    assert model.label_std.item() == pytest.approx(y[train].std())
    assert kendall_tau(FT.predict(model, data.features(held_out)), y[held_out]) > 0.3
    assert torch.get_num_threads() == threads and not model.training  # training's 1 thread restored


def test_fit_rejects_a_batch_larger_than_the_training_set(demo_h5):
    data = load_nb101(demo_h5)
    with pytest.raises(FT.TrainError, match="batch size 10 is larger than the 5 training cells"):
        FT.train_model("mlp", data.features(np.arange(5)), data.labels()[:5], FT.hyperparams("mlp"), quiet=True)


@pytest.mark.parametrize("name", ["mlp", "gcn"])
def test_predict_is_batch_independent_and_denormalised(name, cells):
    torch.manual_seed(0)
    model = build_model(name).eval()
    model.set_label_norm(0.9, 0.02)
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])
    with torch.no_grad():
        want = model(x).double().numpy() * 0.02 + 0.9
    for bs in (1, 7, None):
        np.testing.assert_allclose(FT.predict(model, x, bs), want, rtol=0, atol=1e-6)
    assert not model.training
    np.testing.assert_array_equal(FT.predict_cells(model, cells, 7), FT.predict(model, x, 7))
