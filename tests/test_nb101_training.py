"""Tests for lib/nb101_training.py: TF1's RMSProp, the LR schedule, TF's initialisers, frozen dummies, the steps."""

from __future__ import annotations

import copy
import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from conftest import REAL_TFRECORD, random_cells, require

from lib import cifar10, nb101_training
from lib.nb101_records import decode_record, metric_values, read_tfrecord
from lib.nb101_space import build_network, count_parameters, make_cell, trainable_parameters

TINY_CELL = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])


def test_tf_rmsprop_matches_tensorflow_formula():
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=5), rng.normal(size=(4, 5))
    lrs = [0.0, 0.2, 0.1, 0.05]
    w, ms, mom = w0.copy(), np.ones(5), np.zeros(5)  # TF1 RMSProp: ms starts at 1
    for g, lr in zip(grads, lrs, strict=True):
        ms = 0.9 * ms + 0.1 * g**2
        mom = 0.9 * mom + lr * g / np.sqrt(ms + 1.0)
        w = w - mom
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = nb101_training.TFRMSprop([p], lr=0.0, decay=0.9, momentum=0.9, eps=1.0)
    for g, lr in zip(grads, lrs, strict=True):
        p.grad, opt.param_groups[0]["lr"] = torch.tensor(g), lr
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12)


def test_lr_schedule_is_nb101_cosine_by_step():
    assert nb101_training.lr_at(0, 100, 0.2) == 0.0  # NB101 trains step 0 with LR 0
    assert nb101_training.lr_at(1, 100, 0.2) == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi / 100)))
    assert nb101_training.lr_at(50, 100, 0.2) == pytest.approx(0.1)


def test_network_settings_and_parameter_count():
    cell = make_cell(
        [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
    )
    net = build_network(cell, 16, 2, 2)
    nb101_training.init_like_tf(net)
    nb101_training.freeze_dummies(net)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.003 and m.eps == 1e-5 for m in bns)
    adj, labels = cell.padded()
    expected = trainable_parameters(adj[None], labels[None], np.array([cell.num_vertices]), 16, 2, 2)[0]
    assert count_parameters(net) == expected == sum(p.numel() for p in net.parameters() if p.requires_grad)
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.weight[0].numel() >= 72)
    std = (1 / conv.weight[0].numel()) ** 0.5
    assert conv.weight.abs().max() <= 2 * std / 0.8796 + 1e-6  # truncated normal at 2 sigma


def test_parameter_counts_match_the_real_file():
    """nb101_training.py's network (dummies frozen) has NB101's trainable_parameters for real cells."""
    path = require(REAL_TFRECORD)
    seen = {}
    for _, _, data in read_tfrecord(path):
        h, _, adj, ops, _ = json.loads(data)
        n = int(len(adj) ** 0.5)
        if n not in seen:  # one cell per vertex count, 2..7
            seen[n] = (np.array([int(c) for c in adj]).reshape(n, n), ops.split(","), decode_record(data).metrics)
        if len(seen) == 6:
            break
    for matrix, ops, pb in seen.values():
        net = build_network(make_cell(matrix, ops))
        nb101_training.freeze_dummies(net)
        assert count_parameters(net) == metric_values(pb)[0] > 0


def tiny_net(cell=TINY_CELL) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network(cell, 8, 1, 1)
    nb101_training.init_like_tf(net)
    nb101_training.freeze_dummies(net)
    nb101_training.streamline_cells(net)
    return net


def random_epoch(seed: int, n: int = 32, batch: int = 8):
    """n random uint8 images and labels, the images padded for crops, the normaliser, epoch 0's plan."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, n))
    padded, norm = cifar10.pad_for_crops(x), cifar10.normalizer(torch.device("cpu"))
    return x, y, padded, norm, torch.from_numpy(cifar10.epoch_plan(0, 0, n, batch))


def test_streamlined_cells_are_bitwise_nasbench_pytorch_and_trace_whole():
    """Every vertex count and truncated edges (channel splits with a remainder), training and eval mode."""
    x = torch.randn(4, 3, 32, 32)
    for i, cell in enumerate(random_cells(24, seed=5)):
        torch.manual_seed(0)
        ref = build_network(cell, 13, 2, 1)  # 13 and 26 channels: uneven splits, so truncation
        net = copy.deepcopy(ref)
        nb101_training.streamline_cells(net)
        assert type(net.layers[1]).__name__ == "StreamlinedCell"
        for mode in (True, False):
            ref.train(mode), net.train(mode)
            assert torch.equal(ref(x), net(x)), cell.hash
        if i < 6:  # tracing takes ~1 s a network
            assert torch._dynamo.explain(net)(x).graph_break_count == 0, cell.hash
            torch._dynamo.reset()


def test_train_epoch_follows_the_plan_and_its_lrs():
    x, y, padded, norm, plan = random_epoch(0)
    net = tiny_net()
    params = [p for p in net.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = nb101_training.TFRMSprop(params, lr=0.0)
    stats = nb101_training.train_epoch(net, opt, params, padded, y, plan, [0.0] * 4, 1e-4, norm, nullcontext())
    assert stats.tolist()[2:] == [32, 0] and 0 <= stats[1] <= 32 and stats[0] > 0  # 4 steps of 8, all finite
    assert all(torch.equal(a, b) for a, b in zip(before, params))  # LR 0: the weights stay put
    nb101_training.train_epoch(net, opt, params, padded, y, plan, [0.0, 0.0, 0.0, 0.1], 1e-4, norm, nullcontext())
    assert opt.param_groups[0]["lr"] == 0.1 and not all(torch.equal(a, b) for a, b in zip(before, params))


def test_eval_sums_are_cross_entropy_and_correct_counts():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 20))
    norm, net = cifar10.normalizer(torch.device("cpu")), tiny_net()
    loss_sum, correct, images = nb101_training.eval_sums(net, x, y, norm, nullcontext(), 7).tolist()
    assert net.training  # eval_sums puts the model back in training mode
    net.eval()
    with torch.no_grad():
        logits = net(cifar10.normalize(x.permute(0, 3, 1, 2), *norm))
    assert images == 20 and correct == (logits.argmax(1) == y).sum().item()
    assert loss_sum == pytest.approx(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item(), rel=1e-5)


def test_train_epoch_never_waits_for_the_device(monkeypatch):
    """No .item() / bool() / .tolist() and no tensor made from host numbers inside the steps (on CUDA each
    would wait for the device): the host queues steps ahead of the GPU. One copy an epoch (the image count)."""
    x, y, padded, norm, plan = random_epoch(2, 120, 2)  # 60 steps: past the progress bar's update
    net = tiny_net()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = nb101_training.TFRMSprop(params, lr=0.0)

    def wait(*_):
        raise AssertionError("a step waited for the device")

    copies, new_tensor = [], torch.Tensor.new_tensor

    def counted(self, *a, **k):
        copies.append(a)
        return new_tensor(self, *a, **k)

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, wait)
    monkeypatch.setattr(torch, "tensor", wait)
    monkeypatch.setattr(torch.Tensor, "new_tensor", counted)
    lrs = [0.01] * 60
    stats = nb101_training.train_epoch(net, opt, params, padded, y, plan, lrs, 1e-4, norm, nullcontext(), show=True)
    evaluated = nb101_training.eval_sums(net, x, y, norm, nullcontext(), 7)
    monkeypatch.undo()
    assert copies == [([120],), ([120],)]  # one per call: the image count
    assert stats.tolist()[2:] == [120, 0] and evaluated.tolist()[2] == 120


def test_memory_layout_does_not_change_the_steps():
    x, y, padded, norm, plan = random_epoch(3)
    got = []
    for fmt in (torch.channels_last, torch.contiguous_format):
        net = tiny_net().to(memory_format=fmt)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = nb101_training.TFRMSprop(params, lr=0.0)
        train = nb101_training.train_epoch(
            net, opt, params, padded, y, plan, [0.0, 0.1, 0.1, 0.1], 1e-4, norm, nullcontext(), memory_format=fmt
        )
        evaluated = nb101_training.eval_sums(net, x, y, norm, nullcontext(), 10, memory_format=fmt)
        got.append((train, evaluated, torch.cat([p.detach().flatten() for p in params])))
    (t1, e1, w1), (t2, e2, w2) = got
    torch.testing.assert_close(t1, t2, rtol=1e-4, atol=1e-4)  # summation order only
    torch.testing.assert_close(e1, e2, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(w1, w2, rtol=1e-3, atol=1e-4)
