"""Train one NAS-Bench-101 cell on CIFAR-10 with NB101's own protocol (docs/trainer_protocol.md).

    python trainer.py --arch runs/search/top1.json --data-root data/cifar10-jpeg            # 108 epochs
    python trainer.py --hash <H> --data data/nasbench.hdf5 --data-root data --epochs 36     # + NB101's record
    python trainer.py --adjacency '[[0,1,1],[0,0,1],[0,0,0]]' --ops input,conv3x3-bn-relu,output \
        --data-root data/cifar10-jpeg --epochs 4 --stem-channels 16 --num-stacks 1 --cells-per-stack 1
    python trainer.py --resume runs/train-20250101-120000                       # continue exactly
    torchrun --standalone --nproc_per_node=8 trainer.py --arch top1.json --data-root data    # DDP

Data (--data-root): torchvision's CIFAR10 batches (`cifar-10-batches-py/`, fetched by --download),
or an image-folder tree `train/<class>/*` + `test/<class>/*` such as ../shared/data/cifar10-jpeg.tar.gz
unpacked (decoded once, cached beside it). lib/cifar10.py holds the data and its augmentation,
lib/nb101_training.py NB101's initialisers, optimiser, LR schedule and training steps.

Speed: the whole uint8 dataset lives on the device and crops/flips are one gather per batch;
channels_last (--no-channels-last), bf16 autocast on CUDA (--dtype), --compile [MODE] (reduce-overhead:
CUDA graphs), a large evaluation batch, and no wait for the device inside a step. The data order and
augmentation are a pure function of (seed, epoch), so --resume and DDP see exactly the same stream.
Writes <out>/ckpt.pt (atomic, every epoch), <out>/metrics.json (status running, done, failed or
interrupted) and <out>/curves.png. SIGINT / SIGTERM stop it cleanly: --resume <out> continues.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from dataset import BUDGETS, DataFileError, load_nb101
from lib.cifar10 import CIFAR10Error, epoch_plan, load_cifar10, normalizer, pad_for_crops, subset
from lib.devices import pick_device
from lib.nb101_space import Cell, InvalidSpecError, build_network, cell_from_row, count_parameters, make_cell
from lib.nb101_training import TFRMSprop, eval_sums, freeze_dummies, init_like_tf, lr_at, streamline_cells, train_epoch
from lib.outputs import write_atomic
from lib.run_control import DDPError, Interrupted, agree, deferred_signals, start_ddp, stop_on_signals
from lib.trainer_report import nb101_record, params_line, plot_curves, summary_line

EVAL = ("valid", "test")  # evaluated after every epoch
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs


class TrainerError(Exception):
    """A user-facing failure: bad cell, missing data, NaN loss. Printed as one line, exit code 1."""


# ----------------------------------------------------------------------------- config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cell = p.add_argument_group("cell (one of)")
    cell.add_argument("--arch", help="JSON file with adjacency, ops (and hash), e.g. search.py's top1.json")
    cell.add_argument("--hash", help="NB101 module hash, looked up in --data")
    cell.add_argument("--adjacency", help="JSON adjacency matrix, e.g. '[[0,1],[0,0]]'")
    cell.add_argument("--ops", help="comma-separated ops, e.g. input,output")
    cell.add_argument("--data", help="NB101 HDF5 (tools/nasbench_tfrecord_converter.py) for --hash and the record")
    net = p.add_argument_group("network")
    net.add_argument("--stem-channels", type=int, default=128)
    net.add_argument("--num-stacks", type=int, default=3)
    net.add_argument("--cells-per-stack", type=int, default=3)
    bn_help = "PyTorch BN momentum; NB101's decay 0.997 is 0.003 (short reduced runs may raise it)"
    net.add_argument("--bn-momentum", type=float, default=0.003, help=bn_help)
    opt = p.add_argument_group("NB101 protocol (nasbench lib/config.py defaults)")
    opt.add_argument("--epochs", type=int, default=108, help="NB101 budgets: 4, 12, 36, 108")
    opt.add_argument("--batch-size", type=int, default=256, help="global batch, split across DDP ranks")
    opt.add_argument("--lr", type=float, default=0.2, help="0.1 x 2 TPU shards")
    opt.add_argument("--momentum", type=float, default=0.9)
    opt.add_argument("--rms-decay", type=float, default=0.9, help="TF RMSPropOptimizer's default decay")
    opt.add_argument("--rms-eps", type=float, default=1.0)
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="L2 term in the loss")
    data = p.add_argument_group("data")
    data.add_argument("--data-root", help="dir with cifar-10-batches-py/ or train/ + test/ (default: data)")
    data.add_argument("--download", action="store_true", help="fetch torchvision's CIFAR10 into --data-root")
    data.add_argument("--train-images", type=int, default=0, help="train on a fixed subset (0 = all 40k)")
    data.add_argument("--eval-images", type=int, default=0, help="evaluate on fixed subsets (0 = all 10k)")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cuda, mps, cpu")
    run.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"], help="auto: bf16 on CUDA")
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="NHWC tensors")
    run.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=COMPILE_MODES,
        help="torch.compile the network "
        "(bare --compile: mode default; reduce-overhead adds CUDA graphs, max-autotune also tunes kernels)",
    )
    run.add_argument("--eval-batch-size", type=int, default=0, help="0: 2500 on CUDA, 500 elsewhere")
    run.add_argument("--ddp-timeout", type=float, default=600, help="seconds DDP ranks wait for each other")
    run.add_argument("--out", help="run dir (default runs/train-<timestamp>)")
    run.add_argument("--resume", help="run dir to continue exactly; its saved config is used")
    run.add_argument("--stop-after", type=int, default=None, help="stop after N epochs of this invocation")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- cell


def select_cell(args: argparse.Namespace) -> tuple[Cell, dict | None]:
    """The cell to train and, when --data holds it, NB101's record for it. Raises TrainerError."""
    given = [k for k in ("arch", "hash", "adjacency") if getattr(args, k)]
    if len(given) != 1:
        raise TrainerError("give exactly one of --arch FILE, --hash H --data FILE, --adjacency M --ops A,B,..")
    try:
        if args.arch:
            try:
                spec = json.loads(Path(args.arch).read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise TrainerError(f"--arch {args.arch}: cannot read JSON ({e})") from None
            if not isinstance(spec, dict) or not {"adjacency", "ops"} <= spec.keys():
                raise TrainerError(f"--arch {args.arch}: expected a JSON object with keys adjacency, ops (and hash)")
            cell = Cell.from_json(spec)
        elif args.adjacency:
            if not args.ops:
                raise TrainerError("--adjacency needs --ops, e.g. --ops input,conv3x3-bn-relu,output")
            try:
                matrix = json.loads(args.adjacency)
            except json.JSONDecodeError as e:
                raise TrainerError(f"--adjacency is not JSON ({e})") from None
            cell = make_cell(matrix, args.ops.split(","))
        else:
            cell = None
    except (ValueError, TypeError) as e:  # InvalidSpecError, or JSON of the wrong shape
        raise TrainerError(f"invalid cell: {e}") from None
    if not args.data:
        if cell is None:
            raise TrainerError("--hash needs --data data/nasbench.hdf5 (tools/nasbench_tfrecord_converter.py)")
        return cell, None
    try:
        nb = load_nb101(args.data)
    except DataFileError as e:
        raise TrainerError(f"--data: {e}") from None
    try:
        i = nb.index_of(args.hash or cell.hash)
    except KeyError as e:
        if cell is None:
            raise TrainerError(f"--hash: {e.args[0]}") from None
        return cell, None  # a cell the file doesn't hold: trained without a reference
    cell = cell or cell_from_row(nb.adjacency[i], nb.operations[i], nb.num_vertices[i])
    return cell, nb101_record(nb, i)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args, ckpt = resolve_config(parse_args(argv))
    if args.epochs not in BUDGETS:
        print(f"note: --epochs {args.epochs} is not an NB101 budget {BUDGETS}")

    # -- devices and DDP (torchrun sets RANK / LOCAL_RANK / WORLD_SIZE); joining is bounded by --ddp-timeout
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = pick_device(args.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    with stop_on_signals():  # SIGINT / SIGTERM: Interrupted, metrics.json says so, --resume continues
        if ddp:
            try:
                start_ddp("nccl" if device.type == "cuda" else "gloo", args.ddp_timeout, rank, world)
            except DDPError as e:
                raise TrainerError(str(e)) from None
        try:
            return _run(args, ckpt, device, rank, world)
        finally:
            if ddp and dist.is_initialized():
                dist.destroy_process_group()


def resolve_config(args: argparse.Namespace) -> tuple[argparse.Namespace, dict | None]:
    """With --resume the saved config wins (over today's defaults), so the continuation is the same run."""
    ckpt = None
    if args.resume:
        path = Path(args.resume) / "ckpt.pt"
        if not path.exists():
            raise TrainerError(f"--resume {args.resume}: no ckpt.pt there")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cli = args
        args = argparse.Namespace(**(vars(parse_args([])) | ckpt["config"]))
        args.resume, args.out, args.stop_after = cli.resume, cli.resume, cli.stop_after
        args.data_root = cli.data_root or args.data_root
        args.compile = {True: "default", False: None}.get(args.compile, args.compile)  # once a plain flag
    args.data_root = str(Path(args.data_root or "data").resolve())
    return args, ckpt


def on_every_rank(fn, world: int):
    """fn() on this rank; under DDP every rank then learns whether any rank failed, and all stop if so."""
    if world == 1:
        return fn()
    result, error = None, None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - passed to every rank, raised there as one line
        error = str(e) if isinstance(e, TrainerError) else one_line(e)
    try:
        agree(error, world)
    except DDPError as e:
        raise TrainerError(str(e)) from None
    return result


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text if isinstance(e, TrainerError) else f"{type(e).__name__}: {text}")[:500]


def _run(args, ckpt, device, rank, world) -> dict:
    master, ddp = rank == 0, world > 1
    cell, record = on_every_rank(lambda: select_cell(args), world)
    out = Path(args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"))
    args.out = str(out)
    if ckpt is None and (out / "ckpt.pt").exists():
        raise TrainerError(f"--out {out} already holds a run; continue it with --resume {out}")

    # -- data: all of it on the device
    t, n_eval = load_to_device(args, device, rank, world)
    padded, norm = pad_for_crops(t["train_x"]), normalizer(device)
    n_train = len(padded)
    total_steps = args.epochs * n_train // args.batch_size
    if total_steps < 1:
        raise TrainerError(f"{args.epochs} epochs of {n_train} images is not one batch of {args.batch_size}")

    # -- speed levers: bf16 autocast, memory layout, compilation (CUDA graphs), evaluation batch
    use_bf16 = args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    graphs = args.compile in GRAPH_MODES and device.type == "cuda"
    args.eval_batch_size = args.eval_batch_size or (2500 if device.type == "cuda" else 500)

    # -- model
    torch.manual_seed(args.seed)
    raw = build_network(cell, args.stem_channels, args.num_stacks, args.cells_per_stack, bn_momentum=args.bn_momentum)
    init_like_tf(raw)
    freeze_dummies(raw)
    streamline_cells(raw)  # one graph for torch.compile, same outputs
    n_params = count_parameters(raw)
    raw = raw.to(device, memory_format=fmt)
    params = [p for p in raw.parameters() if p.requires_grad]
    opt = TFRMSprop(params, lr=0.0, decay=args.rms_decay, momentum=args.momentum, eps=args.rms_eps)
    history, start_epoch, train_time, wall_time = [], 0, 0.0, 0.0
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        train_time, wall_time = ckpt["train_time"], ckpt["wall_time"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
    model = torch.compile(raw, mode=args.compile, dynamic=False) if args.compile else raw  # a graph per shape
    eval_model = model
    if ddp:
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    local = args.batch_size // world
    rank_slice = slice(rank * local, (rank + 1) * local)  # this rank's share of every global batch
    network = {"stem_channels": args.stem_channels, "num_stacks": args.num_stacks}
    network |= {"cells_per_stack": args.cells_per_stack, "num_classes": 10}
    levers = {"dtype": "bf16" if use_bf16 else "fp32", "channels_last": args.channels_last}
    levers |= {"compile": args.compile, "cuda_graphs": graphs, "eval_batch_size": args.eval_batch_size}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    if master:
        print(f"cell {cell.hash} {list(cell.ops)} | {params_line(n_params, network, record)}")
        print(
            f"device {device} x{world} ({gpu}) | {n_train} train / {n_eval['valid']} valid / {n_eval['test']} test"
            f" | {args.epochs} epochs = {total_steps} steps of {args.batch_size} | out {out}"
        )
        print("levers: " + ", ".join(f"{k} {v}" for k, v in levers.items()))

    def all_sum(x: torch.Tensor) -> torch.Tensor:
        if ddp:
            dist.all_reduce(x)
        return x

    saved_epoch = start_epoch  # the epoch ckpt.pt holds: what --resume continues from

    def finish(status: str, **extra) -> dict:
        """metrics.json (and curves.png once there is an epoch) as they stand, on rank 0."""
        m = {"status": status, **extra, "cell": cell.to_json(), "hash": cell.hash, "params": n_params}
        m |= {"network": network, "config": vars(args), "levers": levers, "checkpoint_epoch": saved_epoch}
        m |= {"device": str(device), "world_size": world, "device_name": gpu, "torch": torch.__version__}
        labels = None if record is None else "SYNTHETIC (demo data)" if record["synthetic"] else "recorded"
        m |= {"nb101": record, "nb101_labels": labels, "epochs": history, "final": history[-1] if history else None}
        m["summary"] = summary_line(history[-1], record, args.epochs) if history else None
        if master:
            write_atomic(out / "metrics.json", lambda f: f.write(json.dumps(m, indent=1)))
            if history and status != "running":
                title = f"cell {cell.hash} | {n_params:,} params | {args.epochs}-epoch run on {gpu}"
                plot_curves(out / "curves.png", history, record, args.epochs, title)
        return m

    # -- loop
    metrics = finish("running")
    try:
        for epoch in range(start_epoch, args.epochs):
            if args.stop_after is not None and epoch - start_epoch >= args.stop_after:
                break
            t0 = time.perf_counter()
            plan = torch.from_numpy(epoch_plan(args.seed, epoch, n_train, args.batch_size)).to(device)
            first = epoch * n_train // args.batch_size
            lrs = [lr_at(s, total_steps, args.lr) for s in range(first, first + plan.shape[1])]
            mine, desc = plan[:, :, rank_slice], f"epoch {epoch + 1}/{args.epochs}"
            stats = train_epoch(
                model,
                opt,
                params,
                padded,
                t["train_y"],
                mine,
                lrs,
                args.weight_decay,
                norm,
                amp,
                desc,
                master,
                memory_format=fmt,
                graphs=graphs,
            )
            stats = all_sum(stats)
            if stats[3].item() > 0:  # checked once per epoch: the checkpoint below is never a NaN state
                last = f"{out / 'ckpt.pt'} (epoch {saved_epoch})" if saved_epoch else "none (first epoch)"
                raise TrainerError(f"loss became NaN/inf in epoch {epoch + 1}; stopped. Last good checkpoint: {last}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt_train = time.perf_counter() - t0
            if ddp:  # rank 0's BatchNorm running stats for everyone, as the checkpoint holds rank 0's
                for b in raw.buffers():
                    dist.broadcast(b, 0)
            bs = args.eval_batch_size
            ev = {s: all_sum(eval_sums(eval_model, t[f"{s}_x"], t[f"{s}_y"], norm, amp, bs, fmt, graphs)) for s in EVAL}
            with deferred_signals():  # the epoch's record, checkpoint and metrics are written whole
                train_time += dt_train
                wall_time += time.perf_counter() - t0
                h = {"epoch": epoch + 1, "step": first + plan.shape[1], "lr": lrs[-1] if lrs else 0.0}
                h |= {"train_loss": stats[0].item() / stats[2].item(), "train_acc": stats[1].item() / stats[2].item()}
                h |= {f"{s}_loss": v[0].item() / v[2].item() for s, v in ev.items()}
                h |= {f"{s}_acc": v[1].item() / v[2].item() for s, v in ev.items()}
                h |= {"epoch_time_s": time.perf_counter() - t0, "train_time_s": train_time, "wall_time_s": wall_time}
                history.append(h | {"images_per_s": stats[2].item() / dt_train})
                if master:
                    print(
                        f"epoch {h['epoch']:3d} | train {h['train_loss']:.4f} {h['train_acc']:.4f} | valid "
                        f"{h['valid_loss']:.4f} {h['valid_acc']:.4f} | test {h['test_acc']:.4f} | "
                        f"{history[-1]['images_per_s']:,.0f} img/s"
                    )
                    state = {"model": raw.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1}
                    state |= {"config": vars(args), "cell": cell.to_json(), "history": history}
                    state |= {"train_time": train_time, "wall_time": wall_time}
                    state["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
                    write_atomic(out / "ckpt.pt", lambda f, s=state: torch.save(s, f), "wb")
                saved_epoch = epoch + 1
                metrics = finish("running")
    except Interrupted as e:
        with deferred_signals():
            finish("interrupted", signal=str(e))
        if master:
            where = f"from epoch {saved_epoch}" if saved_epoch else "from the start (no checkpoint yet)"
            print(f"interrupted by {e}; `python trainer.py --resume {out}` continues {where}", file=sys.stderr)
        raise
    except Exception as e:
        with deferred_signals():
            finish("failed", error=one_line(e))
        raise
    done = bool(history) and history[-1]["epoch"] == args.epochs
    metrics = finish("done" if done else "stopped")
    if master and history:
        print(summary_line(history[-1], record, args.epochs))
    return metrics


def load_to_device(args, device, rank, world) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """CIFAR-10's arrays on the device, and the full valid / test sizes.

    Rank 0 decodes first, so only it writes the cache; a rank that cannot read the data stops all
    of them. Each rank keeps every world-th valid and test image; the evaluation sums are all-reduced.
    """

    def load(download: bool) -> dict[str, np.ndarray]:
        try:
            return load_cifar10(Path(args.data_root), download)
        except CIFAR10Error as e:
            raise TrainerError(str(e)) from None

    first = on_every_rank(lambda: load(args.download) if rank == 0 else None, world)  # rank 0 writes the cache
    then = on_every_rank(lambda: None if rank == 0 else load(False), world)
    d = first if rank == 0 else then
    d["train_x"], d["train_y"] = subset(d["train_x"], d["train_y"], args.train_images)
    n_eval = {}
    for s in EVAL:
        x, y = subset(d[f"{s}_x"], d[f"{s}_y"], args.eval_images)
        d[f"{s}_x"], d[f"{s}_y"], n_eval[s] = x[rank::world], y[rank::world], len(x)
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in d.items()}, n_eval


if __name__ == "__main__":
    try:
        main()
    except (TrainerError, InvalidSpecError) as e:
        sys.exit(f"trainer.py: error: {e}")
    except Interrupted as e:
        sys.exit(128 + e.signum)
