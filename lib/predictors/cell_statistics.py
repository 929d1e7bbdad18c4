"""Label-free structural statistics of NB101 cells, computed from the predictors' input features.

    from lib.predictors.cell_statistics import cell_statistics, parameter_table, N_STATISTICS
    table = parameter_table(space)                   # per distinct matrix: the closed-form parameter count
    s = cell_statistics(adj, ops, mask, table)       # [B, 21] float32, batched torch ops

The 21 statistics: log trainable parameters, vertices, edges, #conv3x3, #conv1x1, #maxpool, longest
and shortest input->output path, log(1 + #paths), input fan-out, output fan-in, max #conv3x3 on a
path, log(1 + #paths of length 1..6), mean #conv3x3 / #conv1x1 / #maxpool per path. `pgin` (model.py)
pretrains its encoders to regress them over the whole space (lib.predictors.pretraining) and its head reads them.
"""

from __future__ import annotations

import numpy as np
import torch

from lib.nb101.cell import MAX_VERTICES
from lib.nb101.network import parameter_terms, trainable_parameters

N_STATISTICS = 21
BITS = 2 ** torch.arange(MAX_VERTICES * MAX_VERTICES, dtype=torch.int64)  # adjacency bits -> one int64 key


def matrix_keys(adj: torch.Tensor) -> torch.Tensor:
    """One int64 per [7, 7] 0/1 adjacency matrix: lib.nb101.network.matrix_codes, on tensors."""
    return (adj.flatten(1).round().long() * BITS.to(adj.device)).sum(1)


def parameter_table(space: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Parameter count of every cell of `space` as base[matrix] + sum_v conv3[matrix, v] or conv1[matrix, v]
    (lib.nb101.network.parameter_terms), keyed by matrix_keys, ascending."""
    terms = parameter_terms(space["adjacency"], space["num_vertices"])
    table = {"keys": terms["code"], "base": terms["base"], "conv3": terms["conv3"], "conv1": terms["conv1"]}
    return {k: torch.as_tensor(v) for k, v in table.items()}


def log_parameters(adj: torch.Tensor, ops: torch.Tensor, mask: torch.Tensor, table: dict) -> torch.Tensor:
    """log of the trainable parameter count per cell, from the table; cells it lacks in closed form."""
    keys, known = matrix_keys(adj), table["keys"]
    p = torch.zeros_like(keys)
    found = torch.zeros_like(keys, dtype=torch.bool)
    if len(known):
        pos = torch.searchsorted(known, keys).clamp(max=len(known) - 1)
        found = known[pos] == keys
        conv3, conv1 = ops[..., 2].long() * table["conv3"][pos], ops[..., 3].long() * table["conv1"][pos]
        p = table["base"][pos] + (conv3 + conv1).sum(1)
    if not found.all():
        miss = (~found).nonzero().squeeze(1)
        labels = (ops[miss].argmax(-1) - 2).cpu().numpy()
        nv = mask[miss].sum(1).round().long().cpu().numpy()
        p[miss] = torch.as_tensor(trainable_parameters(adj[miss].round().long().cpu().numpy(), labels, nv)).to(p)
    return p.double().log().float()


def cell_statistics(adj: torch.Tensor, ops: torch.Tensor, mask: torch.Tensor, table: dict) -> torch.Tensor:
    """[B, 21] statistics of cells given as cleaned features (adjacency [B,7,7], one-hot ops [B,7,5], mask [B,7]).

    Dynamic programmes over the vertices in order (NB101 matrices are upper triangular): longest, shortest
    path and max #conv3x3 from the input, #paths by length, and op counts summed over those paths."""
    adj, ops, mask = adj.float(), ops.float(), mask.float()
    b, v = mask.shape
    conv = ops[..., 2:5]  # [B, V, 3] conv3x3, conv1x1, maxpool
    big = 1e6
    longest = torch.full((b, v), -big, device=adj.device)
    shortest = torch.full((b, v), big, device=adj.device)
    conv3 = torch.full((b, v), -big, device=adj.device)
    longest[:, 0] = shortest[:, 0] = conv3[:, 0] = 0
    by_len = torch.zeros(b, v, v, device=adj.device)  # paths input -> vertex, by length
    by_len[:, 0, 0] = 1
    op_sum = torch.zeros(b, v, 3, device=adj.device)  # op counts summed over the paths input -> vertex
    for j in range(1, v):
        a = adj[:, :j, j] > 0.5
        longest[:, j] = torch.where(a, longest[:, :j] + 1, -big).amax(1)
        shortest[:, j] = torch.where(a, shortest[:, :j] + 1, big).amin(1)
        conv3[:, j] = torch.where(a, conv3[:, :j], -big).amax(1) + conv[:, j, 0]
        by_len[:, j, 1:] = torch.einsum("bu,bul->bl", a.float(), by_len[:, :j, :-1])
        op_sum[:, j] = (
            torch.einsum("bu,buk->bk", a.float(), op_sum[:, :j]) + by_len[:, j].sum(1, keepdim=True) * conv[:, j]
        )
    r, out = torch.arange(b, device=adj.device), mask.sum(1).round().long() - 1
    paths = by_len[r, out]
    total = paths.sum(1)
    cols = [
        log_parameters(adj, ops, mask, table),
        mask.sum(1),
        adj.sum((1, 2)),
        *conv.sum(1).T,
        longest[r, out],
        shortest[r, out],
        total.log1p(),
        adj[:, 0].sum(1),
        adj[r, :, out].sum(1),
        conv3[r, out],
        *paths[:, 1:].log1p().T,
        *(op_sum[r, out] / total.clamp(min=1)[:, None]).T,
    ]
    return torch.stack(cols, 1)
