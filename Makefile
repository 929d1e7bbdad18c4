# Two commands on a fresh machine: `make demo` (end to end on synthetic demo data) and `make test`.
PY := .venv/bin/python
DEMO_CELLS ?= 3000
# Where the real data lives when it is not under data/: the CIFAR-10 JPEG tarball for the demo's trainer
# stage, nb101_real_20k.tfrecord for the benches and the GPU run. Override: make bench SHARED_DATA=/path.
SHARED_DATA ?= ../shared/data

.PHONY: setup demo test test-fast lint bench gpu tf-fixture
setup: .venv/.installed

# --no-compile: byte-compiling every module of torch and Ray at install time doubles the install (about 90 s
# more on 2 cores). Python then writes the bytecode of what it imports, once, even where the environment
# says not to (in .venv/ and the ignored __pycache__/): else every process compiles torch again (3-4 s).
unexport PYTHONDONTWRITEBYTECODE
.venv/.installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --no-compile -r requirements.txt
	.venv/bin/pip install -q --no-compile --no-deps -e .
	touch $@

# The trainer stage runs briefly (a reduced network, 2 epochs, an image subset) when CIFAR-10 is
# found locally: data/cifar-10-batches-py, data/cifar10-jpeg, or the JPEG tarball in SHARED_DATA, of which
# the demo unpacks 700 training and 100 test images a class into data/cifar10-demo (the whole tarball is
# 60,000 files). Each demo replaces the previous demo's runs.
CIFAR_TGZ := $(SHARED_DATA)/cifar10-jpeg.tar.gz
DEMO_IMAGES := --wildcards 'cifar10-jpeg/train/*/0[0-6]??.jpg' 'cifar10-jpeg/test/*/00??.jpg'
demo: setup
	$(PY) tools/make_demo_data.py --cells $(DEMO_CELLS) --output data/demo.tfrecord
	$(PY) tools/nasbench_tfrecord_converter.py --input data/demo.tfrecord --output data/demo.hdf5
	$(PY) train.py --data data/demo.hdf5 --split 172 --out runs/demo
	$(PY) search.py --checkpoint runs/demo/checkpoint.pt --data data/demo.hdf5 --top-k 10
	@if [ ! -d data/cifar10-jpeg/train ] && [ ! -d data/cifar10-demo/train ] && [ -f $(CIFAR_TGZ) ]; then \
	  tar -xzf $(CIFAR_TGZ) -C data/ --transform 's,^cifar10-jpeg,cifar10-demo,' $(DEMO_IMAGES); fi
	@if [ -d data/cifar-10-batches-py ]; then root=data; elif [ -d data/cifar10-jpeg/train ]; then root=data/cifar10-jpeg; \
	elif [ -d data/cifar10-demo/train ]; then root=data/cifar10-demo; fi; \
	if [ -n "$$root" ]; then \
	  rm -rf runs/demo-trainer; \
	  $(PY) trainer.py --arch runs/demo/top1.json --data-root $$root --epochs 2 --batch-size 64 --bn-momentum 0.1 --stem-channels 16 --num-stacks 1 \
	    --cells-per-stack 1 --train-images 2000 --eval-images 1000 --out runs/demo-trainer; \
	else \
	  echo "No CIFAR-10 here. Get it either way, then train the pick:"; \
	  echo "  .venv/bin/python trainer.py --arch runs/demo/top1.json --data-root data --download   # torchvision, online"; \
	  echo "  tar -xzf cifar10-jpeg.tar.gz -C data/ && .venv/bin/python trainer.py --arch runs/demo/top1.json --data-root data/cifar10-jpeg"; \
	fi

# Proof that we read TensorFlow's own TFRecordWriter output: tests/fixtures/tf_written.tfrecord, committed,
# written by TensorFlow in a throwaway venv (never the toolkit's). This writes it again.
tf-fixture:
	python3 -m venv .venv-tf && .venv-tf/bin/pip install -q tensorflow-cpu==2.21.0 && .venv-tf/bin/python tests/write_tfrecord_with_tf.py

# The whole suite, on 2 worker processes (pytest-xdist; an idle worker takes queued tests from the other);
# the real data is found through SHARED_DATA. pytest exits 5 when it collects no test: not a failure.
PYTEST := NB101_SHARED_DATA=$(SHARED_DATA) $(PY) -m pytest -q -n 2 --dist worksteal
test: setup
	$(PYTEST); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

# The quick loop while editing: everything not marked slow, in under 45 s.
test-fast: setup
	$(PYTEST) -m "not slow"; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

bench: setup
	export NB101_REAL_TFRECORD=$(SHARED_DATA)/nb101_real_20k.tfrecord; \
	if [ ! -d data/cifar10-jpeg/train ] && [ -f $(CIFAR_TGZ) ]; then tar -xzf $(CIFAR_TGZ) -C data/; fi; \
	for b in converter predictors train_speed ablation enumeration search_speed budgeted_search best_rank trainer real_search nasbench_api; do \
	  $(PY) -m bench.$$b || exit 1; \
	done

# trainer.py on a CUDA GPU (about 9 minutes): bench/README.md says what it measures. Its inputs (the
# CIFAR-10 JPEG tarball, the real 20k TFRecord) are looked up in SHARED_DATA.
gpu:
	bash bench/gpu.sh --inputs $(SHARED_DATA)
