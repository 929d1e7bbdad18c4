"""NB101's API here (nasbench/) against a reader that builds NB101's dicts: load time, peak memory, queries a second.

    python -m bench.nasbench_api                            # data/demo_full.hdf5 (made if absent), the real 20k file
    python -m bench.nasbench_api --full data/nasbench.hdf5 --queries 3000

Files: a full-size one, every cell of the space (423,624) at 4, 12, 36 and 108 epochs with 3 repeats:
data/demo_full.hdf5, made if absent from data/demo_full.tfrecord (tools/make_demo_data.py --cells all, then the
converter); and the real 20k-cell file ($NB101_REAL_TFRECORD, one repeat), given to NASBench as the TFRecord
itself: converted into a fresh cache once (timed), then loaded from there.
Each measurement runs in a Python process of its own, so that its peak RSS is the reader's:
  nasbench.api  NASBench(file): the import, the load, the peak RSS after it; then `--queries` queries of cells
                spread over the file (their ModelSpecs made beforehand) and get_metrics_from_hash of the same cells.
  dicts         the baseline: the same HDF5 read whole and every cell made into NB101's dicts (fixed_statistics,
                computed_statistics), queried as NB101's api.py queries them (the spec checked and hashed, both
                dicts deep-copied, a repeat drawn with random.randint): what loading costs when every cell
                becomes a dict, and what a query costs then.
Both answer the same queries from the same seed; the bench checks that their answers are equal.
NB101's own load times, as published (not measured here): 2-3 minutes for nasbench_only108.tfrecord with its
TensorFlow reader; about 30 s with google-research/nasbench PR #33; 4 s from a pickle of the loaded object.
Prints a table and writes bench/results/nasbench_api.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench.common import REAL_TFRECORD, REPO, RESULTS, machine
from lib.nb101.cell import LABEL_TO_OP
from lib.nb101.schema import DATASETS, EPOCHS, RECORD_FIELDS, RECORD_ORDER, STAGES
from lib.nb101.space import NUM_CELLS
from lib.util.outputs import write_json

FULL = REPO / "data" / "demo_full.hdf5"
PUBLISHED = {  # NB101's load times as published, beside which the table puts ours
    "nasbench_only108.tfrecord, NB101's TensorFlow reader": "2-3 min",
    "the same, with google-research/nasbench PR #33": "~30 s",
    "the same, from a pickle of the loaded object": "4 s",
}
READERS = ("nasbench.api", "dicts")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--full", default=str(FULL), help="a full-size HDF5 (default: made if absent)")
    p.add_argument("--real", default=str(REAL_TFRECORD), help="the real 20k TFRecord ('' to leave it out)")
    p.add_argument("--queries", type=int, default=3000, help="queries (and get_metrics_from_hash calls) per file")
    p.add_argument("--out", default=str(RESULTS / "nasbench_api.json"))
    p.add_argument("--measure", nargs=2, metavar=("READER", "FILE"), help=argparse.SUPPRESS)  # one child process
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the baseline


def dict_reader():
    """NASBench holding NB101's dicts, built at load, and querying them as NB101's api.py does."""
    from nasbench import api
    from nasbench.lib import config

    class DictNASBench(api.NASBench):
        def __init__(self, path, seed=None):
            self.config = config.build_config()
            random.seed(seed)
            with h5py.File(path, "r") as f:
                a = {k: f[k][()] for k in DATASETS + RECORD_ORDER}
                self.valid_epochs = set()
                for e in f.attrs["epochs"].tolist():
                    self.valid_epochs.add(e)
            keys = [f"{stage}_{field}" for stage in STAGES for field in RECORD_FIELDS]
            metrics = np.where(np.isnan(a["metrics"]), 0.0, a["metrics"])
            self.fixed_statistics, self.computed_statistics = {}, {}
            for i, h in enumerate(a["hash"].astype("U32").tolist()):
                n = int(a["num_vertices"][i])
                self.fixed_statistics[h] = {
                    "module_adjacency": a["adjacency"][i, :n, :n].copy(),
                    "module_operations": [LABEL_TO_OP[x] for x in a["operations"][i, :n].tolist()],
                    "trainable_parameters": int(a["trainable_parameters"][i]) if a["params_in_first_record"][i] else 0,
                }
                computed = self.computed_statistics[h] = {}
                for b in a["epoch_order"][i].tolist():
                    if b >= 0:
                        runs = metrics[i, b, : a["repeats"][i, b]].reshape(-1, len(keys)).tolist()
                        computed[EPOCHS[b]] = [dict(zip(keys, run, strict=True)) for run in runs]
            self.history, self.training_time_spent, self.total_epochs_spent = {}, 0.0, 0

        def query(self, model_spec, epochs=108, stop_halfway=False):
            if epochs not in self.valid_epochs:
                raise api.OutOfDomainError(f"invalid number of epochs, must be one of {self.valid_epochs}")
            self._check_spec(model_spec)
            h = self._hash_spec(model_spec)
            fixed, computed = copy.deepcopy(self.fixed_statistics[h]), copy.deepcopy(self.computed_statistics[h])
            runs = computed[epochs]
            run = runs[random.randint(0, min(self.config["num_repeats"], len(runs)) - 1)]
            stage = "halfway" if stop_halfway else "final"
            data = fixed | {field: run[f"{stage}_{field}"] for field in RECORD_FIELDS}
            self.training_time_spent += data["training_time"]
            self.total_epochs_spent += epochs // 2 if stop_halfway else epochs
            return data

        def get_metrics_from_hash(self, module_hash):
            fixed, computed = self.fixed_statistics[module_hash], self.computed_statistics[module_hash]
            return copy.deepcopy(fixed), copy.deepcopy(computed)

    return DictNASBench


# ----------------------------------------------------------------------------- one measurement, in its own process


def measure(reader: str, path: str, queries: int) -> dict:
    """Load, peak RSS, then queries/s and get_metrics_from_hash/s of `queries` cells of the file."""
    from nasbench import api

    cls = api.NASBench if reader == "nasbench.api" else dict_reader()
    with contextlib.redirect_stdout(io.StringIO()):  # NB101's two lines about loading
        t0 = time.perf_counter()
        nb = cls(path, seed=0)
        loaded = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hashes = list(nb.hash_iterator())
    picked = hashes[:: max(1, len(hashes) // queries)][:queries]
    fixed = [nb.fixed_statistics[h] for h in picked]
    specs = [api.ModelSpec(f["module_adjacency"], f["module_operations"]) for f in fixed]
    epochs = max(nb.valid_epochs)
    t0 = time.perf_counter()
    answers = [nb.query(spec, epochs=epochs) for spec in specs]
    queried = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = [nb.get_metrics_from_hash(h) for h in picked]
    looked_up = time.perf_counter() - t0
    return {
        "reader": reader,
        "cells": len(hashes),
        "load_s": round(loaded, 3),
        "peak_rss_mb_after_load": round(rss_loaded, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "queries": len(specs),
        "queries_per_s": round(len(specs) / queried),
        "get_metrics_from_hash_per_s": round(len(picked) / looked_up),
        "answers_sha256": hashlib.sha256(repr((answers, stats, nb.get_budget_counters())).encode()).hexdigest(),
    }


def import_seconds() -> float:
    """`from nasbench import api` in a fresh Python, which imports nothing else first."""
    code = "import time; t = time.perf_counter(); from nasbench import api; print(time.perf_counter() - t)"
    return round(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout), 3)


def in_child(reader: str, path: Path, queries: int, env: dict | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.nasbench_api", "--measure", reader, str(path), "--queries", str(queries)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


# ----------------------------------------------------------------------------- files


def full_size(path: Path) -> Path:
    """`path`; data/demo_full.hdf5 is made when asked for and absent (from data/demo_full.tfrecord, made too)."""
    if not path.exists() and path == FULL:
        record = FULL.with_suffix(".tfrecord")
        if not record.exists():
            demo = [sys.executable, str(REPO / "tools" / "make_demo_data.py"), "--cells", "all"]
            subprocess.run([*demo, "--output", str(record)], check=True)
        convert = [sys.executable, str(REPO / "tools" / "nasbench_tfrecord_converter.py"), "--input", str(record)]
        subprocess.run([*convert, "--output", str(path)], check=True)
    if not path.exists():
        sys.exit(f"error: {path} does not exist")
    return path


def bench_file(name: str, path: Path, queries: int, env: dict | None = None) -> dict:
    runs = {reader: in_child(reader, path, queries, env) for reader in READERS}
    ours, base = runs["nasbench.api"], runs["dicts"]
    return {
        "file": name,
        "cells": ours["cells"],
        "same_answers": ours["answers_sha256"] == base["answers_sha256"],
        "load_speedup": round(base["load_s"] / ours["load_s"], 1),
        "query_speedup": round(ours["queries_per_s"] / base["queries_per_s"], 2),
        **runs,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure, args.queries)))
        return {}
    info = machine()
    full = full_size(Path(args.full))
    results = [bench_file(full.name, full, args.queries)]
    if args.real:
        with tempfile.TemporaryDirectory() as cache:
            env = os.environ | {"NB101_NASBENCH_CACHE": cache}
            first = in_child("nasbench.api", Path(args.real), args.queries, env)  # converts into the cache
            (cached,) = Path(cache).iterdir()
            real = bench_file(Path(args.real).name, cached, args.queries)
            real["first_load_converting_s"] = first["load_s"]
            results.append(real)
    imported = import_seconds()
    result = {"machine": info, "load_average_after": os.getloadavg(), "published_nb101": PUBLISHED}
    result |= {"import_s": imported, "files": results}
    print(f"\n{info['cpu']}, {info['usable_cores']} cores, python {info['python']}, load {info['load_average_1_5_15']}")
    print("| file | reader | cells | load s | peak RSS MB | queries/s | get_metrics_from_hash/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for reader in READERS:
            m = r[reader]
            row = (r["file"], reader, f"{m['cells']:,}", m["load_s"], m["peak_rss_mb"], m["queries_per_s"])
            print("| " + " | ".join(str(x) for x in (*row, m["get_metrics_from_hash_per_s"])) + " |")
        if "first_load_converting_s" in r:
            print(f"| {r['file']} | nasbench.api, first load (converts) | | {r['first_load_converting_s']} | | | |")
        same = "the same answers" if r["same_answers"] else "DIFFERENT ANSWERS"
        print(f"{r['file']}: load {r['load_speedup']}x faster, queries {r['query_speedup']}x; {same}")
    print(f"`from nasbench import api`: {imported} s")
    for what, seconds in PUBLISHED.items():
        print(f"NB101, published: {what}: {seconds}")
    if any(r["cells"] != NUM_CELLS for r in results[:1]):
        print(f"note: {full} holds {results[0]['cells']:,} cells, not all {NUM_CELLS:,}")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    if not all(r["same_answers"] for r in results):
        sys.exit("error: the two readers answered differently")
    return result


if __name__ == "__main__":
    main()
