"""nasbench.lib.config: the search space it describes is this toolkit's, and each call gives a new dict."""

from lib.nb101 import cell as nb101_cell
from lib.nb101.schema import EPOCHS, REPEATS
from nasbench.lib import config


def test_the_space_and_the_repeats_are_nb101s():
    c = config.build_config()
    assert c["module_vertices"] == nb101_cell.MAX_VERTICES and c["max_edges"] == nb101_cell.MAX_EDGES
    labelled = sorted((label, op) for op, label in nb101_cell.OP_TO_LABEL.items() if label >= 0)
    assert c["available_ops"] == [op for _, op in labelled]  # index = NB101's label, which the hash uses
    assert c["num_repeats"] == REPEATS and c["train_epochs"] == max(EPOCHS)


def test_each_call_gives_its_own_dict():
    a, b = config.build_config(), config.build_config()
    a["available_ops"].append("conv5x5")
    a["num_repeats"] = 1
    assert b == config.build_config() and b["num_repeats"] == REPEATS and "conv5x5" not in b["available_ops"]
