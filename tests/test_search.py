"""search.py: ranking against known predictions, the whole space, top1.json, the hand-off to trainer.py.

Small HDF5 files are written here from cells of the enumerated space with made-up labels; a stub
predictor (registered for the test only) scores a known integer function of the cell, so every
expected ranking is computed independently with numpy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO, final_accuracies, rows_of, write_h5

import search
import trainer
from dataset import load_nb101
from lib.nb101.cell import Cell
from lib.nb101.network import build_network, count_parameters
from lib.nb101.space import NUM_CELLS, space_fingerprint
from lib.predictors.inference import stored_predictions
from model import MODELS, Predictor, build_model, save_checkpoint


class Stub(Predictor):
    """score = 100 * #conv3x3 + 10 * #edges + #conv1x1: integers, exact in float32, with many ties."""

    name = "stub"
    BF16 = False  # its integers are not exact in bf16

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # predict() reads the device from a parameter

    def forward(self, x):
        ops = x["operations"] * x["mask"][..., None]
        return 100 * ops[..., 2].sum(1) + 10 * x["adjacency"].sum((1, 2)) + ops[..., 3].sum(1) + 0 * self.unused


def stub_score(adjacency, operations, num_vertices):
    real = np.arange(7)[None] < num_vertices[:, None]
    return 100 * ((operations == 0) & real).sum(1) + 10 * adjacency.sum((1, 2)) + ((operations == 1) & real).sum(1)


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(MODELS, "stub", Stub)
    return Stub


@pytest.fixture
def small(tmp_path, space):
    """300 cells of the space; val accuracy a known function (so the truth columns can be checked)."""
    rows = np.sort(np.random.default_rng(0).choice(NUM_CELLS, 300, replace=False))
    val = 0.80 + 0.0005 * np.random.default_rng(1).permutation(300)  # distinct, 0.80..0.95
    test = val - 0.01
    test[::7] = np.nan  # NaN-aware: some cells lack test accuracy
    return write_h5(tmp_path / "small.hdf5", final_accuracies(val, test), rows_of(space, rows)), rows


def stub_checkpoint(path, data_path, fingerprint=None):
    data = load_nb101(data_path)
    fp = fingerprint or data.fingerprint
    save_checkpoint(path, Stub(), data={"path": str(data_path), "fingerprint": fp}, split={"name": "172", "seed": 0})
    return path


def test_ranking_matches_known_predictions(tmp_path, small, stub, capsys):
    data_path, rows = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    argv = ["--checkpoint", str(ckpt), "--data", str(data_path), "--top-k", "15", "--out", str(tmp_path)]
    res = search.main([*argv, "--eval-batch-size", "7"])  # batches of 7: the same scores
    data = load_nb101(data_path)
    s = stub_score(data.adjacency, data.operations, data.num_vertices)
    expected = np.lexsort((np.arange(len(s)), -s))[:15]  # best first, ties by row
    got = [data.index_of(c["hash"]) for c in res["ranked"]]
    assert got == expected.tolist()
    assert [c["predicted"] for c in res["ranked"]] == s[expected].astype(float).tolist()
    val, test = data.labels("val", 108, "mean"), data.labels("test", 108, "mean")
    true_rank = np.empty(len(val), int)
    true_rank[np.argsort(-val)] = np.arange(1, len(val) + 1)
    for c, i in zip(res["ranked"], expected):
        assert c["true_val"] == pytest.approx(val[i])
        assert (c["true_test"] is None) == np.isnan(test[i]) and (
            c["true_test"] is None or c["true_test"] == pytest.approx(test[i])
        )
        assert c["true_rank"] == true_rank[i]
        assert c["num_edges"] == data.adjacency[i].sum() and c["trainable_parameters"] == data.trainable_parameters[i]
        assert c["trained_on"] == (i in set(data.split("172").tolist()))
    s_ = res["summary"]
    top3 = set(np.argsort(-val)[:3].tolist())  # ceil(1% of 300)
    assert s_["best_true_val"] == pytest.approx(val.max())
    assert s_["regret"] == pytest.approx(val.max() - val[expected[0]])
    assert s_["top1pct_size"] == 3 and s_["top1pct_hits"] == len(top3 & set(expected.tolist()))
    assert s_["top1pct_captured"] == pytest.approx(s_["top1pct_hits"] / 3) and s_["topk_in_file"] == 15
    on_disk = json.loads((tmp_path / "search.json").read_text())
    assert on_disk["ranked"][0]["hash"] == res["ranked"][0]["hash"] and on_disk["summary"]["regret"] == s_["regret"]
    out = capsys.readouterr().out
    assert "regret of the top-1" in out and res["ranked"][0]["hash"][:12] in out


def test_space_all_scores_every_unique_cell_and_joins_truth(tmp_path, small, stub, space):
    data_path, rows = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    args, _ = search.parse_args(["--checkpoint", str(ckpt), "--space", "all", "--data", str(data_path)])
    cells, data, found = search.load_cells(args)
    assert len(cells["num_vertices"]) == NUM_CELLS and "hash" not in cells  # joined by cell, hashed when shown
    assert np.array_equal(found[rows], np.arange(len(rows)))  # every file cell found at its row
    assert (found >= 0).sum() == len(rows)
    res = search.main(["--checkpoint", str(ckpt), "--space", "all", "--data", str(data_path), "--out", str(tmp_path)])
    assert res["n_scored"] == NUM_CELLS and res["scoring"]["reused"] is False
    s = stub_score(space["adjacency"], space["operations"], space["num_vertices"])
    order = np.lexsort((np.arange(NUM_CELLS), -s))
    assert [c["hash"] for c in res["ranked"]] == space["hash"][order[: len(res["ranked"])]].tolist()
    assert all(c["predicted"] == s.max() for c in res["ranked"])  # 5 conv3x3 and 9 edges: many ties at the top
    assert res["summary"]["topk_in_file"] == sum(c["true_val"] is not None for c in res["ranked"])


def test_space_all_needs_no_data_file(tmp_path, small, stub, monkeypatch):
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    data_path.unlink()  # the file it was trained on is gone
    monkeypatch.chdir(tmp_path)  # and there is no data/nasbench.hdf5 here
    res = search.main(["--checkpoint", str(ckpt), "--space", "all", "--top-k", "3", "--out", "o"])
    assert res["data"] is None and res["summary"]["labelled"] is False
    assert res["ranked"][0]["true_val"] is None and (tmp_path / "o" / "top1.json").exists()


@pytest.mark.slow
def test_top1_json_round_trip_rebuilds_the_network(tmp_path, small, stub):
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    res = search.main(["--checkpoint", str(ckpt), "--data", str(data_path), "--out", str(tmp_path), "--top-k", "2"])
    spec = json.loads((tmp_path / "top1.json").read_text())
    cell = Cell.from_json(spec)
    data = load_nb101(data_path)
    row = data.index_of(spec["hash"])
    assert spec["hash"] == res["ranked"][0]["hash"] and cell.hash == spec["hash"]
    net, ref = build_network(cell), build_network(Cell.from_json(res["ranked"][0]))
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert count_parameters(net) == data.trainable_parameters[row] == res["summary"]["top1_network_parameters"]
    picked, _ = trainer.select_cell(trainer.parse_args(["--arch", str(tmp_path / "top1.json")]))
    assert picked == cell


def test_without_data_it_reads_the_checkpoints_and_names_the_label_of_best(tmp_path, small, stub, monkeypatch, capsys):
    """A bare search after `train.py --data X` ranks X, not data/nasbench.hdf5; "best" says which label it is."""
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    monkeypatch.chdir(tmp_path)  # no data/nasbench.hdf5 here
    res = search.main(["--checkpoint", str(ckpt), "--out", "o"])
    assert res["data"] == str(data_path) and res["fingerprint_match"] is True
    assert res["summary"]["true_label"] == "val:mean at 108 epochs"
    assert "best true val:mean at 108 epochs in the file:" in capsys.readouterr().out


def test_fingerprint_mismatch_warns_and_still_runs(tmp_path, small, capsys):
    data_path, _ = small
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mlp.pt", build_model("mlp"), data={"path": "o.hdf5", "fingerprint": "0123456789abcdef"})
    res = search.main(["--checkpoint", str(tmp_path / "mlp.pt"), "--data", str(data_path), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "warning" in err and "0123456789abcdef" in err and load_nb101(data_path).fingerprint in err
    assert res["fingerprint_match"] is False and len(res["ranked"]) == 10
    assert not any(c["trained_on"] for c in res["ranked"])  # unknown training cells: none marked
    assert json.loads((tmp_path / "search.json").read_text())["fingerprint_match"] is False


def test_train_hands_the_pick_to_trainer(tmp_path, small, stub, monkeypatch):
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    calls = []
    monkeypatch.setattr(search, "train_pick", calls.append)
    argv = ["--checkpoint", str(ckpt), "--data", str(data_path), "--out", str(tmp_path), "--top-k", "1", "--train"]
    search.main([*argv, "--", "--epochs", "4"])
    trainer = [sys.executable, str(REPO / "trainer.py"), "--arch", str(tmp_path / "top1.json")]
    assert calls == [[*trainer, "--data", str(data_path), "--epochs", "4"]]


# ----------------------------------------------------------------------------- outputs agree, failures reach the user


@pytest.mark.slow
def test_search_json_and_top1_json_agree_even_after_a_failure(tmp_path, small, stub, monkeypatch):
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    argv = ["--checkpoint", str(ckpt), "--data", str(data_path), "--out", str(tmp_path)]
    search.main(argv)
    saved = json.loads((tmp_path / "search.json").read_text())
    top1 = json.loads((tmp_path / "top1.json").read_text())
    assert top1.pop("provenance") == saved.pop("provenance") and top1 == saved["top1"]
    assert saved["top1"]["hash"] == saved["ranked"][0]["hash"]
    write_json, failing = search.write_json, []

    def crash(path, obj):  # the disk fills up just before the write of `failing`
        if Path(path).name in failing:
            raise OSError(28, "No space left on device")
        write_json(path, obj)

    monkeypatch.setattr(search, "write_json", crash)
    for name, top_k, kept in (("top1.json", 3, 3), ("search.json", 5, 3)):
        failing[:] = [name]
        with pytest.raises(OSError):
            search.main([*argv, "--top-k", str(top_k)])
        assert not (tmp_path / "top1.json").exists()  # absent rather than another search's
        assert json.loads((tmp_path / "search.json").read_text())["top_k"] == kept  # new before top1.json, else old


def test_synthetic_labels_are_said_everywhere(tmp_path, small, stub, capsys):
    data_path, _ = small
    demo = tmp_path / "demo.hdf5"
    demo.write_bytes(data_path.read_bytes())
    with h5py.File(demo, "a") as f:
        f.attrs["synthetic_labels"] = True
    ckpt = stub_checkpoint(tmp_path / "stub.pt", demo)
    for path, synthetic in ((demo, True), (data_path, False)):
        out = tmp_path / str(synthetic)
        res = search.main(["--checkpoint", str(ckpt), "--data", str(path), "--out", str(out)])
        printed = capsys.readouterr().out
        on_disk = [json.loads((out / name).read_text())["synthetic_labels"] for name in ("search.json", "top1.json")]
        assert on_disk == [synthetic, synthetic] and res["synthetic_labels"] is synthetic
        assert ("SYNTHETIC labels" in printed) is synthetic


# ----------------------------------------------------------------------------- predictions stored by train.py


@pytest.mark.slow
def test_stored_predictions_are_reused_and_refused_on_a_mismatch(tmp_path, small, stub, space, capsys):
    """Stored values that differ from what the stub computes show which of the two ranked the cells."""
    data_path, _ = small
    data = load_nb101(data_path)
    stored = np.random.default_rng(0).permutation(len(data)) / 1000
    everywhere = np.random.default_rng(1).permutation(NUM_CELLS) / 1e6
    predictions = {
        "data": stored_predictions(stored, data.fingerprint, "bf16"),
        "space": stored_predictions(everywhere, space_fingerprint(space), "bf16"),
    }
    ckpt = tmp_path / "stored.pt"
    save_checkpoint(ckpt, Stub(), data={"fingerprint": data.fingerprint}, predictions=predictions)
    argv = ["--checkpoint", str(ckpt), "--data", str(data_path), "--out", str(tmp_path), "--top-k", "5"]

    res = search.main(argv)
    assert "predictions: reused (train.py stored them" in capsys.readouterr().out and res["scoring"]["reused"]
    assert [data.index_of(c["hash"]) for c in res["ranked"]] == np.argsort(-stored)[:5].tolist()
    assert [c["predicted"] for c in res["ranked"]] == sorted(stored, reverse=True)[:5]

    for flags, why in (
        (["--precision", "fp32"], "made in bf16, --precision fp32 asked"),
        (["--recompute"], "--recompute"),
    ):
        res = search.main([*argv, *flags])
        assert why in res["scoring"]["why"] and f"predictions: computing them ({res['scoring']['why']})" in (
            capsys.readouterr().out
        )
        assert res["scoring"]["reused"] is False
        s = stub_score(data.adjacency, data.operations, data.num_vertices)
        assert [c["predicted"] for c in res["ranked"]] == sorted(s, reverse=True)[:5]

    res = search.main([*argv, "--space", "all"])  # all of NB101, in enumeration order
    assert res["scoring"]["reused"] and "predictions: reused" in capsys.readouterr().out
    best = np.argsort(-everywhere)[:5]
    assert [c["hash"] for c in res["ranked"]] == space["hash"][best].tolist()

    other = tmp_path / "other.pt"  # predictions of another file's cells
    save_checkpoint(other, Stub(), predictions={"data": stored_predictions(stored, "0123456789abcdef", "fp32")})
    res = search.main([*argv[2:], "--checkpoint", str(other)])
    assert res["scoring"]["reused"] is False
    assert f"are of cells 0123456789abcdef, these are {data.fingerprint}" in capsys.readouterr().out


def test_thread_and_precision_flags_are_what_runs(tmp_path, small, stub):
    data_path, _ = small
    ckpt = stub_checkpoint(tmp_path / "stub.pt", data_path)
    argv = ["--checkpoint", str(ckpt), "--data", str(data_path), "--out", str(tmp_path)]
    res = search.main([*argv, "--threads", "2", "--precision", "fp32", "--eval-batch-size", "64"])
    assert res["scoring"] == {
        "reused": False,
        "why": "the checkpoint holds no predictions of the data file's cells",
        "device": "cpu",
        "threads": 2,
        "precision": "fp32",
        "batch_size": 64,
    }
    assert search.main([*argv, "--threads", "1"])["scoring"]["threads"] == 1


def test_help_fits_a_screen_and_names_the_budgeted_search(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")  # what argparse wraps to when the help goes to a pipe
    with pytest.raises(SystemExit) as e:
        search.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert e.value.code == 0 and len(shown.splitlines()) < 60 and "budgeted_search.py" in shown
