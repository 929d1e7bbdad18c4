"""NAS-Bench-101's API (google-research/nasbench, nasbench/api.py) over this toolkit's data, without TensorFlow.

    from nasbench import api
    nasbench = api.NASBench("data/nasbench.hdf5")          # or an NB101 TFRecord, converted once into a cache
    spec = api.ModelSpec(matrix=[[0, 1, 1], [0, 0, 1], [0, 0, 0]], ops=["input", "conv3x3-bn-relu", "output"])
    data = nasbench.query(spec)                            # one repeat, drawn with the module-level `random`
    fixed, computed = nasbench.get_metrics_from_spec(spec)

The same names, signatures, return types and exceptions as NB101's API, and the same answers: for the same
file, seed and calls in the same order, every value equals what NB101's API returns. It calls random.seed(seed)
once and random.randint(0, num_repeats - 1) per query, as NB101's does, so a client that draws from `random`
too follows the same trajectory. A field the records leave unset (the real files have no halfway values,
some no test accuracy) reads 0.0, as NB101's API reads it.

The file is this toolkit's HDF5 (tools/nasbench_tfrecord_converter.py) or an NB101 TFRecord, which is converted
once into a cache (nasbench/lib/dataset_file.py says where). Loading maps the file's arrays and builds nothing
per cell: fixed_statistics and computed_statistics are read-only dicts whose entries are built when asked for.

Where it differs from NB101's API, and why:
- A file with fewer than 3 repeats of a cell (the real 20k file has one): NB101's query fails with an
  IndexError whenever it draws a repeat the file lacks; this one draws among the repeats present,
  random.randint(0, repeats - 1).
- A file of some of the cells: NB101's files hold every cell, so its is_valid checks only the spec and its
  query fails with a bare KeyError for a cell the file lacks. Here is_valid is False for such a cell, and
  query raises CellNotInFileError, both an OutOfDomainError and a KeyError, so code that catches either
  works; a client that draws cells until is_valid holds (BANANAS's Cell.random_cell) works on any subset.
- A spec of more than 7 vertices: NB101's _check_spec fails with a TypeError while wording its message;
  this one raises the OutOfDomainError it meant to ('too many vertices, got 8 (max vertices = 7)').
- evaluate() trains with TensorFlow in NB101; here it raises an error that says how to train the cell with
  this toolkit's trainer.py.
- config is build_config()'s defaults: NB101 reads them from absl flags, which a command line could change.
"""

from __future__ import annotations

import json
import random
import time

import numpy as np

from lib.nb101.schema import EPOCHS, RECORD_FIELDS
from lib.nb101.space import NUM_CELLS
from nasbench.lib import config as _config
from nasbench.lib import model_spec as _model_spec
from nasbench.lib.dataset_file import open_dataset
from nasbench.lib.statistics import ComputedStatistics, FixedStatistics, as_recorded, computed_stat, fixed_stat

ModelSpec = _model_spec.ModelSpec  # at the top level, as in NB101's API

_EPOCH_INDEX = {e: b for b, e in enumerate(EPOCHS)}


class OutOfDomainError(Exception):
    """The spec (or the epoch count) is outside the search space, or the file lacks the cell."""


class CellNotInFileError(OutOfDomainError, KeyError):
    """The file holds no runs of this cell (or of these epochs of it). A KeyError too, as NB101's API
    raises one there; its message reads plainly, not as a quoted key."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class NASBench:
    """NAS-Bench-101's dataset: query a cell's metrics, counting the training time and epochs it would cost."""

    def __init__(self, dataset_file, seed=None):
        """Load the dataset (well under a second). dataset_file: this toolkit's HDF5 or an NB101 TFRecord.
        seed: of the module-level `random` that picks a repeat per query; None seeds it from the system.
        lib.nb101.schema.DataFileError (or, for a damaged TFRecord, the converter's RecordError) if the
        file is missing or not one of those: one line that says what to do."""
        self.config = _config.build_config()
        random.seed(seed)
        print("Loading dataset from file... This may take a few minutes...")
        start = time.time()
        self._data = open_dataset(dataset_file)
        self._file = dataset_file
        # hash -> metric name -> value, and hash -> epochs -> repeat index -> metric name -> value
        self.fixed_statistics = FixedStatistics(self._data)
        self.computed_statistics = ComputedStatistics(self._data)
        # The epoch counts in the order they first appear in the file, as NB101 adds them: the order a set
        # of {4, 12, 36, 108} iterates in depends on it (they collide in its table).
        self.valid_epochs = set()
        for epochs in self._data.epochs:
            self.valid_epochs.add(epochs)
        print(f"Loaded dataset in {int(time.time() - start)} seconds")
        self.history = {}
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0

    def query(self, model_spec, epochs=108, stop_halfway=False):
        """One run of the cell: a repeat drawn with random.randint among those in the file, its metrics at
        the end of training (or halfway, with stop_halfway), with the cell's fixed statistics. Adds the run's
        training time and epochs (halved with stop_halfway) to the budget counters.

        Returns {'module_adjacency', 'module_operations', 'trainable_parameters', 'training_time',
        'train_accuracy', 'validation_accuracy', 'test_accuracy'}. OutOfDomainError if the spec or epochs
        are outside the space; CellNotInFileError (also a KeyError) if the file lacks the cell or its runs
        of these epochs.
        """
        if epochs not in self.valid_epochs:
            raise OutOfDomainError(f"invalid number of epochs, must be one of {self.valid_epochs}")
        row = self._row(model_spec)
        b = _EPOCH_INDEX[epochs]
        present = int(self._data.repeats[row, b])
        repeats = min(self.config["num_repeats"], present) if present else self.config["num_repeats"]
        repeat = random.randint(0, repeats - 1)  # NB101 draws before it looks the epochs up
        if not present:
            raise CellNotInFileError(f"{self._file} holds no run of {epochs} epochs of this cell")
        data = fixed_stat(self._data, row)
        values = as_recorded(self._data.metrics[row, b, repeat, 0 if stop_halfway else 1]).tolist()
        data.update(zip(RECORD_FIELDS, values, strict=True))
        self.training_time_spent += data["training_time"]
        if stop_halfway:
            self.total_epochs_spent += epochs // 2
        else:
            self.total_epochs_spent += epochs
        return data

    def is_valid(self, model_spec):
        """Whether the spec is inside the search space and the file holds its cell; no budget is counted."""
        try:
            self._check_spec(model_spec)
        except OutOfDomainError:
            return False
        return len(self._data) == NUM_CELLS or self._data.row(self._hash_spec(model_spec)) >= 0

    def get_budget_counters(self):
        """(training time spent, epochs spent) by the queries so far."""
        return self.training_time_spent, self.total_epochs_spent

    def reset_budget_counters(self):
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0

    def evaluate(self, model_spec, model_dir):
        """NB101 trains the cell here with TensorFlow; this package does not. Raises NotImplementedError
        saying how to train it with this toolkit's trainer.py."""
        cell = {"adjacency": np.asarray(model_spec.original_matrix).tolist(), "ops": list(model_spec.original_ops)}
        cell = json.dumps(cell)
        raise NotImplementedError(
            f"NASBench.evaluate trains with TensorFlow, which this package leaves out: train the cell with this"
            f" toolkit's trainer instead: save {cell} as cell.json, then run `python trainer.py --arch cell.json"
            f" --data-root data/cifar10-jpeg --out {model_dir}` (python trainer.py --help)"
        )

    def hash_iterator(self):
        """The hashes of the file's cells, in file order."""
        return self.fixed_statistics.keys()

    def get_metrics_from_hash(self, module_hash):
        """(fixed statistics, computed statistics) of a cell, new dicts; no budget is counted.
        CellNotInFileError (also a KeyError) if the file lacks the hash."""
        row = self._data.row(module_hash)
        if row < 0:
            raise CellNotInFileError(f"hash {module_hash} is not in {self._file}")
        return fixed_stat(self._data, row), computed_stat(self._data, row)

    def get_metrics_from_spec(self, model_spec):
        """(fixed statistics, computed statistics) of a spec's cell, new dicts; no budget is counted."""
        self._check_spec(model_spec)
        return self.get_metrics_from_hash(self._hash_spec(model_spec))

    def _row(self, model_spec) -> int:
        """The file's row of the spec's cell: OutOfDomainError outside the space, CellNotInFileError if absent."""
        self._check_spec(model_spec)
        module_hash = self._hash_spec(model_spec)
        row = self._data.row(module_hash)
        if row < 0:
            raise CellNotInFileError(
                f"cell {module_hash} is not in {self._file}, which holds {len(self._data):,} of NB101's"
                f" {NUM_CELLS:,} cells (is_valid is False for it)"
            )
        return row

    def _check_spec(self, model_spec):
        """OutOfDomainError, worded as NB101's API words it, if the spec is outside the search space."""
        if not model_spec.valid_spec:
            raise OutOfDomainError("invalid spec, provided graph is disconnected.")
        num_vertices = len(model_spec.ops)
        num_edges = np.sum(model_spec.matrix)
        if num_vertices > self.config["module_vertices"]:
            limit = self.config["module_vertices"]
            raise OutOfDomainError(f"too many vertices, got {int(num_vertices)} (max vertices = {int(limit)})")
        if num_edges > self.config["max_edges"]:
            limit = self.config["max_edges"]
            raise OutOfDomainError(f"too many edges, got {int(num_edges)} (max edges = {int(limit)})")
        if model_spec.ops[0] != "input":
            raise OutOfDomainError("first operation should be 'input'")
        if model_spec.ops[-1] != "output":
            raise OutOfDomainError("last operation should be 'output'")
        for op in model_spec.ops[1:-1]:
            if op not in self.config["available_ops"]:
                raise OutOfDomainError(f"unsupported op {op} (available ops = {self.config['available_ops']})")

    def _hash_spec(self, model_spec):
        return model_spec.hash_spec(self.config["available_ops"])
