"""Training throughput: trainer.py's speed levers, one at a time, against nasbench_pytorch's own loop.

    python -m bench.trainer                                   # CPU: reduced network, ~2 min
    python -m bench.trainer --device cuda --network full      # GPU: NB101's network, the median-size cell
    python -m bench.trainer --levers fp32,bf16 --images 512 --rounds 1 --out /tmp/trainer.json

Same cell, network, device, batch (256) and process for every row; the images are random uint8
(content does not change the speed). The baseline is how nasbench_pytorch trains: its
`trainer.train` (fp32, its RMSprop, grad clipping) fed by torchvision's CIFAR10 with PIL transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader. Ours is
trainer.py's step (lib/training/protocol.train_epoch) with the data on the device, adding one lever a row:

    fp32      the device-resident data and one-gather augmentation alone (eager, fp32, NCHW)
    bf16      + channels_last + bf16 autocast
    compile   + torch.compile (inductor; one graph, as streamline_cells makes the cells traceable)
    graphs    + CUDA graphs (torch.compile mode reduce-overhead; CUDA only)
    autotune  + max-autotune's kernel search (minutes to compile; not in the default list)

then, with the last lever's network: a host wait after every step (what trainer.py avoids; CUDA
only), and the evaluation at batch 500 and 2500. On CUDA each lever's step also runs under
torch.cuda.set_sync_debug_mode("error"), to show that nothing in it waits for the GPU. Rows
alternate over --rounds (medians), and each records its warm-up (compilation) time.
--time-limit skips what would start after it.
Writes bench/results/trainer.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from nasbench_pytorch.trainer import train as nasbench_train
from torchvision.datasets import CIFAR10

from bench.common import machine
from lib.nb101.cell import make_cell
from lib.nb101.network import build_network, count_parameters
from lib.training.augment import epoch_plan, normalizer, pad_for_crops
from lib.training.protocol import (
    GRAPH_MODES,
    Images,
    SpeedSettings,
    TFRMSprop,
    eval_sums,
    freeze_dummies,
    init_like_tf,
    lr_at,
    streamline_cells,
    train_epoch,
)
from lib.util.outputs import write_json

# Median trainable_parameters (5,356,682) of all 423,624 NB101 cells (nb101_space.enumerate_space
# + trainable_parameters); hash f4f70a97275d1c8636268845a5167803.
MEDIAN_CELL = {
    "adjacency": [[0, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
}
BATCH = 256
NETWORKS = {"full": (128, 3, 3), "reduced": (16, 1, 1)}  # stem channels, stacks, cells per stack
# lever -> (bf16 + channels_last, torch.compile mode); each row adds its lever to the ones above
LEVERS = {
    "fp32": (False, None),
    "bf16": (True, None),
    "compile": (True, "default"),
    "graphs": (True, "reduce-overhead"),
    "autotune": (True, "max-autotune"),
}
EVAL_BATCHES = (500, 2500)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--network", choices=NETWORKS, help="full: NB101's (default on CUDA); reduced: stem 16, 1x1 cell")
    p.add_argument("--levers", help=f"comma-separated, from {','.join(LEVERS)} (default: all but autotune)")
    p.add_argument("--images", type=int, default=None, help="timed images a row, a round (10240 GPU, 1024 CPU)")
    p.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default 8 GPU, 0 CPU)")
    p.add_argument("--arch", help="cell JSON (adjacency, ops) instead of the median-size cell")
    p.add_argument("--skip-baseline", action="store_true", help="time trainer.py's rows only")
    p.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per row (median)")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; later rows are skipped, and said so")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "trainer.json"))
    return p.parse_args(argv)


def write_batches(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """x, y as torchvision's cifar-10-batches-py (five train batches, a small test batch)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    for i, part in enumerate(np.array_split(np.arange(len(x)), 5), 1):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": rows[part], "labels": y[part].tolist()}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"data": rows[:16], "labels": y[:16].tolist()}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(c) for c in range(10)]}, f)


class CIFAR10Batches(CIFAR10):
    """torchvision's CIFAR10 dataset over the batches write_batches writes: their md5s are not CIFAR-10's, so
    only that the files exist is checked."""

    def _check_integrity(self) -> bool:
        files = [f for f, _ in self.train_list + self.test_list]
        return all((Path(self.root) / self.base_folder / f).exists() for f in files)

    def _load_meta(self) -> None:  # torchvision's, without the md5
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def baseline_runner(net, root: Path, n: int, workers: int, device: torch.device):
    """A function timing one epoch of nasbench_pytorch.trainer.train over n images (images/s)."""
    # nasbench_pytorch.datasets.cifar10.prepare_dataset's training transform, verbatim.
    normalize = T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    ds = torch.utils.data.Subset(CIFAR10Batches(str(root), train=True, transform=tf), range(n))
    # One DataLoader for all rounds, its workers kept alive: start-up is paid once, as over a full epoch.
    pin, persist = device.type == "cuda", workers > 0
    loader = torch.utils.data.DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=workers, pin_memory=pin, persistent_workers=persist
    )

    def epoch() -> float:
        with open(os.devnull, "w") as quiet:  # its per-epoch prints are not the benchmark's
            stdout, sys.stdout = sys.stdout, quiet
            try:
                run = lambda: nasbench_train(net, loader, num_epochs=1, device=device, print_frequency=10**9)  # noqa: E731
                return n / timed(run, device)
            finally:
                sys.stdout = stdout

    warmup = timed(epoch, device)  # workers, cudnn autotune
    return epoch, warmup


class Ours:
    """trainer.py's steps for one lever: a fresh network (same seed), warmed up (compiled) on creation."""

    def __init__(self, lever: str, cell, sizes, x: torch.Tensor, y: torch.Tensor, device: torch.device):
        bf16, mode = LEVERS[lever]
        self.device = device
        self.speed = SpeedSettings.of("bf16" if bf16 else "fp32", bf16, mode, device)
        torch.manual_seed(0)
        net = build_network(cell, *sizes)
        init_like_tf(net)
        freeze_dummies(net)
        streamline_cells(net)
        net = net.to(device, memory_format=self.speed.memory_format)
        self.opt = TFRMSprop([p for p in net.parameters() if p.requires_grad], lr=0.0)
        self.model = torch.compile(net, mode=mode, dynamic=False) if mode else net
        norm = normalizer(device)
        self.train_images, self.eval_images = Images(pad_for_crops(x), y, norm), Images(x, y, norm)
        self.plan = torch.from_numpy(epoch_plan(0, 0, len(x), BATCH)).to(device)
        self.step = 0
        self.warmup_s = timed(lambda: self.steps(3), device)  # compiles (train mode), cudnn autotune

    def steps(self, k: int) -> None:
        lrs = [lr_at(s, 10**6, 0.2) for s in range(self.step, self.step + k)]
        plan = self.plan[:, torch.arange(self.step, self.step + k, device=self.device) % self.plan.shape[1]]
        self.step += k
        train_epoch(self.model, self.opt, 1e-4, self.train_images, plan, lrs, self.speed)

    def train(self, k: int) -> float:
        """k steps; images/s."""
        return k * BATCH / timed(lambda: self.steps(k), self.device)

    def host_waits(self) -> str:
        """'none' if 2 steps run without an operation that waits for the GPU, else CUDA's message."""
        torch.cuda.set_sync_debug_mode("error")
        try:
            self.steps(2)
            return "none"
        except RuntimeError as e:
            return " ".join(str(e).split())[:300]
        finally:
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize(self.device)

    def evaluate(self, batch: int) -> tuple[float, float]:
        """(warm-up s, images/s) of the evaluation of all images at `batch`."""
        run = lambda: eval_sums(self.model, self.eval_images, batch, self.speed)  # noqa: E731
        warmup = timed(run, self.device)  # compiles the eval-mode graph for this shape
        return warmup, len(self.eval_images.x) / timed(run, self.device)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/trainer.py: --device cuda: no CUDA device on this machine")
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    network = args.network or ("full" if gpu else "reduced")
    sizes = NETWORKS[network]
    default = [k for k in LEVERS if k != "autotune" and (gpu or k != "graphs")]
    levers = args.levers.split(",") if args.levers else default
    if unknown := set(levers) - set(LEVERS):
        sys.exit(f"bench/trainer.py: --levers: unknown {','.join(sorted(unknown))}; choose from {','.join(LEVERS)}")
    n = args.images or (10240 if gpu else 1024)
    workers = args.workers if args.workers is not None else (min(8, os.cpu_count() or 1) if gpu else 0)
    spec = json.loads(Path(args.arch).read_text()) if args.arch else MEDIAN_CELL
    cell = make_cell(spec["adjacency"], spec["ops"])
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    torch.manual_seed(0)
    base_net = build_network(cell, *sizes)
    init_like_tf(base_net)
    n_params = count_parameters(base_net)
    print(f"cell {cell.hash} | {network} network {sizes} | {n_params:,} params | {device} | {n} images a row and round")

    def over_time() -> bool:
        return args.time_limit is not None and time.perf_counter() - start > args.time_limit

    rows, skipped, runners = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_baseline:
            write_batches(Path(tmp), x, y)
            base_epoch, warm = baseline_runner(base_net, Path(tmp), n, workers, device)
            rows["baseline"] = {"warmup_s": warm, "rounds": []}
        for lever in levers:
            if LEVERS[lever][1] in GRAPH_MODES and not gpu:
                skipped[lever] = "CUDA graphs need a CUDA device"
            elif over_time():
                skipped[lever] = f"--time-limit {args.time_limit:g} s reached"
            else:
                print(f"warming up {lever} ...", flush=True)
                runners[lever] = Ours(lever, cell, sizes, xt, yt, device)
                rows[lever] = {"warmup_s": runners[lever].warmup_s, "rounds": []}
        # Alternate the rows and take medians: the load of other jobs on the machine drifts during the run.
        for r in range(args.rounds):
            if r and over_time():
                break
            if "baseline" in rows:
                rows["baseline"]["rounds"].append(base_epoch())
            for lever, ours in runners.items():
                rows[lever]["rounds"].append(ours.train(n // BATCH))
    for lever, ours in runners.items() if gpu else ():  # CUDA's sync debug mode: does a step wait for the GPU?
        rows[lever]["host_waits"] = ours.host_waits()
    last = next(reversed(runners), None)
    if last and gpu and not over_time():  # what a host wait after every step costs the fastest setup
        ours = runners[last]
        hook = ours.opt.register_step_post_hook(lambda *_: torch.cuda.synchronize(device))
        rows[f"{last} + host wait per step"] = {"warmup_s": 0.0, "rounds": [ours.train(n // BATCH)]}
        hook.remove()
    elif last:
        skipped["host wait per step"] = "the CPU runs each op to completion anyway" if not gpu else "time limit"
    evaluation = {}
    for bs in EVAL_BATCHES if last else ():
        if over_time():
            skipped[f"eval batch {bs}"] = f"--time-limit {args.time_limit:g} s reached"
            continue
        warm, ips = runners[last].evaluate(bs)
        evaluation[str(bs)] = {"warmup_s": warm, "images_per_s": ips}

    base = float(np.median(rows["baseline"]["rounds"])) if "baseline" in rows else None
    print(f"\n| {'setup':36s} | {'train img/s':>11s} | {'vs baseline':>11s} | {'warm-up s':>9s} |")
    print(f"|{'-' * 38}|{'-' * 13}|{'-' * 13}|{'-' * 11}|")
    for name, row in rows.items():
        row["images_per_s"] = float(np.median(row["rounds"])) if row["rounds"] else None
        row["speedup"] = row["images_per_s"] / base if base and row["images_per_s"] else None
        label = "nasbench_pytorch train + DataLoader" if name == "baseline" else f"trainer.py {name}"
        ratio = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        print(f"| {label:36s} | {row['images_per_s'] or math.nan:11,.0f} | {ratio:>11s} | {row['warmup_s']:9.1f} |")
    for bs, e in evaluation.items():
        print(f"eval batch {bs}: {e['images_per_s']:,.0f} img/s (warm-up {e['warmup_s']:.1f} s)")
    for what, why in skipped.items():
        print(f"skipped {what}: {why}")
    best = max((k for k in runners if rows[k]["images_per_s"]), key=lambda k: rows[k]["images_per_s"], default=None)
    eval_ips = max((e["images_per_s"] for e in evaluation.values()), default=None)
    # A full NB101 run: 108 epochs x 40k training images, plus valid + test (20k) after each epoch.
    full_s = 108 * (40000 / rows[best]["images_per_s"] + 20000 / eval_ips) if best and eval_ips else None
    if full_s:
        print(f"108-epoch NB101 run at the best setup ({best}), from these rates: {full_s / 60:.1f} min")
    result = {
        "device": str(device),
        "cell": cell.to_json(),
        "params": n_params,
        "network": dict(zip(("stem_channels", "num_stacks", "cells_per_stack"), sizes, strict=True)),
        "batch_size": BATCH,
        "timed_images": n,
        "baseline_workers": workers,
        "rows": rows,
        "best": best,
        "speedup": rows[best]["speedup"] if best else None,
        "evaluation": evaluation,
        "skipped": skipped,
        "extrapolated_108_epochs_s": full_s,
        "elapsed_s": time.perf_counter() - start,
        "machine": machine(device),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
