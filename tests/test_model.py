"""model.py: shapes, masks and padding, the reference architectures, the registry and hyper-parameters,
losses, checkpoints, and gin, the base of the default pgin (invariances, ensemble shapes, ranking losses,
learning a ranking; a seed's stacked members against K separate modules, trained the same; the
inference shortcut and its 1,864 first-layer contexts). pgin itself: tests/test_pretraining.py."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model as M
from lib.predictors.features import cell_features
from lib.predictors.fitting import fit
from lib.predictors.flow_gin import FlowGIN, StackedFlowGIN, _first_layer_contexts
from lib.predictors.inference import predict
from lib.predictors.metrics import kendall_tau
from lib.util.errors import UserError


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


@pytest.mark.parametrize("name", ["mlp", "gcn", "gin"])
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


@pytest.mark.parametrize("name", ["gcn", "gin"])
def test_unpadded_graph_gives_the_same_prediction(name, cells):
    sel = cells["num_vertices"] == 5
    c = {k: v[sel] for k, v in cells.items()}
    model = fresh(name)
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
    with pytest.raises(UserError, match="unknown model 'nope'"):
        M.build_model("nope")
    hp = M.hyperparams("gcn", {"epochs": 5, "lr": None, "model": "gcn"})  # None and foreign keys ignored
    assert hp == dict(epochs=5, batch_size=10, lr=1e-4, wd=1e-3, loss="mse")


def test_mse_loss_on_known_input():
    loss = M.LOSSES["mse"](torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 0.0]))
    assert loss.item() == pytest.approx(5 / 3)


@pytest.mark.parametrize(
    "name,args", [("mlp", {"embed": 32}), ("gcn", {"hidden": 32, "layers": 2}), ("gin", {"hidden": 16, "members": 3})]
)
def test_checkpoint_round_trip(name, args, cells, tmp_path):
    model = fresh(name, **args)
    model.set_label_norm(0.91, 0.025)
    x = features(cells)
    before = predict(model, x)
    M.save_checkpoint(tmp_path / "ckpt.pt", model, split={"name": "172", "seed": 3}, data={"fingerprint": "abc"})
    loaded, info = M.load_checkpoint(tmp_path / "ckpt.pt")
    assert type(loaded) is type(model) and loaded.args == model.args and not loaded.training
    assert info["model"] == name and info["model_args"] == model.args
    assert info["label_norm"] == pytest.approx({"mean": 0.91, "std": 0.025})
    assert info["split"] == {"name": "172", "seed": 3} and info["data"] == {"fingerprint": "abc"}
    np.testing.assert_array_equal(predict(loaded, x), before)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        M.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"version": 99, "model": "gcn"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="checkpoint version 99"):
        M.load_checkpoint(tmp_path / "old.pt")


# ----------------------------------------------------------------------------- gin, the default predictor
# input -> {1: conv3x3, 2: maxpool} -> 3: conv1x1 -> output(4), plus a skip input -> output
ADJ5 = np.array([[0, 1, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], np.int8)
LAB5 = np.array([-1, 0, 2, 1, -2], np.int8)


def padded(adj: np.ndarray, lab: np.ndarray, v: int = 7) -> tuple[np.ndarray, np.ndarray]:
    n = len(lab)
    a, o = np.zeros((v, v), np.int8), np.zeros(v, np.int8)
    a[:n, :n], o[:n] = adj, lab
    return a, o


def random_dags(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 7-vertex upper-triangular DAGs (every vertex on some input->output path not required)."""
    rng = np.random.default_rng(seed)
    adj = np.triu(rng.random((n, 7, 7)) < 0.35, 1).astype(np.int8)
    adj[:, 0, 1], adj[:, 5, 6] = 1, 1
    lab = np.concatenate([np.full((n, 1), -1), rng.integers(0, 3, (n, 5)), np.full((n, 1), -2)], 1).astype(np.int8)
    return adj, lab, np.full(n, 7)


def score(model, adj, lab, nv) -> np.ndarray:
    return predict(model, cell_features(adj, lab, nv))


@pytest.fixture(scope="module")
def gin():
    torch.manual_seed(0)
    m = M.build_model("gin", hidden=16, members=3)
    m.set_label_norm(0.9, 0.02)
    return m.eval()


def test_gin_isomorphic_reencoding_same_prediction(gin):
    adj, lab, nv = random_dags(64, seed=1)
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
    before = score(gin, adj[keep], lab[keep], nv[keep])
    after = score(gin, np.stack(adj2), np.stack(lab2), nv[keep])
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_gin_prediction_depends_on_the_cell(gin):
    adj, lab, nv = random_dags(32, seed=3)
    assert np.std(score(gin, adj, lab, nv)) > 0


def test_gin_members_scored_separately_in_training_mode(gin):
    x = cell_features(*random_dags(8))
    gin.train()
    assert gin(x).shape == (8, 3)
    gin.eval()
    with torch.no_grad():
        assert gin(x).shape == (8,)


def test_pairwise_loss_known_values():
    t = torch.tensor([1.0, 0.0])
    assert M.pairwise_loss(torch.tensor([0.0, 0.0]), t).item() == pytest.approx(math.log(2))
    assert M.pairwise_loss(torch.tensor([1.0, 0.0]), t).item() == pytest.approx(math.log1p(math.exp(-1)))
    assert M.pairwise_loss(torch.tensor([0.0, 1.0]), t).item() == pytest.approx(math.log1p(math.exp(1)))
    # ties carry no pairs; three cells: pairs (0>1), (0>2), (1>2) -> softplus(-(s_i - s_j)) averaged
    s, t3 = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([3.0, 2.0, 1.0])
    want = np.mean([math.log1p(math.exp(-d)) for d in (2.0, 1.0, -1.0)])
    assert M.pairwise_loss(s, t3).item() == pytest.approx(want)
    assert M.pairwise_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])).item() == 0.0
    # an ensemble's columns are averaged: member 0 right by 1, member 1 wrong by 1
    two = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert M.pairwise_loss(two, t).item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2)


def test_mse_and_combined_losses_known_values():
    t = torch.tensor([1.0, 0.0])
    assert M.mse_loss(torch.tensor([0.0, 0.0]), t).item() == pytest.approx(0.5)
    assert M.mse_loss(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), t).item() == pytest.approx(4 / 4)
    s = torch.tensor([0.0, 0.0])
    assert M.pairwise_mse_loss(s, t).item() == pytest.approx(math.log(2) + 0.5)
    assert set(M.LOSSES) >= {"mse", "pairwise", "pairwise+mse"}


def test_gin_learns_a_ranking():
    """Synthetic label = number of conv3x3 vertices - maxpools + noise: a few epochs rank it well."""
    adj, lab, nv = random_dags(200, seed=5)
    y = (lab == 0).sum(1) - 0.5 * (lab == 2).sum(1) + np.random.default_rng(0).normal(0, 0.1, len(lab))
    x = cell_features(adj, lab, nv)
    hp = dict(epochs=20, batch_size=50, lr=3e-3, wd=0.0, loss="pairwise+mse")
    m, _ = M.train_model("gin", {k: v[:150] for k, v in x.items()}, y[:150], hp, model_args=dict(hidden=16, members=2))
    pred = predict(m, {k: v[150:] for k, v in x.items()})
    assert kendall_tau(pred, y[150:]) > 0.7
    assert abs(np.mean(pred) - np.mean(y[150:])) < 0.5  # the MSE term keeps scores in label units


# ----------------------------------------------------------------------------- gin's members, batched


class LoopGIN(M.Predictor):
    """The ensemble as K separate FlowGIN modules evaluated one after the other: the reference."""

    name = "loop-gin"

    def __init__(self, **args):
        super().__init__(**args)
        self.members = torch.nn.ModuleList(FlowGIN(5, args["hidden"], 3, True) for _ in range(args["members"]))

    def forward(self, x):
        adj, ops, mask = M.masked_inputs(x)
        scores = torch.stack([m(adj, ops, mask) for m in self.members], 1)
        return scores if self.training else scores.mean(1)


def test_flow_gin_inference_shortcut_equals_the_training_computation(cells):
    """Eval mode (first layer once per distinct vertex context, both directions in one matmul) against
    training mode, on cells and on inputs that are not 0/1 and one-hot (every vertex its own context)."""
    adj, ops, mask = M.masked_inputs(features(cells))
    gen = torch.Generator().manual_seed(1)
    soft = (adj * torch.rand(adj.shape, generator=gen), ops * torch.rand(ops.shape, generator=gen), mask)
    for layers in (1, 2, 3):
        torch.manual_seed(0)
        net = StackedFlowGIN(3, 5, 16, layers, True).reset_parameters()
        for inputs in ((adj, ops, mask), soft):
            with torch.no_grad():
                want, got = net.train().encode(*inputs), net.eval().encode(*inputs)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    contexts, inverse = _first_layer_contexts(adj, ops)
    vertex = torch.cat((ops, adj.transpose(1, 2) @ ops, adj @ ops, adj.sum(1)[..., None], adj.sum(2)[..., None]), 2)
    assert torch.equal(contexts[inverse], vertex.flatten(0, 1))  # each vertex maps to its own context
    assert len(contexts) == len(torch.unique(contexts, dim=0)) < len(inverse) / 3
    assert len(_first_layer_contexts(*soft[:2])[0]) == len(inverse)


@pytest.mark.slow
def test_the_space_has_1864_first_layer_contexts(space):
    rows = []
    for lo in range(0, len(space["num_vertices"]), 100_000):
        adj, ops, _ = M.masked_inputs(features({k: v[lo : lo + 100_000] for k, v in space.items()}))
        rows.append(_first_layer_contexts(adj, ops)[0])
    assert len(torch.unique(torch.cat(rows), dim=0)) == 1864


def test_gin_seed_gives_the_ensemble_of_separate_modules_and_trains_the_same(cells):
    """Same seed, same initial weights as K FlowGINs built in turn; a few epochs of fit give the same model."""
    torch.manual_seed(0)
    loop = LoopGIN(hidden=16, members=3)
    torch.manual_seed(0)
    gin = M.build_model("gin", hidden=16, members=3)
    stacked = M.build_model("gin", hidden=16, members=3)
    stacked.load_state_dict(loop.state_dict())  # a checkpoint with one module per member loads
    for key, value in gin.state_dict().items():
        torch.testing.assert_close(stacked.state_dict()[key], value, rtol=0, atol=0)
    x, y = features(cells), np.linspace(0.8, 0.95, len(cells["hash"]))
    hp = dict(epochs=3, batch_size=32, lr=2e-3, wd=0.0)
    loss_loop, loss_gin = (
        fit(m, x, torch.tensor(m.fit_target(y), dtype=torch.float32), M.LOSSES["pairwise+mse"], **hp, quiet=True)
        for m in (loop, gin)
    )
    np.testing.assert_allclose(loss_gin, loss_loop, rtol=1e-5)
    stacked.load_state_dict(loop.state_dict())
    for key, value in gin.state_dict().items():
        torch.testing.assert_close(stacked.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict(gin, x, precision="fp32"), predict(loop, x, precision="fp32"), atol=1e-6)


def test_pathmlp_reads_the_path_encoding_and_scores_each_member(cells):
    from lib.predictors.path_encoding import path_encoding

    model = fresh("pathmlp", members=3)
    x = features(cells)
    want = path_encoding(cells["adjacency"], cells["operations"], cells["num_vertices"])
    np.testing.assert_array_equal(model.paths(x).numpy(), want)
    with torch.no_grad():
        members = model.member_scores(x)
        assert members.shape == (len(want), 3) and members.std(1).min() > 0  # members differ
        torch.testing.assert_close(model(x), members.mean(1))
        same = {**x, "paths": torch.from_numpy(want).float()}  # what training precomputes once
        torch.testing.assert_close(model(same), model(x))
