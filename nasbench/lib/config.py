"""NB101's configuration (nasbench/lib/config.py): the flags it defines with absl, here their default
values as a plain dict, in the order NB101 defines them.

    from nasbench.lib import config
    config.build_config()["available_ops"]      # ['conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3']

The API reads module_vertices, max_edges, available_ops and num_repeats; the rest describe how NB101
trained its cells (this toolkit's trainer.py follows that protocol).
"""

from __future__ import annotations


def build_config() -> dict:
    """NB101's flags and their defaults: a new dict (and new lists) at each call."""
    return {
        # data (only needed to generate the dataset)
        "train_data_files": [],
        "valid_data_file": "",
        "test_data_file": "",
        "sample_data_file": "",
        "data_format": "channels_last",
        "num_labels": 10,
        # the search space
        "module_vertices": 7,
        "max_edges": 9,
        "available_ops": ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"],
        # the network and its training, as every cell of the dataset was trained
        "stem_filter_size": 128,
        "num_stacks": 3,
        "num_modules_per_stack": 3,
        "batch_size": 256,
        "train_epochs": 108,
        "train_seconds": 4.0 * 60 * 60,
        "learning_rate": 0.1,
        "lr_decay_method": "COSINE_BY_STEP",
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "max_attempts": 5,
        "intermediate_evaluations": ["0.5"],
        "num_repeats": 3,
        # TPUs
        "use_tpu": True,
        "tpu_iterations_per_loop": 100,
        "tpu_num_shards": 2,
    }
