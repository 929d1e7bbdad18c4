"""The one home of NB101's data layout: the epoch counts trained, the repeats, the metrics of a run, and the
HDF5 schema that tools/nasbench_tfrecord_converter.py writes, dataset.py and nasbench/ (NB101's API) read.

HDF5 datasets (neuralpredictor.pytorch's schema, plus how the records were laid out):
    hash [N] S32, num_vertices [N] int8, trainable_parameters [N] int32,
    adjacency [N,7,7] int8, operations [N,7] int8 (NB101 labels, 0-padded),
    metrics [N, EPOCHS, REPEATS, STAGES, METRICS] float64: the records' doubles, exact; NaN where the source
        had no value.
    repeats [N, EPOCHS] int8: the records of each cell and epoch count (a record can hold no value at all).
    epoch_order [N, EPOCHS] int8: the indices into EPOCHS of a cell's epoch counts, in the order of their
        first record in the file; -1 after the last.
    params_in_first_record [N] bool: the cell's first record sets trainable_parameters.
Attributes: schema_version, source, epochs (the EPOCHS present, in the order they first appear in the file),
num_records, num_cells, synthetic_labels.
Cells are in the order of their first record; repeat r of an epoch count is its r-th record in the file.
"""

from __future__ import annotations

from lib.util.errors import UserError

EPOCHS = (4, 12, 36, 108)  # the training epochs NB101 recorded: the second axis of `metrics`
REPEATS = 3  # training runs per cell and budget: the repeat axis
STAGES = ("halfway", "final")  # the stage axis: evaluation_data[1] and [2]; [0] is the untrained model
METRICS = ("training_time", "train", "val", "test")  # the last axis, in the HDF5's words
RECORD_FIELDS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")  # the same, in NB101's
DATASETS = ("hash", "num_vertices", "trainable_parameters", "adjacency", "operations", "metrics")
# What the records' order says beyond their values; NB101's own API answers by it (nasbench/).
RECORD_ORDER = ("repeats", "epoch_order", "params_in_first_record")
HDF5_SCHEMA_VERSION = 2
CONVERTER = "python tools/nasbench_tfrecord_converter.py"


class DataFileError(UserError):
    """The HDF5 file is missing or not one this toolkit wrote; the message says what to do."""


def check_schema_version(path, attrs: dict) -> None:
    """DataFileError, in one line that says how to convert again, unless `attrs` (the file's attributes)
    say HDF5_SCHEMA_VERSION. A file without the attribute (neuralpredictor.pytorch's) passes."""
    version = attrs.get("schema_version", HDF5_SCHEMA_VERSION)
    if version != HDF5_SCHEMA_VERSION:
        source = attrs.get("source") or "nasbench_only108.tfrecord"
        raise DataFileError(
            f"{path}: HDF5 schema version {version}, this toolkit reads version {HDF5_SCHEMA_VERSION}: convert the"
            f" TFRecord again, `{CONVERTER} --input {source} --output {path}`"
        )
