"""trainer.py on one CUDA GPU: its speed against nasbench_pytorch, a 108-epoch run's time, its fidelity to NB101.

    bash bench/gpu.sh                                  # inputs found in data/
    bash bench/gpu.sh --inputs DIR                     # ... in DIR instead (or BENCH_GPU_INPUTS=DIR)
    bash bench/gpu.sh --cifar cifar10-jpeg.tar.gz --nb101 nb101_real_20k.tfrecord --deps /opt/nbdeps
    bash bench/gpu.sh --smoke                          # the same steps on the CPU, tiny, ~2 min

Inputs: CIFAR-10 (--cifar, else the first of CIFAR_NAMES in the inputs folder, such as cifar10-jpeg.tar.gz
(CIFAR-10 as JPEGs)) and NB101 data (--nb101, else the first of NB101_NAMES there). The inputs folder is
--inputs, else $BENCH_GPU_INPUTS, else data/.

Steps, in order, each within its share of --budget-s (540 s: start-up and data decoding included):
  prepare   CIFAR-10: a folder (cifar-10-batches-py/ or train/ + test/) or a tarball of one, unpacked
            into --data-dir and decoded once; the NB101 HDF5, or a TFRecord converted into --data-dir
  speed     (a) bench/trainer.py, the median-size cell (~5.4 M params), full network: nasbench_pytorch's
            train loop with its DataLoader against trainer.py's step, lever by lever: images/s, speed-up
  epochs    (b) trainer.py, the same cell, real CIFAR-10: full epochs with evaluation, measured, then
            108 epochs extrapolated, beside NB101's TPU v2 median of 1,555 s
  fidelity  (c) trainer.py, the best cell of the NB101 file (highest 108-epoch validation accuracy):
            NB101's 36-epoch budget, or 12 (then 4) when the time left does not hold 36, predicted from
            (b) and the two cells' FLOPs; valid and test accuracy beside NB101's record, and their
            difference in percentage points
  search    (d) budgeted_search.py --data-root: 8 random trials of 4 epochs (a reduced network: stem 32, 3 stacks
            of 1 cell), each trained by trainer.py on the GPU; trials per hour. It runs in the time the
            others leave (skipped under 120 s): --skip speed,epochs,fidelity gives it the whole budget
(b) and (c) use the fastest lever of (a) unless --lever says otherwise. A step that would not fit
is skipped, and a run that outlives its share is stopped with SIGTERM (trainer.py keeps what it
has); the JSON says which. For 36 epochs of a large best cell, give (c) the whole budget:
--skip speed,epochs --lever graphs --fidelity-epochs 36.
One JSON (--out), rewritten after every step: the GPU, torch, every figure, and the per-epoch
logs of (b) and (c).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np

from lib.util.errors import UserError, exit_on_user_error

START = time.monotonic()
REPO = Path(__file__).resolve().parents[1]
MEDIAN_CELL = {  # bench/trainer.py's: median trainable_parameters of NB101, 5,356,682
    "adjacency": [[0, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"],
}
NB101_TPU_MEDIAN_S = 1555  # NB101's median 108-epoch training time on a TPU v2 (the paper; real20k's median too)
LEVER_FLAGS = {
    "fp32": ["--dtype", "fp32", "--no-channels-last"],
    "bf16": ["--dtype", "bf16", "--channels-last"],
    "compile": ["--dtype", "bf16", "--channels-last", "--compile", "default"],
    "graphs": ["--dtype", "bf16", "--channels-last", "--compile", "reduce-overhead"],
    "autotune": ["--dtype", "bf16", "--channels-last", "--compile", "max-autotune"],
}
SMOKE_NET = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1", "--batch-size", "64"]
SMOKE_DATA = ["--train-images", "256", "--eval-images", "64", "--bn-momentum", "0.1"]  # at most what the data holds
CIFAR_NAMES = ("cifar-10-batches-py", "cifar10-jpeg", "cifar10-jpeg.tar.gz")  # looked for in the inputs folder
NB101_NAMES = ("real20k.hdf5", "nb101_real_20k.tfrecord")
INPUTS_ENV = "BENCH_GPU_INPUTS"  # the inputs folder when --inputs is not given


class InputError(UserError):
    """An input is missing or unusable; the message says what to give."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    inputs = os.environ.get(INPUTS_ENV) or str(REPO / "data")
    p.add_argument("--inputs", default=inputs, help=f"folder of the default inputs (default: ${INPUTS_ENV} or data/)")
    p.add_argument("--cifar", help=f"CIFAR-10 folder or tarball (default: the first of {', '.join(CIFAR_NAMES)} there)")
    p.add_argument("--nb101", help=f"NB101 HDF5 or TFRecord (default: the first of {', '.join(NB101_NAMES)} there)")
    p.add_argument("--deps", help="a folder holding a copied nasbench_pytorch package, put on the import path")
    p.add_argument("--data-dir", default=str(REPO / "data"), help="where tarballs are unpacked and TFRecords converted")
    p.add_argument("--work", default=str(REPO / "runs" / "gpu"), help="run folders of (b) and (c)")
    p.add_argument("--out", help="the JSON (default bench/results/gpu.json; --smoke: <work>/gpu_smoke.json)")
    p.add_argument("--budget-s", type=float, default=540, help="wall-time budget of all the steps")
    p.add_argument("--levers", help="(a)'s levers (bench/trainer.py --levers; default fp32,bf16,compile,graphs)")
    p.add_argument("--lever", choices=LEVER_FLAGS, help="the lever of (b) and (c) (default: the fastest of (a))")
    p.add_argument("--skip", default="", help="comma-separated steps to skip: speed, epochs, fidelity, search")
    p.add_argument("--fidelity-epochs", type=int, choices=(4, 12, 36, 108), help="(c)'s budget (default: planned)")
    p.add_argument("--smoke", action="store_true", help="every step on the CPU: tiny network, a few hundred images")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- inputs


def find_input(given: str | None, inputs: Path, names: tuple[str, ...], what: str, flag: str) -> Path:
    """The path given with flag, else the first of names in the inputs folder."""
    if given:
        if not Path(given).exists():
            raise InputError(f"{flag} {given}: no such file or folder")
        return Path(given)
    for name in names:
        if (inputs / name).exists():
            return inputs / name
    raise InputError(
        f"no {what} in {inputs} (looked for {', '.join(names)}); give it with {flag} PATH, "
        f"or the folder that holds it with --inputs DIR or {INPUTS_ENV}=DIR"
    )


def cifar_root(path: Path, data_dir: Path) -> Path:
    """The --data-root for trainer.py: the folder itself, or the tarball unpacked into data_dir (once)."""
    if path.is_file():
        try:
            with tarfile.open(path) as t:
                top = {Path(m.name).parts[0] for m in t.getmembers() if m.name not in ("", ".")}
                if len(top) != 1:
                    raise InputError(f"--cifar {path}: expected one top folder in the tarball, found {len(top)}")
                dest = data_dir / top.pop()
                if not dest.exists():
                    print(f"unpacking {path} into {data_dir}")
                    data_dir.mkdir(parents=True, exist_ok=True)
                    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".unpack-") as tmp:  # all or nothing
                        t.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
                        os.replace(Path(tmp) / dest.name, dest)
        except tarfile.TarError as e:
            raise InputError(f"--cifar {path}: not a readable tarball ({' '.join(str(e).split())})") from None
        path = dest
    if path.name == "cifar-10-batches-py":
        path = path.parent
    if not ((path / "cifar-10-batches-py").is_dir() or ((path / "train").is_dir() and (path / "test").is_dir())):
        raise InputError(f"--cifar {path}: neither cifar-10-batches-py/ nor train/ + test/ inside")
    return path


def nb101_hdf5(path: Path, data_dir: Path) -> Path:
    """The NB101 HDF5 itself, or the TFRecord converted into data_dir (once)."""
    if path.suffix in (".hdf5", ".h5"):
        return path
    out = data_dir / f"{path.stem}.hdf5"
    if out.exists() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    try:
        importlib.import_module("crc32c")
    except ImportError:
        raise InputError(
            f"--nb101 {path}: converting a TFRecord needs the crc32c package (pip install crc32c); or convert "
            f"it elsewhere (python tools/nasbench_tfrecord_converter.py --input {path.name} --output X.hdf5) "
            "and give --nb101 X.hdf5"
        ) from None
    converter = [sys.executable, str(REPO / "tools" / "nasbench_tfrecord_converter.py")]
    r = subprocess.run([*converter, "--input", str(path), "--output", str(out)], capture_output=True, text=True)
    if r.returncode:
        raise InputError(f"--nb101 {path}: {(r.stderr.strip().splitlines() or ['conversion failed'])[-1]}")
    print(r.stdout.strip())
    return out


def require_nasbench_pytorch(deps: str | None) -> None:
    try:
        importlib.import_module("nasbench_pytorch.model")
    except ImportError as e:
        where = f" (not in --deps {deps} either)" if deps else ""
        raise InputError(
            f"nasbench_pytorch cannot be imported{where}: {e}. Install it (pip install nasbench_pytorch==1.3.1) "
            "or copy its package folder into a folder DIR and give --deps DIR"
        ) from None


# ----------------------------------------------------------------------------- steps


def run_step(cmd: list[str], timeout_s: float, env: dict) -> dict:
    """Run cmd with its output shown live; past timeout_s, SIGTERM (then SIGKILL after 30 s)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: deque[str] = deque(maxlen=20)

    def pump() -> None:
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=max(1.0, timeout_s))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.send_signal(signal.SIGTERM)  # trainer.py writes metrics.json as interrupted and keeps its checkpoint
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    return {"rc": proc.returncode, "timed_out": timed_out, "wall_s": time.monotonic() - t0, "tail": list(tail)}


def left(args) -> float:
    return args.budget_s - (time.monotonic() - START)


def speed_step(args, env, work: Path) -> dict:
    out = work / "speed.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(REPO / "bench" / "trainer.py"), "--out", str(out)]
    if args.smoke:
        cmd += ["--device", "cpu", "--network", "reduced", "--images", "256", "--rounds", "1"]
        cmd += ["--levers", args.levers or "fp32,bf16"]
    else:
        cmd += ["--device", "cuda", "--network", "full", "--images", "10240", "--rounds", "2", "--time-limit", "120"]
        cmd += ["--levers", args.levers] if args.levers else []
    run = run_step(cmd, 1e9 if args.smoke else min(300, left(args) - 60), env)
    if not out.exists():
        return {"status": "failed", **run}
    b = json.loads(out.read_text())
    fig = {k: b[k] for k in ("cell", "params", "network", "rows", "best", "speedup", "evaluation", "skipped")}
    fig["machine"] = b["machine"]
    return {"status": "ok", "wall_s": run["wall_s"], "figure": fig}


def trainer_cmd(args, lever: str, out: Path) -> list[str]:
    device = ["--device", "cpu", *SMOKE_NET, *SMOKE_DATA] if args.smoke else ["--device", "cuda"]
    return [sys.executable, str(REPO / "trainer.py"), *device, *LEVER_FLAGS[lever], "--out", str(out)]


def read_run(out: Path) -> dict | None:
    return json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None


def epochs_step(args, env, work: Path, lever: str, data_root: Path) -> dict:
    out = work / "epochs"
    shutil.rmtree(out, ignore_errors=True)
    cell = ["--adjacency", json.dumps(MEDIAN_CELL["adjacency"]), "--ops", ",".join(MEDIAN_CELL["ops"])]
    cmd = trainer_cmd(args, lever, out) + [*cell, "--data-root", str(data_root), "--epochs", "108"]
    cmd += ["--stop-after", "2" if args.smoke else "3"]
    run = run_step(cmd, 1e9 if args.smoke else min(180, left(args) - 30), env)
    m = read_run(out)
    if not m or not m["epochs"]:
        return {"status": "failed", **run}
    times = [e["epoch_time_s"] for e in m["epochs"]]
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    total = times[0] + 107 * steady  # the first epoch carries compilation and autotuning, once
    fig = {"cell": m["cell"], "params": m["params"], "levers": m["levers"], "epochs_measured": len(times)}
    fig |= {"first_epoch_s": times[0], "steady_epoch_s": steady, "startup_s": run["wall_s"] - sum(times)}
    fig["extrapolated_108_epochs_s"] = total
    fig |= {"nb101_tpu_v2_median_s": NB101_TPU_MEDIAN_S, "vs_nb101_tpu": NB101_TPU_MEDIAN_S / total}
    fig |= {"train_images_per_s": float(np.median([e["images_per_s"] for e in m["epochs"][1:] or m["epochs"]]))}
    fig["epoch_log"] = m["epochs"]
    return {"status": "ok" if not run["rc"] else "partial", "wall_s": run["wall_s"], "figure": fig}


def forward_flops(cell_json: dict, sizes: tuple[int, int, int]) -> int:
    """FLOPs of one image's forward pass through the network (counted on the meta device: no arithmetic)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lib.nb101.cell import make_cell
    from lib.nb101.network import build_network
    from lib.training.protocol import streamline_cells

    net = build_network(make_cell(cell_json["adjacency"], cell_json["ops"]), *sizes)
    streamline_cells(net)
    net = net.to("meta")
    with FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, 32, 32, device="meta"))
    return counter.get_total_flops()


def compile_estimate(speed: dict | None, lever: str, epochs_fig: dict) -> float:
    """Seconds to compile the best cell: (a)'s cold compile of the median cell (train and eval graphs), or
    (b)'s first-epoch excess (perhaps from a warm cache, so tripled), times 1.5 for a larger cell."""
    rows, evaluation = (speed or {}).get("rows", {}), (speed or {}).get("evaluation", {})
    if lever in rows and "2500" in evaluation:
        return 1.5 * (rows[lever]["warmup_s"] + evaluation["2500"]["warmup_s"])
    return 1.5 * 3 * (epochs_fig["first_epoch_s"] - epochs_fig["steady_epoch_s"])


def fidelity_step(args, env, work: Path, lever: str, data_root: Path, nb_path: Path, speed, epochs_fig) -> dict:
    from dataset import load_nb101
    from lib.nb101.cell import cell_from_row
    from lib.training.run_report import nb101_record, recorded

    nb = load_nb101(nb_path)
    i = int(np.nanargmax(nb.labels("val", epochs=108, repeat="mean")))
    cell = cell_from_row(nb.adjacency[i], nb.operations[i], nb.num_vertices[i])
    record = nb101_record(nb, i)
    sizes = (8, 1, 1) if args.smoke else (128, 3, 3)
    plan = {"cell": cell.to_json(), "nb101_trainable_parameters": record["trainable_parameters"]}
    plan["nb101_labels_synthetic"] = nb.synthetic
    if args.smoke or args.fidelity_epochs:
        epochs = args.fidelity_epochs or 4
    elif epochs_fig:  # this cell's epoch from (b)'s, by FLOPs; its compile from (a)'s or (b)'s, with room
        ratio = forward_flops(cell.to_json(), sizes) / forward_flops(epochs_fig["cell"], sizes)
        epoch_s = epochs_fig["steady_epoch_s"] * ratio
        fixed = epochs_fig["startup_s"] + compile_estimate(speed, lever, epochs_fig)
        room = left(args) - 20
        plan |= {"flops_ratio_to_median": ratio, "predicted_epoch_s": epoch_s, "predicted_fixed_s": fixed}
        plan |= {"room_s": room}
        epochs = next((e for e in (36, 12, 4) if fixed + 1.1 * e * epoch_s <= room), None)
        if epochs is None:
            return {"status": "skipped", "reason": f"even 4 epochs (~{fixed + 4 * epoch_s:.0f} s) exceed {room:.0f} s"}
    else:
        epochs = 12  # no measured speed to plan with
    out = work / "fidelity"
    shutil.rmtree(out, ignore_errors=True)
    cmd = trainer_cmd(args, lever, out) + ["--hash", cell.hash, "--data", str(nb_path), "--data-root", str(data_root)]
    run = run_step(cmd + ["--epochs", str(epochs)], 1e9 if args.smoke else left(args) - 10, env)
    m = read_run(out)
    if not m or not m["epochs"]:
        return {"status": "failed", **run, "plan": plan}
    final = m["final"]
    nb_val, nb_test = recorded(record, epochs, "val"), recorded(record, epochs, "test")
    fig = plan | {"params": m["params"], "epochs": epochs, "run_status": m["status"], "epochs_done": final["epoch"]}
    fig["levers"] = m["levers"]
    fig |= {"valid_acc": final["valid_acc"], "test_acc": final["test_acc"], "nb101_val": nb_val, "nb101_test": nb_test}
    fig["valid_minus_nb101_pp"] = 100 * (final["valid_acc"] - nb_val) if nb_val is not None else None
    fig |= {"summary": m["summary"], "nb101_labels": m["nb101_labels"], "wall_time_s": final["wall_time_s"]}
    fig["epoch_log"] = m["epochs"]
    status = "ok" if m["status"] == "done" else "partial"
    return {"status": status, "wall_s": run["wall_s"], "timed_out": run["timed_out"], "figure": fig}


def search_step(args, env, work: Path, data_root: Path) -> dict:
    """(d) budgeted_search.py with real training: 8 random trials of 4 epochs, one after another on the GPU (the
    local engine), each in a trainer.py process of its own; trials per hour of wall-clock time."""
    out = work / "search"
    shutil.rmtree(out, ignore_errors=True)
    if args.smoke:
        trial = ["--budget", "1", "--trial-epochs", "1", "--trial-stem-channels", "8", "--trial-stacks", "1"]
        trial += ["--trial-train-images", "256", "--trial-eval-images", "64", "--device", "cpu"]
        trial += ["--trial-args", "--batch-size 64 --bn-momentum 0.1"]
    else:
        if left(args) < 120:
            return {"status": "skipped", "reason": f"{left(args):.0f} s left; 8 trials need about 120 s or more"}
        trial = ["--budget", "8", "--trial-epochs", "4", "--trial-stem-channels", "32", "--trial-stacks", "3"]
        trial += ["--device", "cuda"]
    cmd = [sys.executable, str(REPO / "budgeted_search.py"), "--data-root", str(data_root), "--strategy", "random"]
    cmd += trial
    run = run_step(cmd + ["--out", str(out)], 1e9 if args.smoke else left(args) - 10, env)
    journal = out / "trials.jsonl"
    trials = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    if not trials:
        return {"status": "failed", **run}
    done = [t for t in trials if t["status"] == "done"]
    fig = {"trials": len(trials), "done": len(done), "trial_epochs": 1 if args.smoke else 4, "wall_s": run["wall_s"]}
    fig |= {"trials_per_hour": 3600 * len(trials) / run["wall_s"], "trial_s": [t["seconds"] for t in trials]}
    fig["best_val"] = max((t["val"] for t in done), default=None)
    return {"status": "ok" if not run["rc"] else "partial", "wall_s": run["wall_s"], "figure": fig}


# ----------------------------------------------------------------------------- main


def gpu_name() -> str | None:
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else None
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from bench.common import machine
    from lib.util.outputs import write_json

    work, data_dir = Path(args.work).resolve(), Path(args.data_dir).resolve()
    out = Path(args.out or (work / "gpu_smoke.json" if args.smoke else REPO / "bench" / "results" / "gpu.json"))
    skip = set(filter(None, args.skip.split(",")))
    result = {"status": "running", "smoke": args.smoke, "gpu": gpu_name(), "torch": torch.__version__}
    result |= {"cuda": torch.version.cuda, "budget_s": args.budget_s, "machine": machine(), "steps": {}}

    def save(status: str | None = None) -> None:
        result["status"] = status or result["status"]
        result["elapsed_s"] = time.monotonic() - START
        write_json(out, result)

    def step(name: str, fn) -> dict | None:
        if name in skip:
            result["steps"][name] = {"status": "skipped", "reason": "--skip"}
        else:
            print(f"\n== {name} ({left(args):.0f} s of the budget left)", flush=True)
            t0 = time.monotonic()
            try:
                r = fn()
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001 - recorded; the later steps still run
                traceback.print_exc()
                r = {"status": "failed", "reason": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]}
            r.setdefault("wall_s", time.monotonic() - t0)
            result["steps"][name] = {k: v for k, v in r.items() if k != "figure"}
            if "figure" in r:
                result[name] = r["figure"]
        save()
        return result.get(name)

    try:
        if args.deps:
            sys.path.insert(0, str(Path(args.deps).resolve()))
        paths = [str(REPO), *([str(Path(args.deps).resolve())] if args.deps else []), os.environ.get("PYTHONPATH")]
        env = os.environ | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        if not args.smoke and not torch.cuda.is_available():
            raise InputError("no CUDA device here; --smoke runs the same steps on the CPU")
        require_nasbench_pytorch(args.deps)
        prepared = {}

        def prepare() -> dict:
            from lib.training.images import load_images

            inputs = Path(args.inputs)
            root = cifar_root(find_input(args.cifar, inputs, CIFAR_NAMES, "CIFAR-10", "--cifar"), data_dir)
            t0 = time.monotonic()
            load_images(root)  # decodes an image folder once; trainer.py then reads the cache
            nb = nb101_hdf5(find_input(args.nb101, inputs, NB101_NAMES, "NB101 data", "--nb101"), data_dir)
            prepared.update(root=root, nb=nb)
            return {"status": "ok", "cifar_root": str(root), "nb101": str(nb), "decode_s": time.monotonic() - t0}

        step("prepare", prepare)
        speed = step("speed", lambda: speed_step(args, env, work))
        lever = args.lever or (speed or {}).get("best") or ("bf16" if args.smoke else "graphs")
        result["lever"] = lever
        b = step("epochs", lambda: epochs_step(args, env, work, lever, prepared["root"]))
        step("fidelity", lambda: fidelity_step(args, env, work, lever, prepared["root"], prepared["nb"], speed, b))
        step("search", lambda: search_step(args, env, work, prepared["root"]))
    except InputError as e:
        result["error"] = str(e)
        save("failed")
        raise  # one line on stderr, exit status 2
    except KeyboardInterrupt:  # Ctrl-C reaches the running step too; what is measured so far stays
        save("interrupted")
        print(f"bench/gpu.sh: interrupted; what was measured is in {out}", file=sys.stderr)
        return 130
    statuses = [s["status"] for s in result["steps"].values()]
    save("complete" if all(s in ("ok", "skipped") for s in statuses) and not skip else "partial")
    print_summary(result, out)
    return 0


def print_summary(r: dict, out: Path) -> None:
    smoke = " | smoke: tiny network and data, not the figures" if r["smoke"] else ""
    where = f"{r['gpu'] or 'CPU'}, torch {r['torch']}{smoke}"
    print(f"\n== summary ({r['elapsed_s']:.0f} s of {r['budget_s']:.0f}; {where})")
    for name, s in r["steps"].items():
        print(f"  {name:9s} {s['status']:8s} {s.get('wall_s', 0):6.0f} s  {s.get('reason', '')}")
    if a := r.get("speed"):
        speedup = a["speedup"] or math.nan
        print(f"  (a) speed-up over nasbench_pytorch's loop: {speedup:.2f}x with {a['best']}")
    if b := r.get("epochs"):
        print(
            f"  (b) 108 epochs of the median cell: {b['extrapolated_108_epochs_s'] / 60:.1f} min"
            f" ({b['steady_epoch_s']:.1f} s an epoch; NB101 TPU v2 median {NB101_TPU_MEDIAN_S} s)"
        )
    if c := r.get("fidelity"):
        print(f"  (c) best cell {c['cell']['hash']}, {c['epochs_done']}/{c['epochs']} epochs: {c['summary']}")
    if d := r.get("search"):
        print(
            f"  (d) search with real training: {d['trials']} trials of {d['trial_epochs']} epochs, "
            f"{d['trials_per_hour']:.0f} trials/h"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(exit_on_user_error("bench/gpu.sh", main))
