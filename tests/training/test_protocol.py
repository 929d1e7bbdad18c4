"""Tests for lib/training/protocol.py: TF1's RMSProp, the LR schedule, TF's initialisers, frozen dummies, the steps."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REAL_TFRECORD, random_cells, require

from lib.nb101.cell import make_cell
from lib.nb101.network import build_network, count_parameters, trainable_parameters
from lib.tfrecord.records import decode_record, metric_values, read_tfrecord
from lib.training import augment, protocol
from lib.training.protocol import Images

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
    opt = protocol.TFRMSprop([p], lr=0.0, decay=0.9, momentum=0.9, eps=1.0)
    for g, lr in zip(grads, lrs, strict=True):
        p.grad, opt.param_groups[0]["lr"] = torch.tensor(g), lr
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12)


def test_lr_schedule_is_nb101_cosine_by_step():
    assert protocol.lr_at(0, 100, 0.2) == 0.0  # NB101 trains step 0 with LR 0
    assert protocol.lr_at(1, 100, 0.2) == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi / 100)))
    assert protocol.lr_at(50, 100, 0.2) == pytest.approx(0.1)


def test_network_settings_and_parameter_count():
    cell = make_cell(
        [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
    )
    net = build_network(cell, 16, 2, 2)
    protocol.init_like_tf(net)
    protocol.freeze_dummies(net)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.003 and m.eps == 1e-5 for m in bns)
    adj, labels = cell.padded()
    expected = trainable_parameters(adj[None], labels[None], np.array([cell.num_vertices]), 16, 2, 2)[0]
    assert count_parameters(net) == expected == sum(p.numel() for p in net.parameters() if p.requires_grad)
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.weight[0].numel() >= 72)
    std = (1 / conv.weight[0].numel()) ** 0.5
    assert conv.weight.abs().max() <= 2 * std / 0.8796 + 1e-6  # truncated normal at 2 sigma


def test_parameter_counts_match_the_real_file():
    """The network (dummies frozen) has NB101's trainable_parameters for real cells."""
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
        protocol.freeze_dummies(net)
        assert count_parameters(net) == metric_values(pb)[0] > 0


def tiny_net(cell=TINY_CELL) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network(cell, 8, 1, 1)
    protocol.init_like_tf(net)
    protocol.freeze_dummies(net)
    protocol.streamline_cells(net)
    return net


def random_epoch(seed: int, n: int = 32, batch: int = 8) -> tuple[Images, Images, torch.Tensor]:
    """n random uint8 images and labels as they are, the same padded for crops, and epoch 0's plan."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, n))
    norm = augment.normalizer(torch.device("cpu"))
    plan = torch.from_numpy(augment.epoch_plan(0, 0, n, batch))
    return Images(x, y, norm), Images(augment.pad_for_crops(x), y, norm), plan


def test_streamlined_cells_are_bitwise_nasbench_pytorch():
    """Every vertex count and truncated edges (channel splits with a remainder), training and eval mode."""
    x = torch.randn(4, 3, 32, 32)
    for cell in random_cells(24, seed=5):
        torch.manual_seed(0)
        ref = build_network(cell, 13, 2, 1)  # 13 and 26 channels: uneven splits, so truncation
        net = copy.deepcopy(ref)
        protocol.streamline_cells(net)
        assert type(net.layers[1]).__name__ == "StreamlinedCell"
        for mode in (True, False):
            ref.train(mode), net.train(mode)
            assert torch.equal(ref(x), net(x)), cell.hash


@pytest.mark.slow
def test_streamlined_networks_trace_as_one_graph():
    """torch.compile sees each network whole (nasbench_pytorch's cells break the graph at every vertex)."""
    x = torch.randn(4, 3, 32, 32)
    for cell in random_cells(6, seed=5):  # tracing takes ~1 s a network
        net = build_network(cell, 13, 2, 1)
        protocol.streamline_cells(net)
        assert torch._dynamo.explain(net)(x).graph_break_count == 0, cell.hash
        torch._dynamo.reset()


def test_train_epoch_sums_each_planned_batch_and_steps_at_its_lr():
    _, train, plan = random_epoch(0)
    net = tiny_net()
    params = [p for p in net.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = protocol.TFRMSprop(params, lr=0.0)
    sums = protocol.train_epoch(net, opt, 1e-4, train, plan, [0.0] * 4)
    assert all(torch.equal(a, b) for a, b in zip(before, params))  # LR 0: the weights stay put
    # so the same network in training mode gives the planned batches' losses again (BN: batch statistics)
    with torch.no_grad():
        batches = [plan[:, j] for j in range(plan.shape[1])]
        logits = [net(augment.normalize(augment.augment(train.x, b), *train.norm)) for b in batches]
        labels = [train.y[b[0]] for b in batches]
    ce = sum(F.cross_entropy(lg, y, reduction="sum").item() for lg, y in zip(logits, labels))
    correct = sum((lg.argmax(1) == y).sum().item() for lg, y in zip(logits, labels))
    assert sums.loss_sum.item() == pytest.approx(ce, rel=1e-6) and sums.correct.item() == correct
    assert sums.count.item() == 32 and sums.nonfinite.item() == 0 and sums.values.dtype == torch.float64
    protocol.train_epoch(net, opt, 1e-4, train, plan, [0.0, 0.0, 0.0, 0.1])
    assert opt.param_groups[0]["lr"] == 0.1 and not all(torch.equal(a, b) for a, b in zip(before, params))


def test_train_epoch_counts_non_finite_steps():
    _, train, plan = random_epoch(4)
    net = tiny_net()
    opt = protocol.TFRMSprop([p for p in net.parameters() if p.requires_grad], lr=0.0)
    sums = protocol.train_epoch(net, opt, 1e-4, train, plan, [0.0, 1e30, 1e30, 1e30])
    assert sums.nonfinite.item() >= 1 and sums.count.item() == 32


def test_eval_sums_are_cross_entropy_and_correct_counts():
    images, _, _ = random_epoch(1, n=20)
    net = tiny_net()
    sums = protocol.eval_sums(net, images, 7)
    assert net.training  # eval_sums puts the model back in training mode
    net.eval()
    with torch.no_grad():
        logits = net(augment.normalize(images.x.permute(0, 3, 1, 2), *images.norm))
    assert sums.count.item() == 20 and sums.nonfinite.item() == 0
    assert sums.correct.item() == (logits.argmax(1) == images.y).sum().item()
    assert sums.loss_sum.item() == pytest.approx(F.cross_entropy(logits, images.y, reduction="sum").item(), rel=1e-5)
    assert sums.mean_loss() == sums.loss_sum.item() / 20 and sums.accuracy() == sums.correct.item() / 20


def test_train_epoch_never_waits_for_the_device(monkeypatch):
    """No .item() / bool() / .tolist() and no tensor made from host numbers inside the steps (on CUDA each
    would wait for the device): the host queues steps ahead of the GPU. One copy an epoch (the image count)."""
    images, train, plan = random_epoch(2, 120, 2)  # 60 steps: past the progress bar's update
    net = tiny_net()
    opt = protocol.TFRMSprop([p for p in net.parameters() if p.requires_grad], lr=0.0)

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
    trained = protocol.train_epoch(net, opt, 1e-4, train, plan, [0.01] * 60, progress="epoch 1")
    evaluated = protocol.eval_sums(net, images, 7)
    monkeypatch.undo()
    assert copies == [([120],), ([120, 0],)]  # one per call: the image count (and evaluation's zero)
    assert trained.count.item() == 120 == evaluated.count.item()


def test_memory_layout_does_not_change_the_steps():
    images, train, plan = random_epoch(3)
    got = []
    for channels_last in (True, False):
        speed = protocol.SpeedSettings(channels_last=channels_last)
        net = tiny_net().to(memory_format=speed.memory_format)
        opt = protocol.TFRMSprop([p for p in net.parameters() if p.requires_grad], lr=0.0)
        trained = protocol.train_epoch(net, opt, 1e-4, train, plan, [0.0, 0.1, 0.1, 0.1], speed)
        evaluated = protocol.eval_sums(net, images, 10, speed)
        got.append((trained.values, evaluated.values, torch.cat([p.detach().flatten() for p in net.parameters()])))
    (t1, e1, w1), (t2, e2, w2) = got
    torch.testing.assert_close(t1, t2, rtol=1e-4, atol=1e-4)  # summation order only
    torch.testing.assert_close(e1, e2, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(w1, w2, rtol=1e-3, atol=1e-4)


def test_speed_settings_of_the_command_line():
    """--dtype auto is bf16 on CUDA only; CUDA graphs come with --compile reduce-overhead or max-autotune on CUDA."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # described, not used: no GPU needed
    of = protocol.SpeedSettings.of
    assert of("auto", True, None, cpu) == protocol.SpeedSettings(bf16=False, channels_last=True)
    assert of("auto", False, "default", cuda) == protocol.SpeedSettings(bf16=True, channels_last=False)
    assert of("bf16", True, "reduce-overhead", cpu) == protocol.SpeedSettings(bf16=True, cuda_graphs=False)
    assert of("fp32", True, "max-autotune", cuda) == protocol.SpeedSettings(bf16=False, cuda_graphs=True)
    assert not of("auto", True, "max-autotune-no-cudagraphs", cuda).cuda_graphs
