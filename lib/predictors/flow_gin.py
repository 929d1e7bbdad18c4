"""The flow GIN encoder of model.py's gin and pgin: one member (FlowGIN), and K members evaluated as
one batched computation with every weight stacked over the members (StackedFlowGIN).

    from lib.predictors.flow_gin import StackedFlowGIN
    net = StackedFlowGIN(k=5, ops=5, hidden=64, layers=3, backward=True)
    scores = net(adjacency, one_hot_ops, mask)          # [k, B]

A layer passes messages along and against the edges (NB101 cells are DAGs: the forward direction
carries the data flow, the backward one the gradient flow), with a residual + LayerNorm, and the
readout is the output vertex and the mean over real vertices. In training mode a stacked member is
bitwise the FlowGIN it stands for (same operations in the same order, batched). In eval mode, equal
to float rounding and ~1.3x faster on a CPU: the first layer runs once per distinct vertex context
(1,864 in the whole NB101 space) and both directions' messages of a layer are one matmul.
Reference: K. Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019 (GIN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FlowGINLayer(nn.Module):
    """h <- h + Linear(ReLU(LayerNorm(h + A^T W_f h + A W_b h))): in-edges forward, out-edges backward."""

    def __init__(self, hidden: int, backward: bool = True):
        super().__init__()
        self.fwd = nn.Linear(hidden, hidden)
        self.bwd = nn.Linear(hidden, hidden) if backward else None
        self.mlp = nn.Sequential(nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        msg = adj.transpose(1, 2) @ self.fwd(h)  # vertex v sums its predecessors u (adj[u, v] = 1)
        if self.bwd is not None:
            msg = msg + adj @ self.bwd(h)  # ... and its successors
        return h + self.mlp(h + msg)


class FlowGIN(nn.Module):
    """One ensemble member: op embedding, `layers` FlowGINLayers, [output vertex, vertex mean] -> MLP -> score."""

    def __init__(self, ops: int, hidden: int, layers: int, backward: bool):
        super().__init__()
        self.embed = nn.Linear(ops, hidden)
        self.layers = nn.ModuleList(FlowGINLayer(hidden, backward) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, adj: torch.Tensor, ops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(ops)
        for layer in self.layers:
            h = layer(h, adj)  # padding vertices have no edges, so they never reach real ones
        h = h * mask[..., None]
        last = mask.sum(1).long() - 1  # the output vertex is the last real one
        out = h[torch.arange(len(h), device=h.device), last]
        mean = h.sum(1) / mask.sum(1, keepdim=True)
        return self.head(torch.cat((out, mean), 1)).squeeze(1)


class StackedLinear(nn.Module):
    """`k` independent nn.Linear(d_in, d_out) as one batched matmul: x [k, N, d_in] -> [k, N, d_out].

    weight [k, d_out, d_in] and bias [k, d_out]: slice i holds member i's nn.Linear weight and bias."""

    def __init__(self, k: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d_out, d_in))
        self.bias = nn.Parameter(torch.empty(k, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[1] == 1:  # as nn.Linear(d, 1) does: a matrix-vector product per member, which
            # rounds differently from a matmul; rows are cheap here, and members stay bitwise their own
            return torch.stack(
                [torch.addmv(b.expand(len(xi)), xi, w[0]) for xi, w, b in zip(x, self.weight, self.bias)]
            )[..., None]
        return torch.baddbmm(self.bias[:, None], x, self.weight.transpose(1, 2))


class StackedLayerNorm(nn.Module):
    """`k` independent nn.LayerNorm(d) over x [k, N, d]; weight and bias [k, d].

    One fused layer_norm call per member: a normalisation costs the same per row either way, and the
    fused affine keeps each member's forward and backward bitwise those of its own nn.LayerNorm."""

    def __init__(self, k: int, d: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(k, d))
        self.bias = nn.Parameter(torch.zeros(k, d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1:]
        return torch.stack([F.layer_norm(xi, d, w, b, self.eps) for xi, w, b in zip(x, self.weight, self.bias)])


class StackedFlowGINLayer(nn.Module):
    """FlowGINLayer for `k` members at once; h [k, B*V, H], adjacency [k*B, V, V] (each cell's, once per member).

    In training mode the same operations in the same order as a member's FlowGINLayer, each batched
    over the members, so that a member's output and gradients are bitwise those of its own layer.
    Inference (StackedFlowGIN in eval mode) calls `directions` and `update` instead: fewer, larger
    operations, equal to float rounding."""

    def __init__(self, k: int, hidden: int, backward: bool = True):
        super().__init__()
        self.fwd = StackedLinear(k, hidden, hidden)
        self.bwd = StackedLinear(k, hidden, hidden) if backward else None
        self.mlp = nn.Sequential(StackedLayerNorm(k, hidden), nn.ReLU(), StackedLinear(k, hidden, hidden))

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        k, n, hidden = h.shape
        msg = torch.bmm(adj.transpose(1, 2), self.fwd(h).view(len(adj), -1, hidden))  # v sums its predecessors u
        if self.bwd is not None:
            msg = torch.baddbmm(msg, adj, self.bwd(h).view(len(adj), -1, hidden))  # ... and its successors
        return h + self.mlp(h + msg.view(k, n, hidden))

    def directions(self, h: torch.Tensor) -> torch.Tensor:
        """Both directions' Linears as one matmul: [k, N, 2H], each row [forward | backward]."""
        weight = torch.cat((self.fwd.weight, self.bwd.weight), 1).transpose(1, 2)
        return torch.baddbmm(torch.cat((self.fwd.bias, self.bwd.bias), 1)[:, None], h, weight)

    def update(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """h + Linear(ReLU(LayerNorm(u))), where u = h + both messages."""
        norm, _, out = self.mlp
        return torch.baddbmm(h, norm(u).relu_(), out.weight.transpose(1, 2)).add_(out.bias[:, None])


class StackedFlowGIN(nn.Module):
    """`k` FlowGINs evaluated as one batched computation: every weight stacked over the members.

    Its state_dict holds a FlowGIN's keys, each tensor with a leading member axis; checkpoints that
    hold one module per member (keys `members.<i>.<key>`) are stacked when loaded."""

    def __init__(self, k: int, ops: int, hidden: int, layers: int, backward: bool, extra: int = 0, outputs: int = 1):
        super().__init__()
        self.k, self.args = k, (ops, hidden, layers, backward)
        self.embed = StackedLinear(k, ops, hidden)
        self.layers = nn.ModuleList(StackedFlowGINLayer(k, hidden, backward) for _ in range(layers))
        # the head reads [output vertex, vertex mean] and `extra` per-cell inputs
        head_in = 2 * hidden + extra
        self.head = nn.Sequential(StackedLinear(k, head_in, hidden), nn.ReLU(), StackedLinear(k, hidden, outputs))
        self.register_load_state_dict_pre_hook(_stack_member_keys)

    def reset_parameters(self) -> StackedFlowGIN:
        """nn.Linear's and nn.LayerNorm's default init, member by member (gin instead copies K FlowGINs)."""
        for m in self.modules():
            if isinstance(m, StackedLinear):
                for w, b in zip(m.weight.data, m.bias.data):
                    nn.init.kaiming_uniform_(w, a=5**0.5)
                    nn.init.uniform_(b, -(w.shape[1] ** -0.5), w.shape[1] ** -0.5)
            elif isinstance(m, StackedLayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        return self

    def forward(
        self, adj: torch.Tensor, ops: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores [k, B] (or [k, B, outputs]) of cells with adjacency [B, V, V], one-hot ops [B, V, ops],
        mask [B, V] and, where the head reads them, extra inputs [B, extra]."""
        h = self.encode(adj, ops, mask)
        if extra is not None:
            h = torch.cat((h, extra.to(h.dtype)[None].expand(self.k, -1, -1)), 2)
        h = self.head(h)
        return h.squeeze(2) if h.shape[2] == 1 else h

    def encode(self, adj: torch.Tensor, ops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoders' readouts [k, B, 2 * hidden]: [output vertex, mean over real vertices]."""
        _, _, layers, backward = self.args
        if not self.training and backward and layers:
            return self._readout(self._encode_inference(adj, ops), mask)
        k, (b, v) = self.k, mask.shape
        h = self.embed(ops.reshape(1, b * v, -1).expand(k, -1, -1))
        adj = adj.expand(k, b, v, v).reshape(k * b, v, v)
        for layer in self.layers:
            h = layer(h, adj)  # padding vertices have no edges, so they never reach real ones
        return self._readout(h, mask)

    def _readout(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, v = mask.shape
        h = h.view(self.k, b, v, -1) * mask[..., None]
        last = mask.sum(1).long() - 1  # the output vertex is the last real one
        out = h[:, torch.arange(b, device=h.device), last]
        mean = h.sum(2) / mask.sum(1, keepdim=True)
        return torch.cat((out, mean), 2)

    def _encode_inference(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """The vertices' final states [k, B*V, H] as the layers compute them, with less work.

        The first layer's output at a vertex is a function of its own op and the op counts of its
        predecessors and successors: the NB101 space has only 1,864 such contexts among 2.9 M vertices,
        so it is computed once per distinct context in the batch and gathered, together with the
        second layer's direction Linears. Both directions' messages of a layer are one matmul per cell."""
        k, (b, v) = self.k, adj.shape[:2]
        contexts, inverse = _first_layer_contexts(adj, ops)
        first = self._first_layer(contexts)
        h = first.index_select(1, inverse)
        if len(self.layers) == 1:
            return h
        z = self.layers[1].directions(first).index_select(1, inverse)
        both = torch.stack((adj.transpose(1, 2), adj), 3).flatten(2)  # [A^T | A], columns (u, direction)
        both = both.expand(k, b, v, 2 * v).reshape(k * b, v, 2 * v)
        for i, layer in enumerate(self.layers[1:], 2):
            # rows (u, direction) of z, per cell; u = h + both messages
            u = torch.baddbmm(h.view(k * b, v, -1), both, z.view(k * b, 2 * v, -1)).view_as(h)
            h = layer.update(h, u)
            if i < len(self.layers):
                z = self.layers[i].directions(h)
        return h

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's output [k, C, H] for contexts x [C, 17] (see _first_layer_contexts).

        Embedding and messages are linear: with E, e the embedding and W_f, b_f, W_b, b_b the direction
        Linears, a vertex's h0 = ops E + e and its h0 + messages = ops E + (in-ops) E W_f + (out-ops) E W_b
        + in-degree (e W_f + b_f) + out-degree (e W_b + b_b) + e: one matmul of x with these 17 rows."""
        first = self.layers[0]
        embed = self.embed.weight.transpose(1, 2).float()  # [k, ops, H]
        e = self.embed.bias[:, None].float()  # [k, 1, H]
        wf, wb = first.fwd.weight.transpose(1, 2).float(), first.bwd.weight.transpose(1, 2).float()
        rows = (embed, embed @ wf, embed @ wb, e @ wf + first.fwd.bias[:, None], e @ wb + first.bwd.bias[:, None])
        m = torch.cat(rows, 1).to(x.dtype)
        xk = x.expand(self.k, -1, -1)
        h0 = torch.baddbmm(self.embed.bias[:, None], xk[..., : embed.shape[1]], m[:, : embed.shape[1]])
        u = torch.baddbmm(self.embed.bias[:, None], xk, m)
        return first.update(h0, u)

    def member(self, i: int) -> FlowGIN:
        """Member i as a FlowGIN of its own (a copy): the reference the batched computation must equal."""
        one = FlowGIN(*self.args)
        one.load_state_dict({key: value[i] for key, value in self.state_dict().items()})
        return one.to(self.embed.weight.device)


def _first_layer_contexts(adj: torch.Tensor, ops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct first-layer contexts x [C, 17] of the B*V vertices, and each vertex's row in x.

    A vertex's context is [ops, predecessors' op counts, successors' op counts, in-degree, out-degree].
    With 0/1 adjacency and one-hot ops every entry is an integer < 8, so 17 base-8 digits (< 2^53)
    key a context exactly in float64; other inputs (or more than 5 ops) keep one row per vertex."""
    x = torch.cat((ops, adj.transpose(1, 2) @ ops, adj @ ops, adj.sum(1)[..., None], adj.sum(2)[..., None]), 2)
    x = x.flatten(0, 1)
    if x.shape[1] > 17 or not (x.min() >= 0 and x.max() < 8 and torch.equal(x, x.round())):
        return x, torch.arange(len(x), device=x.device)
    key = x.double() @ 8.0 ** torch.arange(x.shape[1], dtype=torch.float64, device=x.device)
    keys, inverse = torch.unique(key, return_inverse=True)
    return x.new_empty(len(keys), x.shape[1]).index_copy_(0, inverse, x), inverse  # equal rows: any will do


def _stack_member_keys(module, state_dict, prefix, *_):
    """load_state_dict pre-hook: `<prefix><i>.<key>` of K separate FlowGINs -> `<prefix><key>` stacked [K, ...]."""
    per_member: dict[str, dict[int, torch.Tensor]] = {}
    for name in [n for n in state_dict if n.startswith(prefix)]:
        index, _, key = name[len(prefix) :].partition(".")
        if index.isdigit():
            per_member.setdefault(key, {})[int(index)] = state_dict.pop(name)
    for key, tensors in per_member.items():
        state_dict[prefix + key] = torch.stack([tensors[i] for i in sorted(tensors)])
