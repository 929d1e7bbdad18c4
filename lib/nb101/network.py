"""The stacked NB101 network of a cell: closed-form trainable parameters, the nasbench_pytorch
Network with NB101's BatchNorm settings, and its parameter count without the dummy Placeholders.

    from lib.nb101.network import build_network, count_parameters, trainable_parameters
    net = build_network(cell)                      # stem 128, 3 stacks x 3 cells, 10 classes
    count_parameters(net) == trainable_parameters(adj[None], labels[None], [n])[0]
"""

from __future__ import annotations

import numpy as np

from lib.nb101.cell import MAX_VERTICES, Cell


def _cell_channels(stem_channels: int, num_stacks: int, cells_per_stack: int) -> list[tuple[int, int]]:
    """(in_channels, out_channels) of each cell of the stacked network; channels double per stack."""
    pairs, c_in = [], stem_channels
    for s in range(num_stacks):
        c_out = stem_channels * 2**s
        for _ in range(cells_per_stack):
            pairs.append((c_in, c_out))
            c_in = c_out
    return pairs


def trainable_parameters(
    adjacency: np.ndarray,
    labels: np.ndarray,
    num_vertices: np.ndarray,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
) -> np.ndarray:
    """NB101 `trainable_parameters` in closed form, for padded cells [N,7,7], [N,7], [N].

    Equals the nasbench_pytorch Network's parameter count without the 1-element Placeholders.
    """
    terms = parameter_terms(adjacency, num_vertices, stem_channels, num_stacks, cells_per_stack, num_classes)
    at, labels = terms["inverse"], np.asarray(labels)
    ops = ((labels == 0) * terms["conv3"][at] + (labels == 1) * terms["conv1"][at]).sum(1)
    return terms["base"][at] + ops


def parameter_terms(
    adjacency: np.ndarray,
    num_vertices: np.ndarray,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
) -> dict[str, np.ndarray]:
    """The parameter count of cells as terms of their distinct matrices, which fix every channel width:
    base (stem, head and the 1x1 projections of the cell input) [U], and what vertex v adds as a
    conv3x3 or a conv1x1, conv3 / conv1 [U,7] (a maxpool adds nothing). Also each distinct matrix's
    code (matrix_codes, ascending) and first cell [U], and each cell's distinct matrix, inverse [N].
    Convs have no bias and each BatchNorm adds 2 per channel."""
    from nasbench_pytorch.model.model import compute_vertex_channels

    adjacency, num_vertices = np.asarray(adjacency), np.asarray(num_vertices)
    codes, first, inverse = np.unique(matrix_codes(adjacency), return_index=True, return_inverse=True)
    conv3 = np.zeros((len(first), MAX_VERTICES), np.int64)
    conv1 = np.zeros((len(first), MAX_VERTICES), np.int64)
    base = np.zeros(len(first), np.int64)
    pairs = _cell_channels(stem_channels, num_stacks, cells_per_stack)
    for u, row in enumerate(first):
        n = int(num_vertices[row])
        m = adjacency[row, :n, :n].astype(np.int64)
        for c_in, c_out in pairs:
            ch = np.array(compute_vertex_channels(c_in, c_out, m), np.int64)
            conv3[u, 1 : n - 1] += 9 * ch[1 : n - 1] ** 2 + 2 * ch[1 : n - 1]
            conv1[u, 1 : n - 1] += ch[1 : n - 1] ** 2 + 2 * ch[1 : n - 1]
            base[u] += int(((c_in * ch[1:] + 2 * ch[1:]) * m[0, 1:]).sum())
    stem = 3 * 3 * 3 * stem_channels + 2 * stem_channels
    head = stem_channels * 2 ** (num_stacks - 1) * num_classes + num_classes
    return {"code": codes, "first": first, "inverse": inverse.ravel(), "base": stem + head + base} | {
        "conv3": conv3,
        "conv1": conv1,
    }


def matrix_codes(adjacency: np.ndarray) -> np.ndarray:
    """One int64 per padded 0/1 matrix [N,7,7]: its 49 entries as bits, entry i worth 2**i."""
    flat = np.asarray(adjacency).reshape(len(adjacency), -1).astype(np.int64)
    return flat @ (np.int64(1) << np.arange(MAX_VERTICES * MAX_VERTICES, dtype=np.int64))


def build_network(
    cell: Cell,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    num_classes: int = 10,
    bn_momentum: float = 0.003,
    bn_eps: float = 1e-5,
):
    """The stacked nasbench_pytorch Network for `cell`, with NB101's BatchNorm settings.

    nasbench_pytorch passes TF's decay 0.997 straight to PyTorch's `momentum` (which weighs the
    *new* batch) and leaves the vertex ops at 0.1; TF decay 0.997 is PyTorch momentum 0.003.
    """
    import torch.nn as nn
    from nasbench_pytorch.model import Network

    net = Network(
        (cell.matrix.copy(), list(cell.ops)),
        num_labels=num_classes,
        stem_out_channels=stem_channels,
        num_stacks=num_stacks,
        num_modules_per_stack=cells_per_stack,
    )
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum, mod.eps = bn_momentum, bn_eps
    return net


def count_parameters(net) -> int:
    """Trainable parameters without nasbench_pytorch's dummy 1-element Placeholder parameters."""
    from nasbench_pytorch.model.model import Placeholder

    dummy = {id(p) for m in net.modules() if isinstance(m, Placeholder) for p in m.parameters()}
    return sum(p.numel() for p in net.parameters() if p.requires_grad and id(p) not in dummy)
