"""Label-free pretraining of the flow-GIN encoders of `pgin` (model.py) on every NB101 cell; cached.

    from lib.predictors.pretraining import pretrained
    blob = pretrained(members=5, ops=5, hidden=64, layers=3)    # built on first use (a minute), then read
    blob["encoder"], blob["stats_mean"], blob["stats_std"], blob["table"]

Each member's encoder, with a throw-away linear head, regresses the 21 standardised structural
statistics of lib.predictors.cell_statistics over the 423,624 cells of the enumerated space: one epoch, Adam with
a one-cycle schedule (about a minute, once, on 2 idle cores; longer under load). No accuracy is used. The cache
(data/pgin_pretrained.pt, written atomically; other architectures and configs get files of their own,
see cache_path) is keyed by PRETRAIN_VERSION, the architecture and the pretraining config: a mismatch
rebuilds it. It also holds the space's statistics mean/std and the parameter table the model's head needs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lib.nb101.space import enumerate_space
from lib.predictors.cell_statistics import cell_statistics, parameter_table
from lib.predictors.features import cell_features
from lib.predictors.flow_gin import StackedFlowGIN
from lib.util.devices import cpu_math
from lib.util.outputs import write_atomic

PRETRAIN_VERSION = 1
PRETRAIN_CACHE = Path(__file__).resolve().parents[2] / "data" / "pgin_pretrained.pt"
PRETRAIN = dict(epochs=1.0, batch_size=1024, lr=2e-3, seed=1234)  # the config the measurements used


def space_statistics(space: dict, table: dict, chunk: int = 65536) -> torch.Tensor:
    """[N, 21] statistics of every cell of `space`, in chunks (features of all cells at once are ~150 MB)."""
    out = []
    for lo in range(0, len(space["num_vertices"]), chunk):
        x = cell_features(*(space[k][lo : lo + chunk] for k in ("adjacency", "operations", "num_vertices")))
        out.append(cell_statistics(x["adjacency"], x["operations"], x["mask"], table))
    return torch.cat(out)


@functools.cache  # once per process: every architecture and config regresses the same targets
def space_targets() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """The whole space's features and standardised statistics (the targets), their mean and std, and
    the parameter table: (x, target, mean, std, table)."""
    space = enumerate_space(hashes=False)
    table = parameter_table(space)
    stats = space_statistics(space, table)
    mean, std = stats.mean(0), stats.std(0).clamp(min=1e-6)
    x = cell_features(space["adjacency"], space["operations"], space["num_vertices"])
    return x, (stats - mean) / std, mean, std, table


def pretrain(
    members: int,
    ops: int,
    hidden: int,
    layers: int,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    seed: int,
    quiet=False,
) -> dict:
    """Pretrain `members` stacked encoders on the whole space; returns the cache's blob (without its key)."""
    t0 = time.perf_counter()
    x, target, mean, std, table = space_targets()
    torch.manual_seed(seed)
    net = StackedFlowGIN(members, ops, hidden, layers, True, outputs=target.shape[1]).reset_parameters()
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = len(target)
    steps = max(1, int(epochs * n / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    per_epoch = n // batch_size
    bar = tqdm(range(steps), desc="pretrain pgin encoders", unit="step", disable=quiet, leave=False)
    with cpu_math(torch.device("cpu")):
        for step in bar:
            epoch_step = step % per_epoch
            if epoch_step == 0:
                perm = torch.randperm(n, generator=gen)
            idx = perm[epoch_step * batch_size : (epoch_step + 1) * batch_size]
            pred = net(x["adjacency"][idx], x["operations"][idx], x["mask"][idx])  # [K, B, 21]
            loss = F.mse_loss(pred, target[idx][None].expand_as(pred))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{loss.item():.4f}")
    encoder = {k: v.detach().clone() for k, v in net.state_dict().items() if not k.startswith("head.")}
    return {
        "encoder": encoder,
        "stats_mean": mean,
        "stats_std": std,
        "table": table,
        "loss": loss.item(),
        "seconds": time.perf_counter() - t0,
    }


def pretrained(members: int, ops: int, hidden: int, layers: int, cache: Path | None = None, quiet=False, **config):
    """The pretraining blob for this architecture and config (PRETRAIN with `config` overrides):
    read from `cache` (default: cache_path's) when its key matches, else built, cached, returned."""
    config = {**PRETRAIN, **config}
    key = dict(version=PRETRAIN_VERSION, members=members, ops=ops, hidden=hidden, layers=layers, **config)
    cache = Path(cache or cache_path(key))
    if cache.exists():
        blob = torch.load(cache, map_location="cpu", weights_only=True)
        if blob.get("key") == key:
            return blob
    if not quiet:
        print(f"pretraining the pgin encoders on all NB101 cells, once (about a minute), cached in {cache}")
    blob = {"key": key, **pretrain(members, ops, hidden, layers, **config, quiet=quiet)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, lambda f: torch.save(blob, f), "wb")
    return blob


def cache_path(key: dict) -> Path:
    """PRETRAIN_CACHE for pgin's default architecture and PRETRAIN; a file of its own (the name ends in
    a digest of the key) for any other, so that configurations do not overwrite each other's cache."""
    default = dict(version=PRETRAIN_VERSION, members=5, ops=5, hidden=64, layers=3, **PRETRAIN)
    if key == default:
        return PRETRAIN_CACHE
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return PRETRAIN_CACHE.with_name(f"{PRETRAIN_CACHE.stem}-{digest}{PRETRAIN_CACHE.suffix}")
