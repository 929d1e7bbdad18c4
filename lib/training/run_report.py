"""What trainer.py tells its user: NB101's record of the cell, the parameter line, the summary and curves.png.

from lib.training.run_report import nb101_record, params_line, summary_line, plot_training_curves
record = nb101_record(nb, row)                      # None-safe dict, 'synthetic' included
print(params_line(n_params, network, record))       # NB101's count only for the full network
print(summary_line(history[-1], record, epochs))    # "after 36 epochs: valid 93.10% test 92.80% (NB101 ...)"
plot_training_curves(out / "curves.png", history, record, epochs, title)

A run on data without test images has None for its test loss and accuracy: "test -" in the summary,
no test curve in curves.png.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lib.nb101.schema import EPOCHS, METRICS
from lib.util.outputs import write_atomic

FULL_NETWORK = {"stem_channels": 128, "num_stacks": 3, "cells_per_stack": 3, "num_classes": 10}  # NB101's


def nb101_record(nb, i: int) -> dict:
    """NB101's record of row i of an NB101 HDF5: trainable_parameters, whether the file's labels are
    synthetic, and at each of NB101's epoch counts each repeat's final values (None where the file has none)."""
    final = np.asarray(nb.metrics[i, :, :, 1, :], dtype=np.float64)  # [epochs, repeat, METRICS]
    rec = {"row": int(i), "trainable_parameters": int(nb.trainable_parameters[i]), "synthetic": nb.synthetic}
    for b, epochs in enumerate(EPOCHS):
        per_metric = final[b].T.tolist()  # [METRICS][repeat]
        rec[str(epochs)] = {m: [None if math.isnan(v) else v for v in vs] for m, vs in zip(METRICS, per_metric)}
    return rec


def recorded(record: dict | None, epochs: int, metric: str) -> float | None:
    """Mean over repeats of NB101's final `metric` ('val', 'test', ...) at `epochs`; None if unknown."""
    values = [v for v in ((record or {}).get(str(epochs)) or {}).get(metric, []) if v is not None]
    return float(np.mean(values)) if values else None


def is_full_network(network: dict) -> bool:
    return all(network.get(k) == v for k, v in FULL_NETWORK.items())


def params_line(n_params: int, network: dict, record: dict | None) -> str:
    """The network's own parameter count; NB101's beside it only where the network is NB101's full one."""
    if not is_full_network(network):
        return f"params {n_params:,} (this reduced network)"
    if record is None:
        return f"params {n_params:,} (this network)"
    return f"params {n_params:,} (this network; NB101 trainable_parameters {record['trainable_parameters']:,})"


def nb101_label(record: dict | None, epochs: int) -> str:
    synthetic = ", SYNTHETIC labels" if record and record.get("synthetic") else ""
    return f"NB101 at {epochs} epochs{synthetic}"


def summary_line(final: dict, record: dict | None, epochs: int) -> str:
    """The run beside NB101's record for the same epochs, e.g. 'valid 93.10% test 92.80% (NB101 at 36 epochs:
    valid 93.40%)'. NB101's numbers come from a different (TPU, TensorFlow) run: docs/trainer_protocol.md."""
    line = f"after {final['epoch']} epochs: valid {percent(final['valid_acc'])} test {percent(final['test_acc'])}"
    if record is None:
        return line
    known = [(name, recorded(record, epochs, m)) for name, m in (("valid", "val"), ("test", "test"))]
    known = [f"{name} {100 * v:.2f}%" for name, v in known if v is not None]
    return f"{line} ({nb101_label(record, epochs)}: {' '.join(known) if known else 'no record'})"


def percent(acc: float | None) -> str:
    """An accuracy as a percentage, "-" where there is none (data without test images)."""
    return "-" if acc is None else f"{100 * acc:.2f}%"


def plot_training_curves(path: Path, history: list[dict], record: dict | None, epochs: int, title: str) -> str:
    """curves.png: loss and accuracy per epoch for train / valid / test (each split with values: a run without
    test images has no test curve), NB101's recorded final accuracies marked at their epochs (each was a
    separate NB101 run with its own LR schedule; the run's own epochs are the star), SYNTHETIC in the title
    when the record's labels are. Returns the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    x = [h["epoch"] for h in history]
    colours = {"train": "C0", "valid": "C1", "test": "C2"}
    for split, c in colours.items():
        if all(h[f"{split}_acc"] is None for h in history):  # no such images
            continue
        ax_loss.plot(x, [h[f"{split}_loss"] for h in history], "o-", ms=3, color=c, label=split)
        ax_acc.plot(x, [100 * h[f"{split}_acc"] for h in history], "o-", ms=3, color=c, label=split)
    marked = False
    for trained in (e for e in EPOCHS if e <= max(epochs, max(x, default=0))):
        for split, metric in (("valid", "val"), ("test", "test")):
            v = recorded(record, trained, metric)
            if v is not None:
                own = trained == epochs  # the record of this run's own epochs stands out
                style = {"marker": "*" if own else "D", "ms": 14 if own else 6, "mec": "k", "ls": "none"}
                label = f"NB101 {split}, {trained} epochs"
                ax_acc.plot([trained], [100 * v], color=colours[split], label=label, **style)
                marked = True
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(linestyle="--", alpha=0.5)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if marked and record and record.get("synthetic"):
        title += "\nNB101 record: SYNTHETIC labels (demo data), not NB101's measurements"
    fig.suptitle(title)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), "wb")
    plt.close(fig)
    return title
