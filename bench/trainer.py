"""Training throughput: trainer.py vs nasbench_pytorch's own `train` with a torchvision DataLoader.

    python bench/trainer.py                        # CPU: reduced network, ~1-2 min
    python bench/trainer.py --gpu --compile        # CUDA: full NB101 network, a median-size cell

Same network, device, batch (256) and process for both sides; the images are random (content
does not change the speed). The baseline is what nasbench_pytorch offers today: torchvision's
CIFAR10 dataset with PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
Normalize) in a DataLoader, fed to `nasbench_pytorch.trainer.train` (fp32, its RMSprop, grad
clipping). Ours: uint8 data on the device, one-gather augmentation, channels_last, bf16 on CUDA.
GPU mode also extrapolates a full 108-epoch NB101 run (40k train images, valid + test eval per
epoch) from the measured rates. Writes bench/results/trainer.json.
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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from nasbench_pytorch.trainer import train as nasbench_train

from bench.common import machine
from lib import cifar10
from lib.nb101_space import build_network, count_parameters, make_cell
from lib.nb101_training import TFRMSprop, eval_sums, freeze_dummies, init_like_tf, lr_at, train_epoch

# Median trainable_parameters (5,356,682) of all 423,624 NB101 cells (nb101_space.enumerate_space
# + trainable_parameters); hash f4f70a97275d1c8636268845a5167803.
MEDIAN_CELL = {
    "adjacency": [[0, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
}
BATCH = 256


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="full network (stem 128, 3x3 cells) on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile our network")
    p.add_argument("--images", type=int, default=None, help="timed images per side (default 10240 GPU, 2048 CPU)")
    p.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default 8 GPU, 0 CPU)")
    p.add_argument("--arch", help="cell JSON (adjacency, ops) instead of the median-size cell")
    p.add_argument("--skip-baseline", action="store_true", help="time trainer.py only (a speed probe)")
    p.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per side (median)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "trainer.json"))
    return p.parse_args()


def write_batches(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """x, y as torchvision's cifar-10-batches-py (five train batches, a small test batch)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    parts = np.array_split(np.arange(len(x)), 5)
    for i, part in enumerate(parts, 1):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": rows[part], "labels": y[part].tolist()}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"data": rows[:16], "labels": y[:16].tolist()}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(c) for c in range(10)]}, f)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_runner(net, root: Path, n: int, workers: int, device: torch.device):
    """A function timing one epoch of nasbench_pytorch.trainer.train over n images (images/s)."""
    # nasbench_pytorch.datasets.cifar10.prepare_dataset's training transform, verbatim.
    normalize = T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    ds = cifar10.CIFAR10Batches(str(root), train=True, transform=tf)

    # One DataLoader for all rounds, its workers kept alive: start-up is paid once, as over a full epoch.
    sub = torch.utils.data.Subset(ds, range(n))
    pin, persist = device.type == "cuda", workers > 0
    loader = torch.utils.data.DataLoader(
        sub, batch_size=BATCH, shuffle=True, num_workers=workers, pin_memory=pin, persistent_workers=persist
    )

    def epoch() -> float:
        with open(os.devnull, "w") as quiet:  # its per-epoch prints are not the benchmark's
            stdout, sys.stdout = sys.stdout, quiet
            try:
                sync(device)
                t = time.perf_counter()
                nasbench_train(net, loader, num_epochs=1, device=device, print_frequency=10**9)
                sync(device)
            finally:
                sys.stdout = stdout
        return n / (time.perf_counter() - t)

    epoch()  # warm-up: workers, cudnn autotune
    return epoch


def ours_runner(net, x: np.ndarray, y: np.ndarray, n: int, device: torch.device, compile_: bool):
    """Functions timing trainer.py's training steps over n images and its evaluation (images/s)."""
    use_bf16 = device.type == "cuda"
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    net = net.to(device, memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = TFRMSprop(params, lr=0.0)
    model = torch.compile(net) if compile_ else net
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    padded, norm = cifar10.pad_for_crops(xt), cifar10.normalizer(device)
    plan = torch.from_numpy(cifar10.epoch_plan(0, 0, len(x), BATCH)).to(device)
    total = plan.shape[1] * 10

    def steps(k: int, start: int) -> float:
        lrs = [lr_at(s, total, 0.2) for s in range(start, start + k)]
        sync(device)
        t = time.perf_counter()
        train_epoch(model, opt, params, padded, yt, plan[:, :k], lrs, 1e-4, norm, amp, show=False)
        sync(device)
        return time.perf_counter() - t

    def evaluate() -> float:
        sync(device)
        t = time.perf_counter()
        eval_sums(model, xt, yt, norm, amp, 500)
        sync(device)
        return len(x) / (time.perf_counter() - t)

    steps(3, 0)  # warm-up: cudnn autotune, torch.compile (train and eval mode)
    eval_sums(model, xt[:1000], yt[:1000], norm, amp, 500)
    k = n // BATCH
    return lambda: k * BATCH / steps(k, 3), evaluate


def main() -> None:
    args = parse_args()
    gpu = args.gpu
    if gpu and not torch.cuda.is_available():
        sys.exit("bench/trainer.py: --gpu needs CUDA; run without it for the CPU mode")
    device = torch.device("cuda" if gpu else "cpu")
    sizes = (128, 3, 3) if gpu else (16, 1, 1)
    n = args.images or (10240 if gpu else 2048)
    workers = args.workers if args.workers is not None else (min(8, os.cpu_count() or 1) if gpu else 0)
    spec = json.loads(Path(args.arch).read_text()) if args.arch else MEDIAN_CELL
    cell = make_cell(spec["adjacency"], spec["ops"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)

    def fresh_net():
        torch.manual_seed(0)
        net = build_network(cell, *sizes)
        init_like_tf(net)
        return net

    print(
        f"cell {cell.hash} | network stem {sizes[0]}, {sizes[1]} stacks x {sizes[2]} cells | "
        f"{count_parameters(fresh_net()):,} params | {device} | {n} timed images per side"
    )
    net = fresh_net()
    freeze_dummies(net)
    ours_train, ours_eval = ours_runner(net, x, y, n, device, args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        write_batches(Path(tmp), x, y)
        base_train = None if args.skip_baseline else baseline_runner(fresh_net(), Path(tmp), n, workers, device)
        # Alternate the sides and take medians: a shared machine's load drifts during the run.
        rounds = [(base_train() if base_train else math.nan, ours_train()) for _ in range(args.rounds)]
    base = None if args.skip_baseline else float(np.median([r[0] for r in rounds]))
    ours = {"train": float(np.median([r[1] for r in rounds])), "eval": ours_eval()}
    ratio = ours["train"] / base if base else None
    rows = [("nasbench_pytorch train + DataLoader", base)] * (base is not None) + [("trainer.py", ours["train"])]
    print(f"\n| {'trainer':36s} | {'train img/s':>11s} |\n|{'-' * 38}|{'-' * 13}|")
    for name, ips in rows:
        print(f"| {name:36s} | {ips:11,.0f} |")
    speedup = f"speed-up {ratio:.2f}x, " if ratio else ""
    print(f"\n{speedup}eval {ours['eval']:,.0f} img/s")
    # A full NB101 run: 108 epochs x 40k training images, plus valid + test (20k) after each epoch.
    full = {name: 108 * (40000 / ips + 20000 / ours["eval"]) for name, ips in rows}
    if gpu:
        print("108-epoch NB101 run, extrapolated:", ", ".join(f"{k} {v / 60:.1f} min" for k, v in full.items()))
    result = {
        "mode": "gpu" if gpu else "cpu",
        "cell": cell.to_json(),
        "params": count_parameters(net),
        "network": dict(zip(("stem_channels", "num_stacks", "cells_per_stack"), sizes, strict=True)),
        "batch_size": BATCH,
        "timed_images": n,
        "baseline_workers": workers,
        "compile": args.compile,
        "bf16": gpu,
        "baseline_images_per_s": base,
        "ours_images_per_s": ours["train"],
        "ours_eval_images_per_s": ours["eval"],
        "speedup": ratio,
        "rounds": [[None if math.isnan(b) else b, o] for b, o in rounds],  # (baseline, ours) img/s
        "extrapolated_108_epochs_s": full if gpu else None,
        "machine": machine(device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
