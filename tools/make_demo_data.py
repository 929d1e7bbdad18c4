"""Write a NAS-Bench-101-format TFRecord with SYNTHETIC labels, for demos, tests and benchmarks.

    python tools/make_demo_data.py --cells 3000 --output data/demo.tfrecord
    python tools/make_demo_data.py --cells all --output data/demo_full.tfrecord    # 5,083,488 records
    python tools/make_demo_data.py --cells all --epochs 108 --output data/demo_only108.tfrecord
    python tools/make_demo_data.py --cells 200 --repeats 2 --absent-prob 0.1 --output /tmp/t.tfrecord

The cells are real: a seeded random subset of the 423,624 cells of lib/nb101/space.enumerate_space(),
written in hash order, one record per (cell, epochs, repeat) like nasbench_full.tfrecord, with
the exact trainable_parameters. The accuracies and times are MADE UP: a smooth function of the
architecture (parameter count, op counts, input width, depth) that saturates with the epochs, in
a NB101-like range, plus per-repeat noise and a few "blown" runs (accuracy ~0.1) on single repeats.
Final validation accuracy at 108 epochs (dataset.load_nb101(...).labels("val", 108)): mean 0.91;
best 0.95 among the 3,000 cells of `make demo`, 0.96 over all 423,624 cells.

Every record says so: evaluation_data[0].checkpoint_path = "synthetic-labels:make_demo_data ..."
(a field the NB101 API ignores); the converter then writes `synthetic_labels = True` into the HDF5.
"""

from __future__ import annotations

import argparse
import binascii
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lib.nb101 import cell as nb101_cell
from lib.nb101 import network as nb101_network
from lib.nb101 import space as nb101_space
from lib.nb101.schema import EPOCHS, REPEATS
from lib.tfrecord.records import SYNTHETIC_MARK, encode_metrics_batch, frame
from lib.util.checks import SEED, output_file
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error
from lib.util.outputs import atomic_path

PROG = "make_demo_data.py"
BLOWN_PROB = 0.0015  # per (cell, epochs, repeat); NB101 has ~0.1% runs stuck near chance at 108 epochs


def op_counts_width_depth(
    adjacency: np.ndarray, operations: np.ndarray, num_vertices: np.ndarray
) -> dict[str, np.ndarray]:
    """What the synthetic labels are made of, per padded cell: the count of each interior op (conv3,
    conv1, pool), the input's out-degree (width) and the longest input-output path (depth)."""
    adj, nv = adjacency.astype(bool), num_vertices.astype(np.int64)
    n = len(nv)
    dist = np.full((n, 7), -100)  # longest path from the input, by DP in topological order
    dist[:, 0] = 0
    for j in range(1, 7):
        dist[:, j] = np.where(adj[:, :j, j], dist[:, :j] + 1, -100).max(1)
    inner = (np.arange(7) > 0) & (np.arange(7) < nv[:, None] - 1)
    return {
        "conv3": ((operations == 0) & inner).sum(1),
        "conv1": ((operations == 1) & inner).sum(1),
        "pool": ((operations == 2) & inner).sum(1),
        "width": adj[:, 0].sum(1),
        "depth": dist[np.arange(n), nv - 1],
    }


def synthetic_metrics(
    cells: dict[str, np.ndarray], params: np.ndarray, epochs: tuple[int, ...], repeats: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """values [C, B, R, 3 evals, 5] = (current_epoch, training_time, train, val, test acc), total_time [C, B, R].

    A cell's expected accuracy depends on the cell only (fixed constants, not the subset); the
    seed drives the per-repeat noise and the blown runs.
    """
    f = op_counts_width_depth(cells["adjacency"], cells["operations"], cells["num_vertices"])
    lp = np.log(params / 1e6)
    z = 0.9 * np.tanh(lp - 1.8) + 0.25 * f["conv3"] - 0.22 * f["pool"] + 0.05 * f["conv1"] + 0.15 * f["width"]
    z -= 0.06 * (f["depth"] - 3) ** 2
    z = (z - 0.087) / 0.87  # standardised over the whole space (fixed, so a cell's label ignores the subset)
    acc108 = 0.953 - 0.03 * np.exp(-0.8 * z)  # saturates at the top (0.953, before noise), long tail below
    tau = 15 * np.exp(0.25 * (lp - 2) + 0.08 * (f["depth"] - 3))  # bigger/deeper cells learn slower
    time108 = 600 + 350 * f["depth"] + 1.6e-4 * params

    rng = np.random.default_rng(seed)
    c, b, r = len(params), np.array(epochs, np.float64), repeats
    shape = (c, len(b), r)
    values = np.full((*shape, 3, 5), np.nan)
    values[..., 0] = np.stack([0 * b, b / 2, b], 1)[None, :, None]  # current_epoch: start, halfway, final
    curve = [
        acc108[:, None] - (acc108[:, None] - 0.1) * np.exp(-e / tau[:, None]) - 0.02 * (e < b) for e in (b / 2, b)
    ]  # halfway lags: the learning rate has not decayed yet
    for k, (acc, at) in enumerate(zip(curve, (b / 2, b), strict=True), 1):
        sd = 0.0035 + 0.03 * np.exp(-at / 15)
        val = acc[:, :, None] + sd[None, :, None] * rng.standard_normal(shape)
        values[..., k, 3] = val
        values[..., k, 4] = val - 0.006 + 0.002 * rng.standard_normal(shape)
        values[..., k, 2] = 1 - (1 - val) * np.exp(-at / 25)[None, :, None] * (1 + 0.05 * rng.standard_normal(shape))
        values[..., k, 1] = (time108[:, None] * at / 108)[:, :, None] * (1 + 0.03 * rng.standard_normal(shape))
    blown = rng.random(shape) < BLOWN_PROB
    values[..., 1:, 2:][blown] = rng.uniform(0.08, 0.12, (int(blown.sum()), 2, 3))
    values[..., 1:, 2:] = values[..., 1:, 2:].clip(0, 1)
    total_time = values[..., 2, 1] * 1.08 + 40
    return values, total_time


def demo_records(
    cells: dict[str, np.ndarray],
    epochs: tuple[int, ...] = EPOCHS,
    repeats: int = REPEATS,
    seed: int = 0,
    absent_prob: float = 0.0,
    batch_cells: int = 20_000,
) -> Iterator[bytes]:
    """Record data (JSON) for every (cell, budget, repeat) of `cells` (padded arrays + hash), in order.

    absent_prob: each value (training_time, train/val/test accuracy, total_time) is left unset with
    this probability, as the real data leaves some out.
    """
    params = nb101_network.trainable_parameters(cells["adjacency"], cells["operations"], cells["num_vertices"])
    mark = f"{SYNTHETIC_MARK}make_demo_data seed={seed}"
    rng = np.random.default_rng([seed, 1])
    for lo in range(0, len(params), batch_cells):
        part = {k: v[lo : lo + batch_cells] for k, v in cells.items()}
        values, total_time = synthetic_metrics(part, params[lo : lo + batch_cells], epochs, repeats, seed + lo)
        values, total_time = values.reshape(-1, 3, 5), total_time.ravel()
        if absent_prob:
            values[:, :, 1:][rng.random(values[:, :, 1:].shape) < absent_prob] = np.nan
            total_time[rng.random(total_time.shape) < absent_prob] = np.nan
        p = np.repeat(params[lo : lo + batch_cells], len(epochs) * repeats)
        blobs = iter(encode_metrics_batch(values, p, total_time, mark))
        for h, adj, ops, n in zip(
            part["hash"], part["adjacency"], part["operations"], part["num_vertices"], strict=True
        ):
            adj_s = (adj[:n, :n] + ord("0")).astype(np.uint8).tobytes().decode()
            ops_s = ",".join(nb101_cell.LABEL_TO_OP[x] for x in ops[:n].tolist())
            # encode_record's bytes (json.dumps layout; these strings need no escaping), 3x faster
            head, tail = f'["{h}", '.encode(), f', "{adj_s}", "{ops_s}", "'.encode()
            for e in epochs:
                for _ in range(repeats):
                    yield b'%s%d%s%s"]' % (head, e, tail, binascii.b2a_base64(next(blobs), newline=False))


def choose_cells(space: dict[str, np.ndarray], n: int | None, seed: int) -> dict[str, np.ndarray]:
    """A seeded random subset of n cells (all if None) with their hashes, in hash order like NB101's
    files. Only the chosen cells are hashed where the space comes without its hashes."""
    total = len(space["num_vertices"])
    idx = np.arange(total) if n is None else np.random.default_rng(seed).choice(total, n, replace=False)
    hashes = nb101_space.space_hashes(space, idx)
    order = np.argsort(hashes, kind="stable")
    cells = {k: v[idx[order]] for k, v in space.items() if k != "hash"}
    return cells | {"hash": hashes[order]}


def write_demo(
    path: str | Path,
    cells: dict[str, np.ndarray],
    epochs: tuple[int, ...] = EPOCHS,
    repeats: int = REPEATS,
    seed: int = 0,
    absent_prob: float = 0.0,
    progress: bool = False,
) -> int:
    """Write the demo TFRecord for `cells` (whole or not at all); returns the number of records."""
    total = len(cells["hash"]) * len(epochs) * repeats
    records = demo_records(cells, epochs, repeats, seed, absent_prob)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        buf = []
        for data in tqdm(records, total=total, unit="rec", disable=not progress):
            buf.append(frame(data))
            if len(buf) == 65536:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    return total


def main(argv: list[str] | None = None) -> int:
    """Write the demo file; UserError for a bad --cells / --epochs or an output that cannot be written."""
    ap = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="3000", help="number of cells, or 'all' (423,624)")
    all_epochs = ",".join(map(str, EPOCHS))
    ap.add_argument("--epochs", default=all_epochs, help=f"comma-separated epochs trained, from {all_epochs}")
    ap.add_argument("--repeats", type=int, default=REPEATS, choices=range(1, REPEATS + 1), help="runs of each")
    ap.add_argument("--absent-prob", type=float, default=0.0, help="probability that each value is left unset")
    ap.add_argument("--seed", type=SEED, default=0, help="0 to 2**32-1")
    ap.add_argument("--output", default="data/demo.tfrecord")
    args = ap.parse_args(argv)
    epochs = tuple(int(b) if b.strip().isdecimal() else -1 for b in args.epochs.split(","))
    if not set(epochs) <= set(EPOCHS) or len(set(epochs)) != len(epochs):
        raise UserError(f"--epochs {args.epochs}: must be distinct values from {EPOCHS}")
    if args.cells != "all" and not (args.cells.isdecimal() and 0 < int(args.cells) <= nb101_space.NUM_CELLS):
        raise UserError(f"--cells {args.cells}: must be 1..{nb101_space.NUM_CELLS} or 'all'")
    if not 0 <= args.absent_prob <= 1:
        raise UserError(f"--absent-prob {args.absent_prob}: must be a probability, 0 to 1")
    output_file(args.output, "--output")  # before the cells are drawn and written
    n = None if args.cells == "all" else int(args.cells)
    space = nb101_space.enumerate_space(hashes=n is None)  # a subset is hashed alone: seconds, not a minute
    cells = choose_cells(space, n, args.seed)
    try:
        total = write_demo(args.output, cells, epochs, args.repeats, args.seed, args.absent_prob, progress=True)
    except OSError as e:
        raise UserError(f"{e.filename or args.output}: {e.strerror or e}") from None
    print(f"wrote {total:,} records ({len(cells['hash']):,} cells, SYNTHETIC labels) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(PROG, main))
