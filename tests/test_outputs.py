"""lib/outputs.py: atomic writes and the JSON and table formatting of results."""

import json

import numpy as np

from lib.outputs import dumps, json_number, pct


def test_json_output_is_compact_and_lossless():
    obj = {"adjacency": [[0, 1], [0, 0]], "ops": ["input", "a,  b", "[1,\n2]"], "x": [1e-3, None, True], "e": []}
    text = dumps(obj)
    assert json.loads(text) == obj and '"adjacency": [\n    [0, 1],\n    [0, 0]\n  ]' in text
    assert json_number(float("nan")) is None and json_number(np.float32(0.5)) == 0.5
    assert pct(0.9412) == " 94.12" and pct(None) == "     -"
