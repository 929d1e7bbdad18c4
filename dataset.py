"""NB101 in memory: the converter's HDF5 as arrays, the published splits, labels and model inputs.

    from dataset import load_nb101
    data = load_nb101("data/nasbench.hdf5")          # whole file, once (~1 s for 423,624 cells)
    train = data.split("172")                         # indices, RandomState(0) as published
    y = data.labels("val", epochs=108, repeat=0)      # final accuracy, blown runs handled
    x = data.features(train)                          # dict of tensors for model.py

The HDF5 schema is lib/nb101/schema.py's: metrics [N,4,3,2,4] = epochs (4/12/36/108) × repeat ×
(halfway, final) × (training_time, train, val, test); NaN where the source had no value. The file holds
the records' doubles; they are held here as float32, the precision every stage has always trained and
searched on.
The attribute synthetic_labels (NB101.synthetic) marks demo data whose labels are made up: every
stage says SYNTHETIC wherever it shows or saves them.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import torch

from lib.nb101.schema import DATASETS, EPOCHS, METRICS, DataFileError, check_schema_version
from lib.predictors.features import cell_features

SPLITS = ("172", "334", "860", "91-172", "91-334", "91-860", "denoise-91", "denoise-80", "all")
BLOWN = 0.2  # a run below 20% accuracy diverged; the seeds treat it as missing
DEFAULT_DATA = Path("data/nasbench.hdf5")


def how_to_make(path: Path) -> str:
    """What to run to get an HDF5 at `path`; from a TFRecord given in its place, an HDF5 beside it
    (never the advice to write over the TFRecord, or over any file that is not an HDF5)."""
    convert = "python tools/nasbench_tfrecord_converter.py"
    out = path if path.suffix in (".hdf5", ".h5") or not path.name else path.with_suffix(".hdf5")
    if path.suffix == ".tfrecord":
        return f"it looks like a TFRecord: convert it with `{convert} --input {path} --output {out}`"
    demo = "or run `make demo` for synthetic demo data"
    return f"make one with `{convert} --input nasbench_only108.tfrecord --output {out}`, {demo}"


# --target: METRIC[:REPEAT], the accuracy a predictor learns; "val" means "val:0"
TARGETS = [f"{m}{r}" for m in ("val", "test") for r in ("", ":0", ":1", ":2", ":mean")]


def parse_target(target: str) -> tuple[str, int | str]:
    """'val' -> ('val', 0); 'test:mean' -> ('test', 'mean'); 'val:2' -> ('val', 2)."""
    metric, _, repeat = target.partition(":")
    return metric, ("mean" if repeat == "mean" else int(repeat or 0))


class NB101:
    """All arrays of one HDF5 file, held in memory (numpy); see the module docstring."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], attrs: dict):
        self.path = Path(path)
        self.hash: np.ndarray = arrays["hash"]
        self.num_vertices: np.ndarray = arrays["num_vertices"]
        self.trainable_parameters: np.ndarray = arrays["trainable_parameters"]
        self.adjacency: np.ndarray = arrays["adjacency"]
        self.operations: np.ndarray = arrays["operations"]
        self.metrics: np.ndarray = arrays["metrics"]
        self.attrs = attrs

    def __len__(self) -> int:
        return len(self.hash)

    @property
    def synthetic(self) -> bool:
        """True for demo data (tools/make_demo_data.py): its labels are made up, not NB101's measurements."""
        return bool(self.attrs.get("synthetic_labels", False))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {h: i for i, h in enumerate(self.hash.tolist())}

    def index_of(self, cell_hash: str) -> int:
        """Row of a cell hash; KeyError with the file name when absent."""
        try:
            return self._index[cell_hash]
        except KeyError:
            raise KeyError(f"hash {cell_hash} is not in {self.path}") from None

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the data (cells and metrics), not the file name; stored in checkpoints."""
        h = hashlib.sha1(self.hash.astype("S32").tobytes())
        h.update(np.ascontiguousarray(self.metrics).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ labels

    def labels(self, metric: str = "val", epochs: int = 108, repeat: int | str = 0) -> np.ndarray:
        """Final accuracy per cell for one repeat (0-2) or "mean" over repeats, as float64.

        Blown runs (< 20%) and absent repeats are skipped: a single repeat falls back to the next
        usable one, the mean averages the usable ones. A cell with none gets the mean of all
        usable values, as the seeds do. Cells with no value at all for this metric stay NaN.
        """
        acc = self.metrics[:, EPOCHS.index(epochs), :, 1, METRICS.index(metric)].astype(np.float64)
        usable = np.isfinite(acc) & (acc >= BLOWN)
        if repeat == "mean":
            with np.errstate(invalid="ignore"):
                out = np.where(usable, acc, 0).sum(1) / usable.sum(1)
        else:
            order = np.roll(np.arange(acc.shape[1]), -int(repeat))  # asked repeat first, then others
            first = np.argmax(usable[:, order], axis=1)
            out = acc[np.arange(len(acc)), order[first]]
        none = ~usable.any(1)
        out[none & np.isfinite(acc).any(1)] = acc[usable].mean() if usable.any() else np.nan
        out[~np.isfinite(acc).any(1)] = np.nan
        return out

    def by_epochs(self, target: str = "val", every_repeat: bool = False) -> dict[str, np.ndarray]:
        """What training each cell for each of NB101's epochs gave, for the cells with a `target` label at
        108 epochs and a mean val accuracy: their cells (adjacency, operations, num_vertices, hash);
        `labels` [cells, epochs, repeats], the target's final accuracy (one repeat as labels() reads it; with
        `every_repeat` each recorded repeat, blown runs NaN); `seconds` [cells, epochs, repeats], the training
        time of that repeat (the mean for a :mean target), where the file lacks one the 108-epoch time x
        epochs / 108 (then `seconds_estimated` is True); `true_val`, `true_test`, the mean 108-epoch
        accuracies over the usable repeats."""
        metric, repeat = parse_target(target)
        true_val, true_test = self.labels("val", 108, "mean"), self.labels("test", 108, "mean")
        rows = np.flatnonzero(np.isfinite(self.labels(metric, 108, repeat)) & np.isfinite(true_val))
        final = self.metrics[rows, :, :, 1].astype(np.float64)  # [cells, epochs, repeats, METRICS]
        acc, time = final[..., METRICS.index(metric)], final[..., METRICS.index("training_time")]
        if every_repeat:
            labels = np.where(np.isfinite(acc) & (acc >= BLOWN), acc, np.nan)
            seconds = time
        else:
            labels = np.stack([self.labels(metric, e, repeat)[rows] for e in EPOCHS], 1)[..., None]
            r = 0 if repeat == "mean" else int(repeat)
            with np.errstate(invalid="ignore"):
                seconds = (np.nanmean(time, 2) if repeat == "mean" else time[:, :, r])[..., None]
        full = seconds[:, -1:]  # the 108-epoch time, for the epochs that lack one
        full = np.where(np.isfinite(full), full, np.nanmean(time[:, -1]) if np.isfinite(time[:, -1]).any() else 0.0)
        scale = (np.array(EPOCHS, np.float64) / EPOCHS[-1])[None, :, None]
        missing = np.isnan(seconds)
        cells = {k: getattr(self, k)[rows] for k in ("adjacency", "operations", "num_vertices", "hash")}
        return cells | {
            "labels": labels,
            "seconds": np.where(missing, full * scale, seconds),
            "seconds_estimated": bool((missing & np.isfinite(labels)).any()),
            "true_val": true_val[rows],
            "true_test": true_test[rows],
        }

    # ------------------------------------------------------------------ splits

    def split(self, name: str, seed: int = 0) -> np.ndarray:
        """Indices of a named split. seed=0 gives the published splits (chanyoungP/Simple_MLP_Predictor_NAS,
        neuralpredictor.pytorch)."""
        return split_indices(name, self.metrics[:, EPOCHS.index(108), 0, 1, METRICS.index("val")], seed)

    # ------------------------------------------------------------------ model inputs

    def features(self, idx: np.ndarray | None = None, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The model inputs for rows `idx` (all by default), built with array ops, no per-cell loop."""
        idx = np.arange(len(self)) if idx is None else np.asarray(idx)
        return cell_features(self.adjacency[idx], self.operations[idx], self.num_vertices[idx], device)


def split_indices(name: str, acc108: np.ndarray, seed: int = 0) -> np.ndarray:
    """Splits as published: successive RandomState(seed).permutation(N) draws for 172, 334 and 860;
    "91-K" keeps the cells of draw K with seed-0 108-epoch validation accuracy > 91%;
    "denoise-91" / "denoise-80" are all cells above 91% / 80%; "all" is every cell."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose from {' '.join(SPLITS)}")
    n = len(acc108)
    if name == "all":
        return np.arange(n)
    if name.startswith("denoise-"):
        return np.flatnonzero(acc108 > int(name[-2:]) / 100)
    rs = np.random.RandomState(seed)
    draws = {k: rs.permutation(n)[:k] for k in (172, 334, 860)}
    size = int(name.split("-")[-1])
    if name.startswith("91-"):
        return draws[size][acc108[draws[size]] > 0.91]
    return draws[size]


def load_nb101(path: str | Path = DEFAULT_DATA) -> NB101:
    """Read the whole HDF5 into memory. DataFileError (with how to make one) if missing or foreign."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file; " + how_to_make(path))
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, not an NB101 HDF5 file; give the file itself")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            check_schema_version(path, attrs)  # files from neuralpredictor.pytorch have no version: they pass
            arrays = {k: f[k][()] for k in DATASETS if k != "metrics"}
            arrays["metrics"] = f["metrics"].astype(np.float32)[()]
    except (OSError, KeyError) as e:
        raise DataFileError(f"{path}: not an NB101 HDF5 file ({e}); " + how_to_make(path)) from None
    arrays["hash"] = arrays["hash"].astype("U32")
    return NB101(path, arrays, attrs)


def _plain(v):
    """HDF5 attribute -> plain Python value."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v.item() if isinstance(v, np.generic) else v
