"""NASBench.fixed_statistics and .computed_statistics: read-only dicts keyed by hash, as NB101's API holds them,
whose entries are built from the arrays when asked for.

    fixed_stat(data, row)     {'module_adjacency': int8 [n, n], 'module_operations': [str], 'trainable_parameters': int}
    computed_stat(data, row)  {epochs: [{'halfway_training_time': float, ..., 'final_test_accuracy': float}, ...]}

Each entry is what NB101's API builds from the cell's records, value for value: a field the records leave
unset (NaN in the HDF5) reads 0.0, as protobuf reads it, and trainable_parameters is the first record's
(0 if it lacks one); the epoch counts come in the order of their first record, the repeats in file order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from lib.nb101.cell import LABEL_TO_OP
from lib.nb101.schema import EPOCHS, RECORD_FIELDS, STAGES
from nasbench.lib.dataset_file import Dataset

DATA_POINT_KEYS = tuple(f"{stage}_{field}" for stage in STAGES for field in RECORD_FIELDS)


def fixed_stat(data: Dataset, row: int) -> dict:
    n = int(data.num_vertices[row])
    return {
        "module_adjacency": np.array(data.adjacency[row, :n, :n]),
        "module_operations": [LABEL_TO_OP[x] for x in data.operations[row, :n].tolist()],
        "trainable_parameters": int(data.trainable_parameters[row]) if data.params_in_first_record[row] else 0,
    }


def computed_stat(data: Dataset, row: int) -> dict:
    out = {}
    for b in data.epoch_order[row].tolist():
        if b < 0:
            break
        runs = as_recorded(data.metrics[row, b, : data.repeats[row, b]]).reshape(-1, len(DATA_POINT_KEYS))
        out[EPOCHS[b]] = [dict(zip(DATA_POINT_KEYS, run, strict=True)) for run in runs.tolist()]
    return out


def as_recorded(values: np.ndarray) -> np.ndarray:
    """The values as NB101's API reads the records: an unset field (NaN here) is protobuf's default, 0.0."""
    return np.where(np.isnan(values), 0.0, values)


class _Statistics(Mapping):
    """A read-only dict from hash to `entry(data, row)`, in file order, built on access."""

    entry = None

    def __init__(self, data: Dataset):
        self._data = data

    def __getitem__(self, module_hash):
        row = self._data.row(module_hash)
        if row < 0:
            raise KeyError(module_hash)
        return self.entry(self._data, row)

    def __contains__(self, module_hash) -> bool:
        return self._data.row(module_hash) >= 0

    def __iter__(self) -> Iterator[str]:
        return self._data.hashes()

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self):,} cells of {self._data.path}>"


class FixedStatistics(_Statistics):
    """hash -> {'module_adjacency', 'module_operations', 'trainable_parameters'}"""

    entry = staticmethod(fixed_stat)


class ComputedStatistics(_Statistics):
    """hash -> epochs -> repeat -> {'halfway_training_time', ..., 'final_test_accuracy'}"""

    entry = staticmethod(computed_stat)
