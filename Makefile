# Two commands on a fresh machine: `make demo` (end to end on synthetic demo data) and `make test`.
PY := .venv/bin/python
DEMO_CELLS ?= 3000

.PHONY: setup demo test lint bench
setup: .venv/.installed

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements.txt
	touch $@

demo: setup
	$(PY) tools/make_demo_data.py --cells $(DEMO_CELLS) --output data/demo.tfrecord
	$(PY) tools/nasbench_tfrecord_converter.py --input data/demo.tfrecord --output data/demo.hdf5

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
