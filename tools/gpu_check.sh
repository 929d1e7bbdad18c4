#!/usr/bin/env bash
# trainer.py on a lent GPU, in one call of ~8 min:
#   1. bench/trainer.py in GPU mode: our speed against nasbench_pytorch's, for a median-size cell;
#   2. the best cell of nb101_real_20k (highest recorded 108-epoch validation accuracy), trained on
#      the JPEG CIFAR-10 for NB101's 36-epoch budget, or for 12 or 4 epochs when its measured speed
#      says 36 won't fit in BUDGET_S.
#
#   OUT=/tmp/gpu bash tools/gpu_check.sh
#
# It writes under $OUT: machine.txt, bench.log, bench_trainer.json, best_cell.json,
# bench_best_cell.json, train.log and train_metrics.json.
#
# Inputs. The device copy of the repo has no ../shared, so carry what it lacks:
#   - cifar10-jpeg.tar.gz: looked for in $SHARED (default ../shared/data, then shared/data), then in
#     data/cifar10-jpeg.tar.gz;
#   - the cells: data/real20k.hdf5 when present. Convert it here first with
#       .venv/bin/python tools/nasbench_tfrecord_converter.py \
#           --input ../shared/data/nb101_real_20k.tfrecord --output data/real20k.hdf5
#     Otherwise $SHARED/nb101_real_20k.tfrecord is converted there, which needs crc32c;
#   - nasbench_pytorch, which the device image lacks:
#       mkdir -p .deps && cp -r .venv/lib/python3.11/site-packages/nasbench_pytorch .deps/
#       echo /.deps/ >> .git/info/exclude
# Then run it with carry [".deps", "data/cifar10-jpeg.tar.gz", "data/real20k.hdf5"].
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET_S=${BUDGET_S:-480}
OUT=${OUT:-runs/gpu_check}
PY=${PY:-python3}
SHARED=${SHARED:-../shared/data}
[ -d "$SHARED" ] || SHARED=shared/data
export PYTHONPATH="$PWD/.deps:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" data
{ nvidia-smi || true; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } \
    > "$OUT/machine.txt" 2>&1
$PY -c "import nasbench_pytorch" 2>/dev/null || { echo "nasbench_pytorch missing: carry .deps (see header)"; exit 1; }

# 1. data: the JPEG CIFAR-10, decoded once (the cache goes beside it); the NB101 cells as HDF5
if [ ! -d data/cifar10-jpeg ]; then
    TAR=$SHARED/cifar10-jpeg.tar.gz
    [ -f "$TAR" ] || TAR=data/cifar10-jpeg.tar.gz
    tar -xzf "$TAR" -C data/
fi
$PY -c "from pathlib import Path; from lib.cifar10 import load_cifar10; load_cifar10(Path('data/cifar10-jpeg'))"
[ -f data/real20k.hdf5 ] || $PY tools/nasbench_tfrecord_converter.py \
    --input "$SHARED/nb101_real_20k.tfrecord" --output data/real20k.hdf5

# 2. throughput against nasbench_pytorch: one round per side, since device time is scarce
$PY bench/trainer.py --gpu --rounds 1 --out "$OUT/bench_trainer.json" 2>&1 | tee "$OUT/bench.log"

# 3. the best cell, its own speed, and the largest NB101 budget that speed fits into the time left
$PY -c "
import json, numpy as np
from dataset import load_nb101
from lib.nb101_space import cell_from_row
nb = load_nb101('data/real20k.hdf5')
i = int(np.nanargmax(nb.labels('val', budget=108)))
print(json.dumps(cell_from_row(nb.adjacency[i], nb.operations[i], nb.num_vertices[i]).to_json()))
" > "$OUT/best_cell.json"
$PY bench/trainer.py --gpu --arch "$OUT/best_cell.json" --skip-baseline --images 5120 --rounds 1 \
    --out "$OUT/bench_best_cell.json" 2>&1 | tee -a "$OUT/bench.log"
read -r HASH EPOCHS < <($PY -c "
import json, sys, time
b = json.load(open('$OUT/bench_best_cell.json'))
epoch_s = 40000 / b['ours_images_per_s'] + 20000 / b['ours_eval_images_per_s']
left = $BUDGET_S - (time.time() - $START) - 30  # start-up, checkpoints, margin
print(b['cell']['hash'], next((e for e in (36, 12, 4) if e * epoch_s <= left), 4))
")
echo "training $HASH for $EPOCHS epochs" | tee "$OUT/train.log"
RUN=runs/gpu_check_train  # the checkpoint stays out of $OUT: it is too large to come back
rm -rf "$RUN"
$PY trainer.py --hash "$HASH" --data data/real20k.hdf5 --data-root data/cifar10-jpeg --epochs "$EPOCHS" \
    --out "$RUN" 2>&1 | tee -a "$OUT/train.log" || true
cp "$RUN/metrics.json" "$OUT/train_metrics.json" 2>/dev/null || true
echo "gpu_check done in $(( $(date +%s) - START )) s" | tee -a "$OUT/train.log"
