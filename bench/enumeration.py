"""The NB101 space without the hashing wall: first enumeration, cache loads, and joining a data file.

    python -m bench.enumeration                  # cells and joins; the md5 hashes of the space too (~1 min)
    python -m bench.enumeration --no-hashes      # skip hashing the space

Timed, each in the same run (best of --repeats, with the load average at each):
  enumerate cells     nb101_space.enumerate_space(cache=None, hashes=False): the 423,624 cells, what
                      search.py --space all needs on a fresh checkout
  + md5 hashes        hash_cells of all of them (processes = cores): the baseline, what the first
                      enumeration cost when every cell was hashed up front
  load cells / +hash  enumerate_space(hashes=False / True) from the caches
  join by cell        nb101_join.space_rows: each row of --data located in the space (exact codes,
                      isomorphic re-encodings canonicalised), what search.py --space all joins by
  join by hash        the same join through the cached hashes (sort + searchsorted); both must agree
  hash the top 10     NB101 hashes of 10 cells, as search.py computes for the cells it shows
Writes bench/results/enumeration.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REAL_HDF5, RESULTS, machine, real_hdf5
from dataset import load_nb101
from lib.nb101.hashing import hash_cells
from lib.nb101.join import space_rows
from lib.nb101.space import enumerate_space, space_hashes
from lib.util.outputs import write_json


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=str(REAL_HDF5), help="file to join (default: the real 20k cells)")
    p.add_argument("--no-hashes", dest="hashes", action="store_false", help="do not hash the whole space")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "enumeration.json"))
    return p.parse_args()


def best_of(repeats: int, fn) -> tuple[float, object]:
    """Best wall seconds of `repeats` calls of fn(), and the last result."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def hash_join(hashes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(hashes)
    at = order[np.searchsorted(hashes, wanted, sorter=order).clip(0, len(order) - 1)]
    return np.where(hashes[at] == wanted, at, -1)


def main() -> dict:
    args = parse_args()
    rows, info = {}, {"machine": machine(), "load_avg_start": os.getloadavg()}

    def record(name: str, seconds: float, note: str = "") -> None:
        rows[name] = {"seconds": seconds, "load": os.getloadavg()[0], "note": note}
        print(f"{name:<22} {seconds:>8.3f} s  load {os.getloadavg()[0]:.1f}  {note}")

    print(f"NB101 space, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    t, space = best_of(args.repeats, lambda: enumerate_space(cache=None, hashes=False))
    record("enumerate cells", t, f"{len(space['num_vertices']):,} cells")
    if args.hashes:
        t, hashes = best_of(1, lambda: hash_cells(space["adjacency"], space["operations"], space["num_vertices"]))
        record("+ md5 hashes", t, f"{os.cpu_count()} processes: the wall the first enumeration had")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "space.npz"
        enumerate_space(cache, hashes=False)
        t, _ = best_of(args.repeats, lambda: enumerate_space(cache, hashes=False))
        record("load cells", t)
    full = enumerate_space()  # the repository's cache (cells + hashes), built if absent
    t, _ = best_of(args.repeats, enumerate_space)
    record("load cells + hashes", t)
    if args.hashes:
        assert np.array_equal(hashes, full["hash"]), "hash_cells disagrees with the cached hashes"

    data = load_nb101(real_hdf5() if Path(args.data) == REAL_HDF5 else args.data)
    t, by_cell = best_of(args.repeats, lambda: space_rows(space, data.adjacency, data.operations, data.num_vertices))
    record("join by cell", t, f"{len(data):,} rows of {data.path.name}, {int((by_cell >= 0).sum()):,} found")
    t, by_hash = best_of(args.repeats, lambda: hash_join(full["hash"], data.hash))
    record("join by hash", t, "needs every hash of the space")
    assert np.array_equal(by_cell, by_hash), "the joins disagree"
    t, _ = best_of(args.repeats, lambda: space_hashes(space, np.arange(10)))
    record("hash the top 10", t)

    result = {**info, "rows": rows, "load_avg_end": os.getloadavg()}
    out = Path(args.out)
    write_json(out, result)
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()
