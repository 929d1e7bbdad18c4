"""The one home of NB101's data layout: the epoch counts trained, the repeats, the metrics of a run, and the
HDF5 schema that tools/nasbench_tfrecord_converter.py writes and dataset.py reads.

HDF5 datasets (neuralpredictor.pytorch's schema, plus attributes):
    hash [N] S32, num_vertices [N] int8, trainable_parameters [N] int32,
    adjacency [N,7,7] int8, operations [N,7] int8 (NB101 labels, 0-padded),
    metrics [N, EPOCHS, REPEATS, STAGES, METRICS] float32, NaN where the source had no value.
Attributes: schema_version, source, budgets (the EPOCHS present), num_records, num_cells, synthetic_labels.
"""

EPOCHS = (4, 12, 36, 108)  # the training epochs NB101 recorded: the second axis of `metrics`
REPEATS = 3  # training runs per cell and budget: the repeat axis
STAGES = ("halfway", "final")  # the stage axis: evaluation_data[1] and [2]; [0] is the untrained model
METRICS = ("training_time", "train", "val", "test")  # the last axis, in the HDF5's words
RECORD_FIELDS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")  # the same, in NB101's
DATASETS = ("hash", "num_vertices", "trainable_parameters", "adjacency", "operations", "metrics")
HDF5_SCHEMA_VERSION = 1
