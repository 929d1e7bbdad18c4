"""Convert NAS-Bench-101 TFRecords into the HDF5 of neuralpredictor.pytorch, without TensorFlow.

    python tools/nasbench_tfrecord_converter.py   # data/nasbench_full.tfrecord (or _only108) -> data/nasbench.hdf5
    python tools/nasbench_tfrecord_converter.py --input data/demo.tfrecord --output data/demo.hdf5

Reads nasbench_full.tfrecord (5,083,488 records), nasbench_only108.tfrecord (1,270,872) or any
file in that format (tools/make_demo_data.py): any subset of cells, of the epochs 4/12/36/108,
and 1 to 3 repeats each. Streaming over byte ranges, decoded in parallel
(lib/tfrecord/records_fast.parse_chunk), in bounded memory.

HDF5 (lib/nb101/schema.py, schema_version 2), one row per cell, cells in the order of their first
record in the file:
    hash                  [N] S32    NB101 module hash (checked against the cell)
    num_vertices          [N] int8
    trainable_parameters  [N] int32  (the same in every record of a cell that sets it, checked)
    adjacency             [N,7,7] int8   the cell in the top-left n x n block, output at n-1
    operations            [N,7] int8     -1 input, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3,
                                         -2 output, 0 beyond num_vertices
    metrics               [N,4,3,2,4] float64, the records' doubles: epochs (4,12,36,108) x repeat x
                          (halfway, final) x (training_time, train_accuracy, validation_accuracy,
                          test_accuracy); NaN where the file has no value. Repeat r of an epoch count is
                          the r-th record of that (hash, epochs) in the file.
    repeats               [N,4] int8     records of each (hash, epochs)
    epoch_order           [N,4] int8     a cell's epoch counts (indices into 4,12,36,108) in the order of
                                         their first record, -1 after the last
    params_in_first_record [N] bool      the cell's first record sets trainable_parameters
    attrs: schema_version, source (input file name), epochs (the epochs present, in the order they first
           appear), num_records, num_cells, synthetic_labels (True if any record says its labels are made
           up: the evaluation_data checkpoint_path mark "synthetic-labels:..." of tools/make_demo_data.py).
NB101's own API (nasbench/) answers by repeats, epoch_order, params_in_first_record and the order of epochs.

Checks: framing and both CRCs, JSON, base64, protobuf, each cell (square 0/1 adjacency of a pruned
NB101 cell, known ops), one cell per hash, trainable_parameters the same in every record of a cell,
epochs in 4/12/36/108, at most 3 repeats, and each hash equal to NB101's hash of its cell
(hash_cells; for many cells, a lookup in the cached enumerated space first).
Bad input (a damaged or foreign file, a missing input; an output that cannot be written or that is
the input itself, checked before anything is read) stops it with one line on stderr,
`nasbench_tfrecord_converter.py: error: FILE: record R at byte OFFSET: what is wrong`, naming the
first bad record, exit status 2, and no output written (an existing output stays as it was). Hash
mismatches are found after the whole file is read and name the cell's first record. Every byte of
the file is under a CRC, so any damage is caught. Files of 16 MiB and more are decoded by a pool of
worker processes, and their framing and CRCs are checked first, over the whole file in parallel, so
damage anywhere (flipped, zeroed, cut or inserted bytes) fails within seconds, naming the first
damaged record (bench/converter.py times it). Their errors read the same. A worker that dies or
fails is no fault of the input: it ends the run at once with one line as well, exit status 1.
Ctrl-C: exit status 130, nothing written.
A file that holds every cell keeps the hashes it verified in the enumeration cache
(data/nb101_space.npz): without it, a conversion hashes all 423,624 cells (~45 s on 2 cores); the
next conversion, and everything else that needs the space's hashes, looks them up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lib.tfrecord.convert import convert
from lib.util.checks import at_least, output_file
from lib.util.errors import ArgumentParser, UserError, exit_on_user_error, interrupted, one_line
from lib.util.workers import WorkerError

PROG = "nasbench_tfrecord_converter.py"
DEFAULT_INPUTS = ("data/nasbench_full.tfrecord", "data/nasbench_only108.tfrecord")
WORKER_FAILED = 1
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
MAX_WORKERS = max(4, 4 * CORES)  # a pool forks all its workers at once: thousands would stall the machine


def main(argv: list[str] | None = None) -> int:
    """Convert; UserError for bad input, an exit status for the rest (0 done, 1 a worker failed, 130 Ctrl-C)."""
    ap = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help=f"NB101 TFRecord (default: the first of {', '.join(DEFAULT_INPUTS)} found)")
    ap.add_argument("--output", default="data/nasbench.hdf5")
    workers = at_least(1, MAX_WORKERS)
    ap.add_argument(
        "--workers", type=workers, help=f"decoding processes, 1-{MAX_WORKERS} (default: all cores from 16 MiB)"
    )
    ap.add_argument("--chunk-bytes", type=at_least(1), help="bytes per decoding task (default: 1-32 MiB)")
    args = ap.parse_args(argv)
    input = args.input or next((p for p in DEFAULT_INPUTS if Path(p).exists()), DEFAULT_INPUTS[0])
    output_file(args.output, "--output", inputs=[input])  # never over the input, nor a folder
    try:
        t = convert(input, args.output, args.workers, args.chunk_bytes, progress=True)
    except WorkerError as e:  # the machine's doing (a killed worker, no memory), not the input's
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return WORKER_FAILED
    except OSError as e:  # the output cannot be written (or the input went away meanwhile)
        where = args.output if e.filename is None else e.filename
        raise UserError(f"{where}: {e.strerror or e}; {args.output} not written") from None
    except KeyboardInterrupt as e:  # SIGINT / SIGTERM (lib.util.errors): one line, status 130 / 143
        raise interrupted(e, f"{args.output} not written") from None
    kind = "SYNTHETIC labels" if t.synthetic else "labels as recorded"
    print(f"{args.output}: {t.n:,} cells from {t.num_records:,} records, epochs {sorted(t.epochs)}, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error(PROG, main))
