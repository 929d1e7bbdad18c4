"""tools/nasbench_tfrecord_converter.py (and make_demo_data.py): TFRecord -> HDF5 through its command
line (lib/tfrecord/convert, lib/tfrecord/chunks), value for value against the reference decoder, every kind
of bad input, the real 20k-cell file, a file written by TensorFlow itself, and the space's hashes kept
from a file that holds every cell."""

import base64
import json
import multiprocessing as mp
import os
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REAL_TFRECORD, REPO, run_main

from lib.nb101 import cell as nb101_cell
from lib.nb101 import network as nb101_network
from lib.nb101 import space as nb101_space
from lib.nb101.hashing import hash_cells
from lib.nb101.join import space_rows
from lib.nb101.schema import EPOCHS, RECORD_FIELDS
from lib.tfrecord import convert as nb101_convert
from lib.tfrecord import records as R
from lib.util.errors import USAGE_ERROR
from tools import make_demo_data as demo
from tools import nasbench_tfrecord_converter as C

TF_WRITTEN = REPO / "tests" / "fixtures" / "tf_written.tfrecord"  # tests/write_tfrecord_with_tf.py, with TensorFlow


@pytest.fixture(scope="module")
def cells(space):
    return demo.choose_cells(space, 24, seed=3)


def expected(path):
    """What the HDF5 must hold, by the reference decoder in plain Python: cells in first-appearance
    order, repeat r = the r-th record of its (hash, epochs), each cell's epoch counts in the order of
    their first record; and the epoch counts of the file in the order they first appear."""
    rows, seen, file_epochs = {}, {}, []
    metrics, adj, ops, params, sizes, first_has_params, cell_epochs = [], [], [], [], [], [], []
    for _, _, data in R.read_tfrecord(path):
        rec = R.decode_record(data)
        p, values, _ = R.metric_values(rec.metrics)
        if rec.hash not in rows:
            rows[rec.hash] = len(rows)
            n = len(rec.matrix)
            adj.append(np.zeros((7, 7), np.int8))
            adj[-1][:n, :n] = rec.matrix
            ops.append(np.zeros(7, np.int8))
            ops[-1][:n] = [nb101_cell.OP_TO_LABEL[o] for o in rec.ops.split(",")]
            params.append(p), sizes.append(n), first_has_params.append(rec.metrics.HasField("trainable_parameters"))
            metrics.append(np.full((4, 3, 2, 4), np.nan))
            cell_epochs.append([])
        row = rows[rec.hash]
        params[row] = params[row] if params[row] >= 0 else p
        repeat = seen[rec.hash, rec.epochs] = seen.get((rec.hash, rec.epochs), -1) + 1
        metrics[row][EPOCHS.index(rec.epochs), repeat] = values
        for order in (cell_epochs[row], file_epochs):
            order += [rec.epochs] if rec.epochs not in order else []
    return {
        "hash": np.array(list(rows), "S32"),
        "num_vertices": np.array(sizes, np.int8),
        "trainable_parameters": np.array(params, np.int32),
        "adjacency": np.stack(adj),
        "operations": np.stack(ops),
        "metrics": np.stack(metrics),
        "repeats": np.array([[seen.get((h, e), -1) + 1 for e in EPOCHS] for h in rows], np.int8),
        "epoch_order": np.array([[EPOCHS.index(e) for e in c] + [-1] * (4 - len(c)) for c in cell_epochs], np.int8),
        "params_in_first_record": np.array(first_has_params),
    }, file_epochs


def assert_hdf5_equals_records(h5_path, tfrecord_path):
    want, epochs = expected(tfrecord_path)
    with h5py.File(h5_path) as f:
        assert f.attrs["schema_version"] == 2 and f.attrs["source"] == Path(tfrecord_path).name
        assert f.attrs["epochs"].tolist() == epochs
        assert sorted(f) == sorted(want)
        for name, value in want.items():
            assert f[name].dtype == value.dtype, name
            np.testing.assert_array_equal(f[name][:], value, err_msg=name)  # NaN where absent, on both sides
        return dict(f.attrs)


def convert_ok(src, dst, *args):
    assert run_main(C.PROG, C.main, "--input", src, "--output", dst, *args) == 0
    return dst


# ----------------------------------------------------------------------------- round trips


def test_demo_round_trip_with_absent_fields(tmp_path, cells):
    src = tmp_path / "demo.tfrecord"
    n = demo.write_demo(src, cells, absent_prob=0.2, seed=1)
    attrs = assert_hdf5_equals_records(convert_ok(src, tmp_path / "demo.hdf5"), src)
    assert attrs["synthetic_labels"] and attrs["num_records"] == n == 24 * 4 * 3 and attrs["num_cells"] == 24
    assert attrs["epochs"].tolist() == [4, 12, 36, 108]
    with h5py.File(tmp_path / "demo.hdf5") as f:
        m = f["metrics"][:]
    assert 0.15 < np.isnan(m).mean() < 0.25  # the absent values are NaN, not 0
    assert np.array_equal(f_hashes(tmp_path / "demo.hdf5"), cells["hash"].astype("S32"))  # hash order kept


def f_hashes(path):
    with h5py.File(path) as f:
        return f["hash"][:]


@pytest.mark.parametrize("epochs, repeats", [((108,), 3), ((36, 108), 1), ((4, 12), 2)])
def test_subsets_of_epochs_and_repeats(tmp_path, cells, epochs, repeats):
    src = tmp_path / "d.tfrecord"
    demo.write_demo(src, {k: v[:6] for k, v in cells.items()}, epochs=epochs, repeats=repeats)
    attrs = assert_hdf5_equals_records(convert_ok(src, tmp_path / "d.hdf5"), src)
    assert attrs["epochs"].tolist() == list(epochs)
    with h5py.File(tmp_path / "d.hdf5") as f:
        m = f["metrics"][:]
    present = np.zeros((4, 3), bool)
    present[[EPOCHS.index(e) for e in epochs], :repeats] = True
    assert not np.isnan(m[:, present]).any() and np.isnan(m[:, ~present]).all()


def test_shuffled_records_several_chunks_and_a_pool(tmp_path, cells):
    """Cells in first-appearance order, repeats in order of appearance (also of records that hold no value,
    and fewer than 3), each cell's epochs in the order of their first record, the parameters of a cell whose
    first record lacks them, odd layouts, any chunking."""
    datas = list(demo.demo_records({k: v[:10] for k, v in cells.items()}, seed=2))
    rng = np.random.default_rng(0)
    datas = [datas[i] for i in rng.permutation(len(datas))]
    firsts = list({json.loads(d)[0]: i for i, d in reversed(list(enumerate(datas)))}.values())
    for i in firsts[:4]:
        datas[i] = unset(datas[i], params=True)
    datas[11] = unset(datas[11], values=True)
    datas = datas[:20] + datas[23:]
    datas[7] = json.dumps(json.loads(datas[7]), separators=(",", ":")).encode()  # decode_record's path
    src = tmp_path / "s.tfrecord"
    R.write_tfrecord(src, datas)
    one = convert_ok(src, tmp_path / "one.hdf5")
    many = convert_ok(src, tmp_path / "many.hdf5", "--chunk-bytes", "3000", "--workers", "2")
    assert_hdf5_equals_records(one, src)
    with h5py.File(one) as f:  # the cases above are there
        assert (~f["params_in_first_record"][:]).sum() == 4 and (f["repeats"][:] < 3).any()
        assert len({tuple(order) for order in f["epoch_order"][:].tolist()}) > 1
        recorded = np.arange(3) < f["repeats"][:][..., None]  # [cell, epochs, repeat]
        assert (np.isnan(f["metrics"][:]).all((3, 4)) & recorded).sum() == 1  # a record of no value counts
    with h5py.File(one) as a, h5py.File(many) as b:
        for name in a:
            np.testing.assert_array_equal(a[name][:], b[name][:])
    assert f_hashes(one).tolist() == list(dict.fromkeys(json.loads(d)[0].encode() for d in datas))


def test_demo_records_are_laid_out_like_nb101(cells):
    datas = list(demo.demo_records({k: v[:4] for k, v in cells.items()}, absent_prob=0.3))
    assert len(datas) == 4 * 4 * 3
    for data in datas:
        h, epochs, adj, ops, raw = json.loads(data)
        assert data == R.encode_record(h, epochs, adj, ops, base64.b64decode(raw))  # json.dumps layout
        rec = R.decode_record(data)
        assert nb101_cell.make_cell(rec.matrix, ops.split(",")).hash == h  # a real cell
        assert R.metric_values(rec.metrics)[2]  # marked synthetic


def test_demo_labels_are_nb101_like_and_learnable(space):
    cells = demo.choose_cells(space, 1000, seed=0)
    params = nb101_network.trainable_parameters(cells["adjacency"], cells["operations"], cells["num_vertices"])
    values, _ = demo.synthetic_metrics(cells, params, EPOCHS, 3, seed=0)
    val108 = values[:, 3, :, 2, 3]  # [cells, repeats] final validation accuracy at 108 epochs
    ok = val108[val108 > 0.2]
    assert 0.88 < ok.mean() < 0.92 and 0.93 < ok.max() < 0.96 and 0.01 < ok.std() < 0.06
    assert 0 < (val108 < 0.2).mean() < 0.01  # a few blown runs
    means = [np.nanmean(values[:, b, :, 2, 3]) for b in range(4)]
    assert means == sorted(means)  # more epochs, better
    # Learnable: repeats agree far more than cells differ.
    a, b = val108[:, 0], val108[:, 1]
    good = (a > 0.2) & (b > 0.2)
    assert np.corrcoef(a[good], b[good])[0, 1] > 0.9


# ----------------------------------------------------------------------------- bad input


def small_demo(tmp_path, cells) -> tuple[Path, list[bytes], list[int]]:
    src = tmp_path / "good.tfrecord"
    demo.write_demo(src, {k: v[:3] for k, v in cells.items()}, repeats=1)  # 3 cells x 4 epochs
    datas = [d for _, _, d in R.read_tfrecord(src)]
    return src, datas, np.cumsum([0] + [16 + len(d) for d in datas]).tolist()


def with_record(datas, k, new):
    return [new if i == k else d for i, d in enumerate(datas)]


def edit(data, **fields):
    """The record with some JSON fields replaced (hash, epochs, adjacency, ops, metrics)."""
    row = json.loads(data)
    for name, value in fields.items():
        row[["hash", "epochs", "adjacency", "ops", "metrics"].index(name)] = value
    return json.dumps(row).encode()


def unset(data, params=False, values=False):
    """The record without its trainable_parameters, or without any value in its evaluations."""
    m = R.ModelMetrics.FromString(base64.b64decode(json.loads(data)[4]))
    if params:
        m.ClearField("trainable_parameters")
    for e in m.evaluation_data if values else ():
        for field in RECORD_FIELDS:
            e.ClearField(field)
    return edit(data, metrics=base64.b64encode(m.SerializeToString()).decode())


def params_of(data, params):
    m = R.ModelMetrics.FromString(base64.b64decode(json.loads(data)[4]))
    m.trainable_parameters = params
    return base64.b64encode(m.SerializeToString()).decode()


K = 5  # the bad record, the second of cell 1 (records 4-7)


def cell_1(datas, **fields):
    """Every record of cell 1 edited: a bad cell is reported at its first record."""
    return [edit(d, **fields) if 4 <= i < 8 else d for i, d in enumerate(datas)]


def bad_inputs(datas, offsets):
    """name -> (records or raw bytes, record index, byte offset, what the message says)."""
    h0 = json.loads(datas[0])[0]
    framed = b"".join(R.frame(d) for d in datas)

    def flip(at):
        return framed[:at] + bytes([framed[at] ^ 0x10]) + framed[at + 1 :]

    o = offsets[K]
    return {
        "empty file": (b"", 0, 0, "empty file"),
        "truncated record": (framed[: o + 40], K, o, "truncated record: length"),
        "truncated header": (framed[: o + 5], K, o, "truncated record: the file ends 5 bytes into"),
        "length CRC mismatch": (flip(o + 9), K, o, "length CRC mismatch"),
        "length corrupted": (flip(o + 1), K, o, "length CRC mismatch"),
        "data CRC mismatch": (flip(o + 30), K, o, "data CRC mismatch"),
        "bad JSON": (with_record(datas, K, datas[K][:-5]), K, o, "bad JSON"),
        "wrong field count": (with_record(datas, K, json.dumps(json.loads(datas[K])[:4]).encode()), K, o, "5 fields"),
        "adjacency not square": (cell_1(datas, adjacency="01010"), 4, offsets[4], "is not square"),
        "adjacency not 0/1": (cell_1(datas, adjacency="0120"), 4, offsets[4], "other than 0 and 1"),
        "unknown op": (cell_1(datas, ops="input,conv5x5,output"), 4, offsets[4], "unknown op 'conv5x5'"),
        "not pruned": (
            cell_1(datas, adjacency="001001000", ops="input,maxpool3x3,output"),
            4,
            offsets[4],
            "not pruned",
        ),
        "same hash, two cells": (
            with_record(datas, K, edit(datas[K], hash=h0)),
            K,
            o,
            "names a different cell than in record 0",
        ),
        "hash not its cell": (cell_1(datas, hash="f" * 32), 4, offsets[4], "does not match its cell"),
        "params differ": (with_record(datas, K, edit(datas[K], metrics=params_of(datas[K], 5))), K, o, "differs from"),
        "epochs not NB101's": (with_record(datas, K, edit(datas[K], epochs=5)), K, o, "is not one of NB101's"),
        "four repeats": (
            datas[:8] + [datas[4]] * 3 + datas[8:],
            10,
            offsets[8] + 2 * (offsets[5] - offsets[4]),
            "more than 3",
        ),
        "bad base64": (with_record(datas, K, edit(datas[K], metrics="!!")), K, o, "bad base64"),
        "hash not hex": (with_record(datas, K, edit(datas[K], hash="g" * 32)), K, o, "not 32 lowercase hex"),
    }


CASES = [
    "empty file",
    "truncated record",
    "truncated header",
    "length CRC mismatch",
    "length corrupted",
    "data CRC mismatch",
    "bad JSON",
    "wrong field count",
    "adjacency not square",
    "adjacency not 0/1",
    "unknown op",
    "not pruned",
    "same hash, two cells",
    "hash not its cell",
    "params differ",
    "epochs not NB101's",
    "four repeats",
    "bad base64",
    "hash not hex",
]


CHUNKINGS = [  # in this process: one task, or one task per record; in a pool (slow: its start): the same, or ~2 a task
    pytest.param([], id="one task"),
    pytest.param(["--chunk-bytes", "1"], id="task per record"),
    pytest.param(["--workers", "2", "--chunk-bytes", "1"], id="pool, task per record", marks=pytest.mark.slow),
    pytest.param(["--workers", "3", "--chunk-bytes", "700"], id="pool, 2 records a task", marks=pytest.mark.slow),
]


@pytest.mark.timeout(120)  # worker pools in this process: a hang fails
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_bad_input_is_one_line_naming_file_record_offset(tmp_path, cells, capsys, case, chunking):
    _, datas, offsets = small_demo(tmp_path, cells)
    content, index, offset, why = bad_inputs(datas, offsets)[case]
    bad = tmp_path / "bad.tfrecord"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        R.write_tfrecord(bad, content)
    out = tmp_path / "out" / "nasbench.hdf5"
    out.parent.mkdir()
    out.write_bytes(b"the previous output")
    capsys.readouterr()
    assert run_main(C.PROG, C.main, "--input", bad, "--output", out, *chunking) == USAGE_ERROR
    err = capsys.readouterr().err
    want = f"nasbench_tfrecord_converter.py: error: {bad}: record {index} at byte {offset}: "
    assert err.count("\n") == 1 and err.startswith(want), err
    assert why in err
    assert out.read_bytes() == b"the previous output" and sorted(out.parent.iterdir()) == [out]  # no temp file
    assert mp.active_children() == []  # the pool is gone with the error


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_output_gets_the_usual_mode_under_the_umask(tmp_path, cells, mask):
    src = tmp_path / "d.tfrecord"
    demo.write_demo(src, {k: v[:3] for k, v in cells.items()})
    old = os.umask(mask)
    try:
        convert_ok(src, tmp_path / "d.hdf5")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d.hdf5").stat().st_mode) == 0o666 & ~mask


def test_missing_input_and_no_output_left(tmp_path, capsys):
    out = tmp_path / "o.hdf5"
    assert run_main(C.PROG, C.main, "--input", tmp_path / "nope.tfrecord", "--output", out) == USAGE_ERROR
    err = capsys.readouterr().err
    nope = tmp_path / "nope.tfrecord"
    assert err == f"{C.PROG}: error: {nope}: record 0 at byte 0: cannot open: No such file or directory\n"
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_cannot_be_written_is_one_line(tmp_path, cells, capsys):
    src = tmp_path / "d.tfrecord"
    demo.write_demo(src, {k: v[:3] for k, v in cells.items()})
    (tmp_path / "file").write_bytes(b"")
    out = tmp_path / "file" / "o.hdf5"  # its folder is a file
    capsys.readouterr()
    assert run_main(C.PROG, C.main, "--input", src, "--output", out) == USAGE_ERROR
    err = capsys.readouterr().err
    want = f"nasbench_tfrecord_converter.py: error: --output {out}: {tmp_path / 'file'} is a file, not a folder"
    assert err.count("\n") == 1 and err.startswith(want), err
    assert sorted(tmp_path.iterdir()) == [src, tmp_path / "file"]  # refused before anything was read


@pytest.mark.slow
def test_cli_help_and_exit_status(tmp_path):
    script = REPO / "tools" / "nasbench_tfrecord_converter.py"
    run = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and "python tools/nasbench_tfrecord_converter.py" in run.stdout
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    run = subprocess.run(
        [sys.executable, script, "--input", "empty.tfrecord", "--output", "o.hdf5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    want = "nasbench_tfrecord_converter.py: error: empty.tfrecord: record 0 at byte 0: empty file, no records\n"
    assert run.returncode == USAGE_ERROR and run.stderr == want


# ----------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_file_converts_value_for_value(real_h5):
    attrs = assert_hdf5_equals_records(real_h5, REAL_TFRECORD)
    assert not attrs["synthetic_labels"] and attrs["num_records"] == 80_004 and attrs["num_cells"] == 20_001
    with h5py.File(real_h5) as f:
        val = f["metrics"][:, 3, 0, 1, 2]
        assert np.isnan(f["metrics"][:, :, 1:]).all()  # one repeat only
        assert np.isnan(f["metrics"][:, :, :, 0]).all()  # no halfway evaluations
    assert round(float(val.max()), 4) == 0.9491  # bench/README.md: budgeted_search.py's "best in file 94.91 %"


@pytest.mark.slow
def test_real_file_hashes_and_parameters_recomputed(real_h5):
    with h5py.File(real_h5) as f:
        adj, ops, nv = f["adjacency"][:], f["operations"][:], f["num_vertices"][:]
        hashes, params = f["hash"][:].astype("U32"), f["trainable_parameters"][:]
    assert np.array_equal(hash_cells(adj, ops, nv), hashes)
    assert np.array_equal(nb101_network.trainable_parameters(adj, ops, nv), params)


def test_reads_a_file_written_by_tensorflow(tmp_path):
    import write_tfrecord_with_tf as tf_script

    assert [d for _, _, d in R.read_tfrecord(TF_WRITTEN)] == tf_script.RECORDS
    assert_hdf5_equals_records(convert_ok(TF_WRITTEN, tmp_path / "tf.hdf5"), TF_WRITTEN)


# ----------------------------------------------------------------------------- the space's hashes, kept


def test_a_file_of_some_cells_leaves_the_space_cache_alone(tmp_path, cells, monkeypatch):
    monkeypatch.setattr(nb101_space, "DEFAULT_SPACE_CACHE", tmp_path / "space.npz")
    src = tmp_path / "d.tfrecord"
    demo.write_demo(src, cells, epochs=(108,), repeats=1)
    convert_ok(src, tmp_path / "d.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5", "d.tfrecord"]


@pytest.mark.slow  # ~20 s: a demo file of every cell
@pytest.mark.timeout(300)
def test_a_file_of_every_cell_keeps_its_verified_hashes_for_the_next_conversion(tmp_path, space, monkeypatch):
    """Converting a file of every cell hashes every cell (without the cache) and keeps the hashes in the
    cache, in enumeration order; a later conversion of many cells finds them there and hashes nothing.
    hash_cells is stood in for by the space's own hashes (its ~45 s are tested elsewhere), to count
    what is hashed."""
    cache = tmp_path / "space.npz"
    monkeypatch.setattr(nb101_space, "DEFAULT_SPACE_CACHE", cache)
    hashed = []

    def counted_hash_cells(adjacency, operations, num_vertices):
        hashed.append(len(num_vertices))
        return space["hash"][space_rows(space, adjacency, operations, num_vertices)]

    monkeypatch.setattr(nb101_convert, "hash_cells", counted_hash_cells)
    every = demo.choose_cells(space, None, seed=0)
    demo.write_demo(tmp_path / "all.tfrecord", every, epochs=(108,), repeats=1)
    nb101_convert.convert(tmp_path / "all.tfrecord", tmp_path / "all.hdf5")
    assert hashed == [nb101_space.NUM_CELLS]
    kept = nb101_space.enumerate_space(cache)
    assert sorted(kept) == sorted(space) and all(np.array_equal(kept[k], space[k]) for k in space)
    assert kept["hash"].dtype == space["hash"].dtype
    demo.write_demo(tmp_path / "many.tfrecord", demo.choose_cells(space, 20_001, seed=1), epochs=(108,), repeats=1)
    nb101_convert.convert(tmp_path / "many.tfrecord", tmp_path / "many.hdf5")
    assert hashed == [nb101_space.NUM_CELLS]  # nothing hashed the second time
