"""model.py: shapes, masks and padding, the reference architectures, predict and the checkpoint."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model as M
from dataset import cell_features


@pytest.fixture(scope="module")
def cells(space):
    """Up to 40 cells of each size 2..7, spread over the enumerated space."""
    nv = space["num_vertices"]
    rows = [np.flatnonzero(nv == n) for n in range(2, 8)]
    idx = np.concatenate([r[np.unique(np.linspace(0, len(r) - 1, 40).astype(int))] for r in rows])
    return {k: v[idx] for k, v in space.items()}


def features(cells):
    return cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])


def fresh(name, **kwargs):
    torch.manual_seed(0)
    return M.build_model(name, **kwargs).eval()


@pytest.mark.parametrize("name", ["mlp", "gcn"])
def test_forward_shape_and_finite(name, cells):
    x = features(cells)
    out = fresh(name)(x)
    assert out.shape == (len(cells["hash"]),) and torch.isfinite(out).all()
    assert out.std() > 0  # different cells, different scores


def junk_padding(x: dict, n: int, seed: int = 0) -> dict:
    """Random edges and ops in every row/column beyond the first n vertices; mask/num_vertices kept."""
    g = torch.Generator().manual_seed(seed)
    x = {k: v.clone() for k, v in x.items()}
    junk_adj = torch.randint(0, 2, x["adjacency"].shape, generator=g).float()
    pad = torch.ones(7, 7, dtype=torch.bool)
    pad[:n, :n] = False
    x["adjacency"][:, pad] = junk_adj[:, pad]
    x["operations"][:, n:] = F.one_hot(torch.randint(0, 5, (len(x["mask"]), 7 - n), generator=g), 5).float()
    return x


@pytest.mark.parametrize("name", ["mlp", "gcn"])
def test_padding_vertices_do_not_change_prediction(name, cells):
    sel = cells["num_vertices"] == 5
    x = features({k: v[sel] for k, v in cells.items()})
    assert x["adjacency"][:, 5:].sum() == 0 and x["operations"][:, 5:].sum() == 0  # dataset zeros padding
    model = fresh(name)
    clean = model(x)
    for seed in range(3):
        dirty = junk_padding(x, 5, seed)
        assert dirty["adjacency"][:, 5:].sum() > 0
        torch.testing.assert_close(model(dirty), clean, rtol=0, atol=1e-6)
    # the mask is what the model trusts: a mask that claims the junk vertices changes the prediction
    dirty["mask"][:, 5:] = 1
    assert not torch.allclose(model(dirty), clean, atol=1e-4)


def test_gcn_unpadded_graph_gives_the_same_prediction(cells):
    sel = cells["num_vertices"] == 5
    c = {k: v[sel] for k, v in cells.items()}
    model = fresh("gcn")
    padded = model(features(c))
    small = cell_features(c["adjacency"][:, :5, :5], c["operations"][:, :5], c["num_vertices"])
    torch.testing.assert_close(model(small), padded, rtol=0, atol=1e-6)


def neuralpredictor_reference(model: M.GCN, x: dict) -> torch.Tensor:
    """neuralpredictor.pytorch model.py, written out: relu per direction, normalised transpose of the
    normalised adjacency with self-loops, sum over vertices / num_vertices."""

    def norm(a):
        return a / a.sum(2, keepdim=True)

    adj, out = x["adjacency"], x["operations"]
    adj = norm(adj + torch.eye(adj.shape[1]))
    for layer in model.gcn:
        w1, w2 = layer.weight.chunk(2, dim=1)
        out = (F.relu(adj @ (out @ w1)) + F.relu(norm(adj.transpose(1, 2)) @ (out @ w2))) / 2
    out = out.sum(1) / x["num_vertices"][:, None]
    return model.fc2(model.fc1(out)).view(-1)


def test_gcn_matches_neuralpredictor_pytorch(cells):
    model = fresh("gcn")
    x = features(cells)
    torch.testing.assert_close(model(x), neuralpredictor_reference(model, x), rtol=1e-5, atol=1e-5)


def test_architectures_have_the_reference_sizes():
    mlp = fresh("mlp")
    inputs = sum(d * 64 + 64 for d in (1, 49, 35, 7))
    trunk = sum(a * b + b for a, b in [(256, 512), (512, 256), (256, 128), (128, 64), (64, 32), (32, 1)])
    assert sum(p.numel() for p in mlp.parameters()) == inputs + trunk
    gcn = fresh("gcn")
    assert sum(p.numel() for p in gcn.parameters()) == 2 * (5 * 144 + 2 * 144 * 144) + 144 * 128 + 128
    assert gcn.fc1.bias is None and gcn.fc2.bias is None
    bound = (6 / (144 + 144)) ** 0.5  # xavier-uniform, per direction
    w = gcn.gcn[1].weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_registry_defaults_and_losses():
    assert {"mlp", "gcn"} <= set(M.MODELS)
    for name, cls in M.MODELS.items():
        assert cls.name == name
        assert set(cls.DEFAULTS) == {"epochs", "batch_size", "lr", "wd", "loss"}
        assert cls.DEFAULTS["loss"] in M.LOSSES
    assert M.MODELS["gcn"].DEFAULTS == dict(epochs=300, batch_size=10, lr=1e-4, wd=1e-3, loss="mse")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        M.build_model("nope")


def test_mse_loss_on_known_input():
    loss = M.LOSSES["mse"](torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 0.0]))
    assert loss.item() == pytest.approx(5 / 3)


@pytest.mark.parametrize("name", ["mlp", "gcn"])
def test_predict_is_batch_independent_and_denormalised(name, cells):
    model = fresh(name)
    model.set_label_norm(0.9, 0.02)
    x = features(cells)
    with torch.no_grad():
        want = model(x).double().numpy() * 0.02 + 0.9
    for bs in (1, 7, None):
        np.testing.assert_allclose(M.predict(model, x, bs), want, rtol=0, atol=1e-6)
    assert not model.training


@pytest.mark.parametrize("name,args", [("mlp", {"embed": 32}), ("gcn", {"hidden": 32, "layers": 2})])
def test_checkpoint_round_trip(name, args, cells, tmp_path):
    model = fresh(name, **args)
    model.set_label_norm(0.91, 0.025)
    x = features(cells)
    before = M.predict(model, x)
    M.save_checkpoint(tmp_path / "ckpt.pt", model, split={"name": "172", "seed": 3}, data={"fingerprint": "abc"})
    loaded, info = M.load_checkpoint(tmp_path / "ckpt.pt")
    assert type(loaded) is type(model) and loaded.args == model.args and not loaded.training
    assert info["model"] == name and info["model_args"] == model.args
    assert info["label_norm"] == pytest.approx({"mean": 0.91, "std": 0.025})
    assert info["split"] == {"name": "172", "seed": 3} and info["data"] == {"fingerprint": "abc"}
    np.testing.assert_array_equal(M.predict(loaded, x), before)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        M.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"version": 99, "model": "gcn"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="checkpoint version 99"):
        M.load_checkpoint(tmp_path / "old.pt")


def test_cpu_math_restores_threads_and_free_cores_is_in_range():
    threads = torch.get_num_threads()
    with M.cpu_math(torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    assert 1 <= M.free_cores() <= (os.cpu_count() or 1)
