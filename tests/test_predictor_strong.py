"""The default predictor `gin` (issue 6): invariances, ensemble shapes, checkpoint round trip, losses."""

import math

import numpy as np
import pytest
import torch

from dataset import cell_features
from lib.metrics import kendall_tau
from model import (
    LOSSES,
    build_model,
    load_checkpoint,
    mse_loss,
    pairwise_loss,
    pairwise_mse_loss,
    predict,
    save_checkpoint,
)
from train import fit

# input -> {1: conv3x3, 2: maxpool} -> 3: conv1x1 -> output(4), plus a skip input -> output
ADJ5 = np.array([[0, 1, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], np.int8)
LAB5 = np.array([-1, 0, 2, 1, -2], np.int8)


def padded(adj: np.ndarray, lab: np.ndarray, v: int = 7) -> tuple[np.ndarray, np.ndarray]:
    n = len(lab)
    a, o = np.zeros((v, v), np.int8), np.zeros(v, np.int8)
    a[:n, :n], o[:n] = adj, lab
    return a, o


def random_cells(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 7-vertex upper-triangular DAGs (every vertex on some input->output path not required)."""
    rng = np.random.default_rng(seed)
    adj = np.triu(rng.random((n, 7, 7)) < 0.35, 1).astype(np.int8)
    adj[:, 0, 1], adj[:, 5, 6] = 1, 1
    lab = np.concatenate([np.full((n, 1), -1), rng.integers(0, 3, (n, 5)), np.full((n, 1), -2)], 1).astype(np.int8)
    return adj, lab, np.full(n, 7)


def score(model, adj, lab, nv) -> np.ndarray:
    return predict(model, cell_features(adj, lab, nv))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("gin", hidden=16, members=3)
    m.set_label_norm(0.9, 0.02)
    return m.eval()


def test_isomorphic_reencoding_same_prediction(model):
    adj, lab, nv = random_cells(64, seed=1)
    rng = np.random.default_rng(2)
    keep, adj2, lab2 = [], [], []
    for i in range(len(adj)):
        for _ in range(20):  # an interior permutation that keeps the matrix upper-triangular
            p = np.concatenate([[0], 1 + rng.permutation(5), [6]])
            a2 = adj[i][np.ix_(p, p)]
            if not np.tril(a2).any() and (p != np.arange(7)).any():
                keep.append(i), adj2.append(a2), lab2.append(lab[i][p])
                break
    assert len(keep) > 10
    before = score(model, adj[keep], lab[keep], nv[keep])
    after = score(model, np.stack(adj2), np.stack(lab2), nv[keep])
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_padding_and_garbage_in_padding_do_not_change_prediction(model):
    unpadded = score(model, ADJ5[None], LAB5[None], np.array([5]))
    a, o = padded(ADJ5, LAB5)
    assert score(model, a[None], o[None], np.array([5])) == pytest.approx(unpadded, abs=1e-6)
    a[5:, :], a[:, 5:], o[5:] = 1, 1, 2  # junk beyond num_vertices is masked away
    assert score(model, np.triu(a, 1)[None], o[None], np.array([5])) == pytest.approx(unpadded, abs=1e-6)


def test_prediction_depends_on_the_cell(model):
    adj, lab, nv = random_cells(32, seed=3)
    assert np.std(score(model, adj, lab, nv)) > 0


def test_members_scored_separately_in_training_mode(model):
    x = cell_features(*random_cells(8))
    model.train()
    assert model(x).shape == (8, 3)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (8,)


def test_checkpoint_round_trip(model, tmp_path):
    adj, lab, nv = random_cells(16, seed=4)
    save_checkpoint(tmp_path / "c.pt", model, split={"name": "172", "seed": 0})
    loaded, info = load_checkpoint(tmp_path / "c.pt")
    assert info["model"] == "gin" and info["model_args"]["members"] == 3 and info["split"]["name"] == "172"
    assert info["label_norm"] == {"mean": pytest.approx(0.9), "std": pytest.approx(0.02)}
    np.testing.assert_array_equal(score(loaded, adj, lab, nv), score(model, adj, lab, nv))


def test_pairwise_loss_known_values():
    t = torch.tensor([1.0, 0.0])
    assert pairwise_loss(torch.tensor([0.0, 0.0]), t).item() == pytest.approx(math.log(2))
    assert pairwise_loss(torch.tensor([1.0, 0.0]), t).item() == pytest.approx(math.log1p(math.exp(-1)))
    assert pairwise_loss(torch.tensor([0.0, 1.0]), t).item() == pytest.approx(math.log1p(math.exp(1)))
    # ties carry no pairs; three cells: pairs (0>1), (0>2), (1>2) -> softplus(-(s_i - s_j)) averaged
    s, t3 = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([3.0, 2.0, 1.0])
    want = np.mean([math.log1p(math.exp(-d)) for d in (2.0, 1.0, -1.0)])
    assert pairwise_loss(s, t3).item() == pytest.approx(want)
    assert pairwise_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])).item() == 0.0
    # an ensemble's columns are averaged: member 0 right by 1, member 1 wrong by 1
    two = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert pairwise_loss(two, t).item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2)


def test_mse_and_combined_losses_known_values():
    t = torch.tensor([1.0, 0.0])
    assert mse_loss(torch.tensor([0.0, 0.0]), t).item() == pytest.approx(0.5)
    assert mse_loss(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), t).item() == pytest.approx(4 / 4)
    s = torch.tensor([0.0, 0.0])
    assert pairwise_mse_loss(s, t).item() == pytest.approx(math.log(2) + 0.5)
    assert set(LOSSES) >= {"mse", "pairwise", "pairwise+mse"}


def test_gin_learns_a_ranking():
    """Synthetic label = number of conv3x3 vertices - maxpools + noise: a few epochs rank it well."""
    adj, lab, nv = random_cells(200, seed=5)
    y = (lab == 0).sum(1) - 0.5 * (lab == 2).sum(1) + np.random.default_rng(0).normal(0, 0.1, len(lab))
    x = cell_features(adj, lab, nv)
    torch.manual_seed(0)
    m = build_model("gin", hidden=16, members=2)
    fit(m, {k: v[:150] for k, v in x.items()}, y[:150], epochs=20, batch_size=50, lr=3e-3, wd=0.0, loss="pairwise+mse")
    pred = predict(m, {k: v[150:] for k, v in x.items()})
    assert kendall_tau(pred, y[150:]) > 0.7
    assert abs(np.mean(pred) - np.mean(y[150:])) < 0.5  # the MSE term keeps scores in label units
