"""The predictors' inputs of padded NB101 cells, built with array operations, no per-cell loop.

from lib.predictors.features import cell_features
x = cell_features(adjacency, operations, num_vertices)   # the HDF5's arrays, or the enumeration's
x["adjacency"], x["operations"], x["mask"], x["num_vertices"]
"""

from __future__ import annotations

import numpy as np
import torch

OP_COLUMNS = 5  # one-hot width: output, input, conv3x3, conv1x1, maxpool


def cell_features(adjacency, operations, num_vertices, device="cpu") -> dict[str, torch.Tensor]:
    """Inputs of the predictors: adjacency [N,7,7], one-hot ops [N,7,5], mask [N,7], num_vertices [N].

    One-hot columns follow neuralpredictor.pytorch: label + 2, i.e. output, input, conv3x3,
    conv1x1, maxpool; padding vertices are all zero.
    """
    n = torch.as_tensor(np.asarray(num_vertices), dtype=torch.long)
    mask = torch.arange(operations.shape[1])[None, :] < n[:, None]
    ops = torch.as_tensor(np.asarray(operations), dtype=torch.long) + 2
    onehot = torch.nn.functional.one_hot(ops.clamp(0, OP_COLUMNS - 1), OP_COLUMNS).float() * mask[..., None]
    out = {
        "adjacency": torch.as_tensor(np.asarray(adjacency), dtype=torch.float32),
        "operations": onehot,
        "mask": mask.float(),
        "num_vertices": n.float(),
    }
    return {k: v.to(device) for k, v in out.items()}
