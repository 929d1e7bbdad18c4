"""Benchmark the TFRecord -> HDF5 converter on a full-size NB101 file against a per-record reference loop.

    python -m bench.converter                          # makes data/demo_full.tfrecord first if absent (~2 min)
    python -m bench.converter --input data/nasbench_full.tfrecord
    python -m bench.converter --reference-records 0    # the reference loop over every record, not a sample

The reference parses each record as NB101's api.py does: json.loads, base64.b64decode,
ModelMetrics.FromString, then the 9 values with HasField (trainable_parameters, halfway and final
training_time/train/val/test). Its records are read into memory first, so its time leaves out the
framing. By default it runs on the first 1,000,000 records and is extrapolated to the file.
The converter checks the framing and CRCs of the whole file before decoding it; the baseline in
the same run converts without that pass (convert(check_first=False): the CRCs are computed as each
range is decoded), so the table gives what the pass adds to a good conversion.
Then bad input: a copy with one byte flipped in its first, middle or last record. The check pass
finds it in seconds; the baseline finds damage in the last record only after decoding everything
before it (--no-error-run skips these; --no-baseline skips the two baseline runs).
Prints a table and writes bench/results/converter.json (machine, load, timings, peak RSS).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import google.protobuf
import h5py
import numpy as np

from bench.common import REPO, RESULTS, machine
from lib.nb101 import space as nb101_space
from lib.nb101.schema import RECORD_FIELDS
from lib.tfrecord.convert import convert
from lib.tfrecord.records import ModelMetrics, RecordError, read_tfrecord
from lib.util.outputs import write_json


def decoding_extras() -> dict:
    """The machine's memory and the versions the decoding speed depends on, beside bench.common.machine()."""
    mem_kib = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {
        "memory_gib": round(int(mem_kib) / 2**20, 1),
        "numpy": np.__version__,
        "protobuf": google.protobuf.__version__,
    }


class PeakRSS:
    """Samples the summed RSS of this process and its descendants (shared pages counted in each)."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(os.getpid())))


def _tree(root: int) -> list[int]:
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def _rss(pid: int) -> int:
    try:
        return next(int(x.split()[1]) * 1024 for x in open(f"/proc/{pid}/status") if x.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0


def reference_loop(datas: list[bytes]) -> None:
    """NB101 api.py's work per record, minus the dicts: JSON, base64, protobuf, the values."""
    nan = math.nan
    for data in datas:
        module_hash, epochs, adjacency, ops, raw = json.loads(data)
        m = ModelMetrics.FromString(base64.b64decode(raw))
        half, final = m.evaluation_data[1], m.evaluation_data[2]
        _ = (m.trainable_parameters, ops.split(","), int(math.isqrt(len(adjacency))))
        _ = [getattr(e, f) if e.HasField(f) else nan for e in (half, final) for f in RECORD_FIELDS]


def time_conversion(src: Path, workers: int | None, check_first: bool | None) -> dict:
    """Convert src in this process (its workers are children) to a temp dir: wall, CPU, peak RSS."""
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as rss:
        out = Path(tmp) / "bench.hdf5"
        self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        table = convert(src, out, workers=workers, check_first=check_first)
        wall = time.perf_counter() - t0
        self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        with h5py.File(out) as f:
            num_records, num_cells = int(f.attrs["num_records"]), len(f["hash"])
            synthetic = bool(f.attrs["synthetic_labels"])
    assert table.num_records == num_records
    cpu_main = sum(getattr(self1, k) - getattr(self0, k) for k in ("ru_utime", "ru_stime"))
    cpu_workers = sum(getattr(kids1, k) - getattr(kids0, k) for k in ("ru_utime", "ru_stime"))
    return {
        "check_first": check_first,
        "records": num_records,
        "cells": num_cells,
        "synthetic_labels": synthetic,
        "workers": workers or len(os.sched_getaffinity(0)),
        "load_before": load,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_main + cpu_workers, 2),
        "cpu_s_main": round(cpu_main, 2),
        "cpu_s_workers": round(cpu_workers, 2),
        "us_per_record_wall": round(wall / num_records * 1e6, 3),
        "peak_rss_main_mb": round(self1.ru_maxrss / 1024),  # the process's peak so far
        "peak_rss_largest_worker_mb": round(kids1.ru_maxrss / 1024),
        "peak_rss_sum_sampled_mb": round(rss.peak / 2**20),
    }


def time_errors(src: Path, workers: int | None, baseline: bool) -> dict:
    """Convert a copy of src with one byte flipped in its first, middle or last record (each in turn,
    then put back): the time to the error, with the check pass and (last record) without it."""
    size = src.stat().st_size
    runs = [("first", 30, None), ("middle", size // 2, None), ("last", size - 20, None)]
    runs += [("last", size - 20, False)] if baseline else []
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / src.name
        subprocess.run(["cp", "--reflink=auto", str(src), str(bad)], check=True)  # cheap where the disk can
        for where, at, check_first in runs:
            with open(bad, "r+b") as f:
                byte = os.pread(f.fileno(), 1, at)
                os.pwrite(f.fileno(), bytes([byte[0] ^ 0x01]), at)
                load, t0 = os.getloadavg(), time.perf_counter()
                try:
                    convert(bad, Path(tmp) / "bad.hdf5", workers=workers, check_first=check_first)
                    raise AssertionError(f"a flipped byte at {at} was not caught")
                except RecordError as e:
                    wall, error = time.perf_counter() - t0, str(e).replace(tmp, "TMP")
                os.pwrite(f.fileno(), byte, at)
            suffix = ("", "") if check_first is None else ("_no_check_pass", ", no check pass")
            name, what = where + suffix[0], f"bad {where} record{suffix[1]}"
            out[name] = {"what": what, "byte": at, "wall_s": round(wall, 2), "load_before": load, "error": error}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(REPO / "data" / "demo_full.tfrecord"))
    ap.add_argument("--reference-records", type=int, default=1_000_000, help="sample size (0: every record)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-error-run", action="store_true", help="skip timing the errors of damaged copies")
    ap.add_argument("--no-baseline", action="store_true", help="skip the runs without the check pass")
    ap.add_argument("--output-json", default=str(RESULTS / "converter.json"))
    args = ap.parse_args()
    src = Path(args.input)
    made = None
    if not src.exists():
        t0 = time.perf_counter()
        cmd = [sys.executable, str(REPO / "tools" / "make_demo_data.py"), "--cells", "all", "--output", str(src)]
        subprocess.run(cmd, check=True)
        made = round(time.perf_counter() - t0, 1)
    info = machine() | decoding_extras()
    # Every timed conversion looks the space's hashes up: without the cache, the first conversion of
    # a file of every cell would hash them all (~45 s) and keep them for the runs after it.
    space_cache_made = not nb101_space.DEFAULT_SPACE_CACHE.exists()
    nb101_space.enumerate_space()

    conv = time_conversion(src, args.workers, None)  # the default: framing and CRCs checked first
    base = None if args.no_baseline else time_conversion(src, args.workers, False)
    num_records = conv["records"]

    # The reference loop, on a sample read into memory first.
    n = args.reference_records or num_records
    datas = []
    for _, _, data in read_tfrecord(src):
        datas.append(data)
        if len(datas) == n:
            break
    t0, c0 = time.perf_counter(), time.process_time()
    reference_loop(datas)
    ref_wall, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
    scale = num_records / len(datas)
    ref = {
        "records_timed": len(datas),
        "extrapolated": len(datas) < num_records,
        "wall_s_timed": round(ref_wall, 2),
        "cpu_s_timed": round(ref_cpu, 2),
        "us_per_record_wall": round(ref_wall / len(datas) * 1e6, 3),
        "wall_s_full_file": round(ref_wall * scale, 1),
        "cpu_s_full_file": round(ref_cpu * scale, 1),
    }
    errors = {} if args.no_error_run else time_errors(src, args.workers, baseline=not args.no_baseline)
    result = {
        "input": src.name,
        "input_bytes": src.stat().st_size,
        "demo_file_made_in_s": made,
        "space_hash_cache_made_first": space_cache_made,
        "machine": info,
        "load_average_after": os.getloadavg(),
        "converter": conv,
        "converter_no_check_pass": base,
        "reference": ref,
        "time_to_error": errors,
        "speedup_wall": round(ref["wall_s_full_file"] / conv["wall_s"], 2),
        "cpu_ratio": round(ref["cpu_s_full_file"] / conv["cpu_s"], 2),  # machine load hits wall times, less CPU
    }
    rss_text = f"{conv['peak_rss_sum_sampled_mb']:,} MB (sum), main {conv['peak_rss_main_mb']:,} MB"
    ref_name = f"reference, {len(datas):,} timed" + (", extrapolated" if ref["extrapolated"] else "")
    rows = [  # what, records, wall s, CPU s, µs/record (wall), peak RSS
        ("converter", f"{num_records:,}", conv["wall_s"], conv["cpu_s"], conv["us_per_record_wall"], rss_text),
        (ref_name, f"{num_records:,}", ref["wall_s_full_file"], ref["cpu_s_full_file"], ref["us_per_record_wall"], "-"),
    ]
    if base:
        rss = f"{base['peak_rss_sum_sampled_mb']:,} MB (sum)"
        rows.insert(1, ("converter, no check pass", f"{num_records:,}", base["wall_s"], base["cpu_s"], "-", rss))
        result["check_pass_adds_s"] = {k: round(conv[k] - base[k], 2) for k in ("wall_s", "cpu_s")}
    for e in errors.values():
        rows.append((f"{e['what']}: time to the error", f"{num_records:,}", e["wall_s"], "-", "-", "-"))
    load = info["load_average_1_5_15"]
    print(f"\n{src.name}: {info['cpu']}, {info['usable_cores']} cores, python {info['python']}, load {load}")
    print("| what | records | wall s | CPU s | µs/record (wall) | peak RSS |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"speed-up: {result['speedup_wall']}x wall, {result['cpu_ratio']}x CPU (reference CPU / converter CPU)")
    if base:
        adds = result["check_pass_adds_s"]
        print(f"the check pass adds {adds['wall_s']} s wall, {adds['cpu_s']} s CPU to a good conversion")
    if "last_no_check_pass" in errors:
        ratio = round(errors["last_no_check_pass"]["wall_s"] / errors["last"]["wall_s"], 1)
        result["error_in_last_record_speedup"] = ratio
        print(f"damage in the last record: the error comes {ratio}x sooner with the check pass")
    write_json(args.output_json, result)
    print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
