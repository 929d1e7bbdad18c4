#!/usr/bin/env bash
# trainer.py on one CUDA GPU in about 9 minutes, start-up and data decoding included: (a) training
# throughput against nasbench_pytorch's own loop, lever by lever; (b) 108 epochs of a median-size
# NB101 cell, extrapolated from measured full epochs; (c) the best cell of the NB101 file trained for
# NB101's 36-epoch budget (12 if 36 won't fit) beside NB101's recorded accuracy; (d) a search with
# real training, 8 trials of 4 epochs, in the time left (--skip speed,epochs,fidelity gives it all).
# bench/gpu.py does the work and writes one JSON (default bench/results/gpu.json).
#
#   bash bench/gpu.sh                                   # CIFAR-10 and NB101 data found in data/
#   bash bench/gpu.sh --inputs DIR                      # ... found in DIR (or BENCH_GPU_INPUTS=DIR bash bench/gpu.sh)
#   bash bench/gpu.sh --cifar cifar10-jpeg.tar.gz --nb101 nb101_real_20k.tfrecord --out gpu.json
#   bash bench/gpu.sh --deps /path/to/folder            # a folder holding a copied nasbench_pytorch package
#   bash bench/gpu.sh --smoke                           # every step on the CPU, tiny network (~2 min)
#   bash bench/gpu.sh --help                            # all options
#
# Needs python3 with torch (CUDA), torchvision, numpy, h5py, scipy, matplotlib, tqdm, protobuf and
# nasbench_pytorch; crc32c only to convert a TFRecord. PYTHON=... picks the interpreter (default:
# the repo's .venv/bin/python if there is one, else python3). The repo need not be installed.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" "$REPO/bench/gpu.py" "$@"
