"""lib/predictors/cell_statistics.py, lib/predictors/pretraining.py and model.py's `pgin`: statistics against a
direct per-cell reference, the pretraining cache (written, read, keyed: a mismatch rebuilds), the rank-normal
target map, batched members against each member on its own, and pgin trained and predicted end to end.

One tiny pretraining (a few steps, its own cache in a temporary folder) serves the whole module."""

import math

import numpy as np
import pytest
import torch

import model as M
from lib.nb101.network import trainable_parameters
from lib.predictors import pretraining
from lib.predictors.cell_statistics import N_STATISTICS, cell_statistics, parameter_table
from lib.predictors.features import cell_features
from lib.predictors.flow_gin import FlowGIN, StackedFlowGIN
from lib.predictors.inference import predict
from lib.predictors.metrics import kendall_tau
from model import hyperparams, train_model

TINY = dict(epochs=0.005, batch_size=256)  # 8 steps: the mechanics, not the quality


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny pretraining, cached in its own folder; PRETRAIN_CACHE points there for this module."""
    cache = tmp_path_factory.mktemp("pretrain") / "pgin_pretrained.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pretraining, "PRETRAIN_CACHE", cache)
        mp.setitem(pretraining.PRETRAIN, "batch_size", TINY["batch_size"])
        mp.setitem(pretraining.PRETRAIN, "epochs", TINY["epochs"])  # the default config, in this module
        blob = pretraining.pretrained(5, 5, 64, 3, quiet=True, epochs=TINY["epochs"])
        yield cache, blob


def reference_statistics(adj: np.ndarray, labels: np.ndarray, n: int) -> list[float]:
    """The 21 statistics of one cell by enumerating its input->output paths (depth-first)."""
    paths = []

    def walk(v, path):
        if v == n - 1:
            paths.append(path)
        for u in range(v + 1, n):
            if adj[v, u]:
                walk(u, path + [u])

    walk(0, [0])
    inner = labels[1 : n - 1]
    lengths = [len(p) - 1 for p in paths]
    conv3_on = [sum(labels[v] == 0 for v in p[1:-1]) for p in paths]
    per_op = [np.mean([sum(labels[v] == k for v in p[1:-1]) for p in paths]) for k in range(3)]
    params = trainable_parameters(adj[None], labels[None], np.array([n]))[0]
    return [
        math.log(params),
        n,
        adj.sum(),
        *[(inner == k).sum() for k in range(3)],
        max(lengths),
        min(lengths),
        math.log1p(len(paths)),
        adj[0].sum(),
        adj[:, n - 1].sum(),
        max(conv3_on),
        *[math.log1p(lengths.count(k)) for k in range(1, 7)],
        *per_op,
    ]


def test_statistics_equal_a_direct_reference(space):
    rows = np.random.RandomState(0).choice(len(space["num_vertices"]), 40, replace=False)
    a, labels, nv = (space[k][rows] for k in ("adjacency", "operations", "num_vertices"))
    x = cell_features(a, labels, nv)
    table = parameter_table({k: space[k][rows] for k in ("adjacency", "operations", "num_vertices")})
    got = cell_statistics(x["adjacency"], x["operations"], x["mask"], table).numpy()
    want = np.array([reference_statistics(a[i], labels[i], int(nv[i])) for i in range(len(rows))])
    assert got.shape == (40, N_STATISTICS)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # a cell whose matrix the table lacks gets its parameter count in closed form
    empty = {k: v[:0] for k, v in table.items()}
    lacking = cell_statistics(x["adjacency"], x["operations"], x["mask"], empty).numpy()
    np.testing.assert_allclose(lacking[:, 0], want[:, 0], rtol=1e-6)


@pytest.mark.slow
def test_pretraining_cache_is_written_read_and_keyed(tiny, monkeypatch):
    cache, blob = tiny
    assert cache.exists() and blob["key"]["epochs"] == TINY["epochs"] and math.isfinite(blob["loss"])
    assert set(blob["encoder"]) == {k for k in StackedFlowGIN(5, 5, 64, 3, True).state_dict() if "head" not in k}
    assert blob["stats_mean"].shape == (N_STATISTICS,) and (blob["stats_std"] > 0).all()
    calls = []
    real = pretraining.pretrain
    monkeypatch.setattr(pretraining, "pretrain", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = pretraining.pretrained(5, 5, 64, 3, quiet=True, epochs=TINY["epochs"])  # read, not rebuilt
    assert calls == [] and torch.equal(again["encoder"]["embed.weight"], blob["encoder"]["embed.weight"])
    # another architecture is another key: rebuilt (into a copy, the module's cache stays as it is)
    other = cache.with_name("other.pt")
    other.write_bytes(cache.read_bytes())
    rebuilt = pretraining.pretrained(2, 5, 16, 1, cache=other, quiet=True, epochs=TINY["epochs"])
    assert len(calls) == 1 and rebuilt["encoder"]["embed.weight"].shape == (2, 16, 5)
    assert torch.load(other, weights_only=True)["key"]["hidden"] == 16
    # without an explicit cache, another config goes to a file of its own: the default's stays
    before = cache.read_bytes()
    two = pretraining.pretrained(2, 5, 16, 1, quiet=True, epochs=TINY["epochs"])
    own = pretraining.cache_path(two["key"])
    assert len(calls) == 2 and own != cache and own.parent == cache.parent and own.exists()
    assert cache.read_bytes() == before and pretraining.cache_path(blob["key"]) == cache


def test_rank_target_map_is_strictly_increasing_and_round_trips():
    y = np.random.RandomState(0).beta(20, 2, 172)
    y[:10] = y[10]  # ties
    model = M.build_model("pgin", pretrain_epochs=TINY["epochs"])
    z = model.fit_target(y)
    assert (
        len(np.unique(z)) == len(np.unique(y)) and (np.argsort(z, kind="stable") == np.argsort(y, kind="stable")).all()
    )
    assert abs(np.median(z)) < 0.05 and 2 < z.max() < 3  # normal scores: Phi^-1(171.5 / 172) = 2.5
    np.testing.assert_allclose(model.to_accuracy(z), y, atol=0.02 * np.ptp(y))  # resampled to 256 knots
    s = np.linspace(-6, 6, 10001)  # well beyond the knots on both sides
    assert (np.diff(model.to_accuracy(s)) > 0).all()
    extremes = model.to_accuracy(np.array([z.min(), z.max()]))
    np.testing.assert_allclose(extremes, [y.min(), y.max()], atol=1e-12)


@pytest.mark.slow
def test_pgin_batched_members_equal_per_member_encoders(tiny, cells):
    model = M.build_model("pgin", pretrain_epochs=TINY["epochs"])
    model.prepare(quiet=True)
    stacked = model.members.eval()
    x = cell_features(cells["adjacency"], cells["operations"], cells["num_vertices"])
    adj, ops, mask = M.masked_inputs(x)
    stats = model.statistics(adj, ops, mask)
    with torch.no_grad():
        batched, readout = stacked(adj, ops, mask, stats), stacked.encode(adj, ops, mask)
        for i in range(stacked.k):
            one = FlowGIN(5, 64, 3, True).eval()  # member i's encoder on its own (its head reads no statistics)
            encoder = {k: v[i] for k, v in stacked.state_dict().items() if not k.startswith("head")}
            one.load_state_dict(encoder | {k: v for k, v in one.state_dict().items() if k.startswith("head")})
            h = one.embed(ops)
            for layer in one.layers:
                h = layer(h, adj)
            h = h * mask[..., None]
            out = h[torch.arange(len(h)), mask.sum(1).long() - 1]
            torch.testing.assert_close(readout[i], torch.cat((out, h.sum(1) / mask.sum(1, keepdim=True)), 1))
            first, _, last = stacked.head  # member i's head on [readout, statistics], plain matmuls
            hidden = torch.relu(torch.cat((readout[i], stats), 1) @ first.weight[i].T + first.bias[i])
            torch.testing.assert_close(batched[i], (hidden @ last.weight[i].T + last.bias[i]).squeeze(1))


@pytest.mark.slow
def test_pgin_starts_from_the_pretrained_encoders(tiny):
    _, blob = tiny
    model = M.build_model("pgin", pretrain_epochs=TINY["epochs"])
    model.prepare(quiet=True)
    state = model.members.state_dict()
    assert all(torch.equal(state[k], v) for k, v in blob["encoder"].items())
    torch.testing.assert_close(model.stats_mean, blob["stats_mean"])


@pytest.mark.slow
def test_pgin_trains_and_predicts_end_to_end(tiny, real_h5, tmp_path):
    from dataset import load_nb101

    data = load_nb101(real_h5)
    y = data.labels("val", epochs=108, repeat=0)
    train = np.random.RandomState(0).permutation(len(y))[:172]
    hp = hyperparams("pgin", {"epochs": 60})
    model, history = train_model(
        "pgin", data.features(train), y[train], hp, seed=0, model_args={"pretrain_epochs": TINY["epochs"]}, quiet=True
    )
    assert history[-1] < history[0]
    pred = predict(model, data.features(), precision="fp32")
    assert kendall_tau(pred, y) > 0.6  # 60 epochs on 172 cells, tiny pretraining: still a ranking
    assert abs(np.median(pred) - np.median(y)) < 0.02  # calibrated accuracies, not scores
    bf16 = predict(model, data.features(), precision="bf16")
    assert abs(kendall_tau(bf16, y) - kendall_tau(pred, y)) < 0.001  # as for every model (tests/test_inference.py)
    M.save_checkpoint(tmp_path / "c.pt", model)
    again, info = M.load_checkpoint(tmp_path / "c.pt")
    assert info["model"] == "pgin"
    np.testing.assert_array_equal(predict(again, data.features(), precision="fp32"), pred)
