"""lib/nb101/cell.py: a cell's ops as tables print them."""

from lib.nb101.cell import short_ops


def test_short_ops_name_the_interior_ops_in_order():
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu", "output"]
    assert short_ops(ops) == "3x3,mp,1x1,3x3"
    assert short_ops(("input", "output")) == "-"
