# Two commands on a fresh machine: `make demo` (end to end on synthetic demo data) and `make test`.
PY := .venv/bin/python
DEMO_CELLS ?= 3000

.PHONY: setup demo test lint bench gpu
setup: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements.txt
	.venv/bin/pip install -q --no-deps -e .
	touch $@

# The trainer stage runs briefly (a reduced network, 2 epochs, an image subset) when CIFAR-10 is
# found locally: data/cifar-10-batches-py, data/cifar10-jpeg, or ../shared's JPEG tarball. Each demo
# replaces the previous demo's runs.
CIFAR_TGZ := ../shared/data/cifar10-jpeg.tar.gz
demo: setup
	$(PY) tools/make_demo_data.py --cells $(DEMO_CELLS) --output data/demo.tfrecord
	$(PY) tools/nasbench_tfrecord_converter.py --input data/demo.tfrecord --output data/demo.hdf5
	$(PY) train.py --data data/demo.hdf5 --split 172 --out runs/demo
	$(PY) search.py --checkpoint runs/demo/checkpoint.pt --data data/demo.hdf5 --top-k 10
	@if [ ! -d data/cifar10-jpeg/train ] && [ -f $(CIFAR_TGZ) ]; then tar -xzf $(CIFAR_TGZ) -C data/; fi
	@if [ -d data/cifar-10-batches-py ]; then root=data; elif [ -d data/cifar10-jpeg/train ]; then root=data/cifar10-jpeg; fi; \
	if [ -n "$$root" ]; then \
	  rm -rf runs/demo-trainer; \
	  $(PY) trainer.py --arch runs/demo/top1.json --data-root $$root --epochs 2 --batch-size 64 --bn-momentum 0.1 --stem-channels 16 --num-stacks 1 \
	    --cells-per-stack 1 --train-images 2000 --eval-images 1000 --out runs/demo-trainer; \
	else \
	  echo "No CIFAR-10 here. Get it either way, then train the pick:"; \
	  echo "  .venv/bin/python trainer.py --arch runs/demo/top1.json --data-root data --download   # torchvision, online"; \
	  echo "  tar -xzf cifar10-jpeg.tar.gz -C data/ && .venv/bin/python trainer.py --arch runs/demo/top1.json --data-root data/cifar10-jpeg"; \
	fi

# Proof that we read TensorFlow's own TFRecordWriter output: TensorFlow lives in a throwaway venv,
# never in the toolkit's. Without PyPI this step fails softly and that one test skips.
data/tf_written.tfrecord: tests/write_tfrecord_with_tf.py
	-python3 -m venv .venv-tf && .venv-tf/bin/pip install -q tensorflow-cpu==2.21.0 && .venv-tf/bin/python $<

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: setup data/tf_written.tfrecord
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: setup
	$(PY) bench/converter.py
	$(PY) bench/predictors.py
	$(PY) bench/train_speed.py
	$(PY) bench/ablation.py
	$(PY) bench/enumeration.py
	$(PY) bench/search_speed.py
	$(PY) bench/budgeted_search.py
	$(PY) bench/trainer.py

# trainer.py's acceptance on a CUDA GPU (about 9 minutes): bench/README.md says what it measures.
gpu:
	bash bench/gpu.sh
