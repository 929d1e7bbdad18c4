"""nasbench.api against what NB101's API answers for the same records: a reference that reads the TFRecord record
by record with lib.tfrecord.records' decoder and builds its dicts as NB101's api.py does (protobuf's 0.0 for a
field left unset), drawing its repeats with the same random.seed and random.randint calls. On a demo file laid
out as no NB101 file is, and on the real 20k file (one repeat)."""

import copy
import json
import random
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REAL_TFRECORD, REPO, metrics_bytes, require

from lib.nb101 import cell as nb101_cell
from lib.nb101.network import trainable_parameters
from lib.nb101.schema import EPOCHS
from lib.tfrecord import records as R
from lib.tfrecord.convert import convert
from nasbench import api
from tools import make_demo_data as demo

OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
RESULT = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")


class Reference:
    """NB101's API over a TFRecord: its dicts, built record by record, and its query."""

    def __init__(self, path):
        self.fixed, self.computed, self.valid_epochs = {}, {}, set()
        for _, _, data in R.read_tfrecord(path):
            rec = R.decode_record(data)
            m = rec.metrics
            if rec.hash not in self.fixed:
                ops = rec.ops.split(",")
                self.fixed[rec.hash] = dict(
                    module_adjacency=rec.matrix, module_operations=ops, trainable_parameters=m.trainable_parameters
                )
                self.computed[rec.hash] = {}
            self.valid_epochs.add(rec.epochs)
            half, final = m.evaluation_data[1], m.evaluation_data[2]
            self.computed[rec.hash].setdefault(rec.epochs, []).append(
                {
                    "halfway_training_time": half.training_time,
                    "halfway_train_accuracy": half.train_accuracy,
                    "halfway_validation_accuracy": half.validation_accuracy,
                    "halfway_test_accuracy": half.test_accuracy,
                    "final_training_time": final.training_time,
                    "final_train_accuracy": final.train_accuracy,
                    "final_validation_accuracy": final.validation_accuracy,
                    "final_test_accuracy": final.test_accuracy,
                }
            )

    def query(self, module_hash, epochs, stop_halfway, num_repeats=3):
        """NB101's draw, among the repeats the file holds (NB101 itself fails on a draw beyond them);
        'lacks' where the cell has no run of these epochs (NB101: a KeyError after the draw)."""
        runs = self.computed[module_hash].get(epochs, [])
        index = random.randint(0, min(num_repeats, len(runs) or num_repeats) - 1)
        if not runs:
            return "lacks"
        stage = "halfway" if stop_halfway else "final"
        return copy.deepcopy(self.fixed[module_hash]) | {k: runs[index][f"{stage}_{k}"] for k in RESULT}

    def spec(self, module_hash):
        return api.ModelSpec(self.fixed[module_hash]["module_adjacency"], self.fixed[module_hash]["module_operations"])


def assert_same(got, want, where="answer"):
    """Equal values of the same types, dicts with their keys in the same order, arrays of one dtype and shape."""
    assert type(got) is type(want), f"{where}: {type(got).__name__}, not {type(want).__name__}"
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), where
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def load(path, seed=0):
    return api.NASBench(str(path), seed=seed)


@pytest.fixture(scope="module")
def odd(space, tmp_path_factory):
    """(TFRecord, its HDF5) of 40 real cells laid out as no NB101 file is: records in random order (cells out of
    hash order, each cell's epochs in an order of its own), random doubles with some fields unset, the first
    record of some cells without trainable_parameters, cells with one repeat, cells without 12-epoch runs,
    and a run without any value."""
    cells = demo.choose_cells(space, 40, seed=5)
    params = trainable_parameters(cells["adjacency"], cells["operations"], cells["num_vertices"])
    rng = np.random.default_rng(0)
    runs = []  # (cell, epochs, values [3 evaluations, 5])
    for i in range(40):
        for e in EPOCHS:
            for r in range(0 if (i % 7 == 3 and e == 12) else 1 if i % 5 == 1 else 3):
                values = rng.random((3, 5)) * 1000 ** rng.random((3, 5))
                values[rng.random((3, 5)) < 0.15] = np.nan
                if (i, e, r) == (0, 108, 1):
                    values[:, 1:] = np.nan  # a run without any value
                runs.append((i, e, values))
    records, first = [], set()
    for i, e, values in [runs[k] for k in rng.permutation(len(runs))]:
        n = int(cells["num_vertices"][i])
        ops = ",".join(nb101_cell.LABEL_TO_OP[x] for x in cells["operations"][i, :n].tolist())
        p = -1 if i % 4 == 2 and i not in first else params[i]
        first.add(i)
        blob = metrics_bytes(values, p, checkpoint_path="synthetic-labels:odd")
        adjacency = R.adjacency_string(cells["adjacency"][i, :n, :n])
        records.append(R.encode_record(cells["hash"][i], e, adjacency, ops, blob))
    tmp = tmp_path_factory.mktemp("odd")
    R.write_tfrecord(tmp / "odd.tfrecord", records)
    convert(tmp / "odd.tfrecord", tmp / "odd.hdf5")
    return tmp / "odd.tfrecord", tmp / "odd.hdf5"


@pytest.fixture(scope="module")
def reference(odd):
    ref = Reference(odd[0])
    repeats = [len(runs) for c in ref.computed.values() for runs in c.values()]
    assert 0 in [f["trainable_parameters"] for f in ref.fixed.values()] and min(repeats) == 1  # the odd cases
    assert list(ref.fixed) != sorted(ref.fixed) and len({tuple(c) for c in ref.computed.values()}) > 5
    return ref


def test_statistics_are_nb101s_dicts_value_for_value(odd, reference):
    nb = load(odd[1])
    assert list(nb.valid_epochs) == list(reference.valid_epochs)  # a set's order: that of the epochs' first records
    assert list(nb.hash_iterator()) == list(nb.fixed_statistics) == list(reference.fixed)  # file order
    assert len(nb.fixed_statistics) == len(nb.computed_statistics) == len(reference.fixed)
    for (h, fixed), computed in zip(nb.fixed_statistics.items(), nb.computed_statistics.values(), strict=True):
        assert h in nb.fixed_statistics and h in nb.computed_statistics.keys()
        assert_same(fixed, reference.fixed[h], h)
        assert_same(computed, reference.computed[h], h)
        assert_same(nb.get_metrics_from_hash(h), (reference.fixed[h], reference.computed[h]), h)
        assert_same(nb.get_metrics_from_spec(reference.spec(h)), (reference.fixed[h], reference.computed[h]), h)


def test_seeded_queries_draw_the_runs_nb101_draws(odd, reference):
    rng = np.random.default_rng(1)
    hashes = list(reference.fixed)
    calls = [(hashes[k], int(rng.choice(EPOCHS)), bool(rng.random() < 0.3)) for k in rng.integers(0, 40, 400)]
    assert "lacks" in [reference.computed[h].get(e, "lacks") for h, e, _ in calls]
    nb = load(odd[1], seed=11)
    got = []
    for h, e, half in calls:
        try:
            got.append(nb.query(reference.spec(h), epochs=e, stop_halfway=half))
        except api.CellNotInFileError:
            got.append("lacks")
    got += [nb.get_budget_counters(), random.random()]
    random.seed(11)
    want = [reference.query(h, e, half) for h, e, half in calls]
    done = [(w, e, half) for w, (_, e, half) in zip(want, calls, strict=True) if w != "lacks"]
    want += [(sum(w["training_time"] for w, _, _ in done), sum(e // 2 if half else e for _, e, half in done))]
    want += [random.random()]
    assert_same(got, want)
    nb.reset_budget_counters()
    assert_same(nb.get_budget_counters(), (0.0, 0))


def test_fewer_repeats_in_the_config_draw_among_fewer(odd, reference):
    h = next(h for h, c in reference.computed.items() if len({r["final_validation_accuracy"] for r in c[108]}) == 3)
    nb = load(odd[1], seed=3)
    nb.config["num_repeats"] = 2
    got = [nb.query(reference.spec(h))["validation_accuracy"] for _ in range(50)]
    random.seed(3)
    assert got == [reference.query(h, 108, False, num_repeats=2)["validation_accuracy"] for _ in range(50)]
    assert len(set(got)) == 2


def test_every_labelling_of_a_cell_gets_its_answers(odd, reference):
    """Interior vertices renumbered in another topological order: the same cell, hash and answers."""
    nb = load(odd[1], seed=5)
    relabelled = 0
    for h, fixed in reference.fixed.items():
        m, ops = fixed["module_adjacency"], fixed["module_operations"]
        n = len(ops)
        for perm in [list(np.random.default_rng(n + k).permutation(range(1, n - 1))) for k in range(20)]:
            order = [0, *perm, n - 1]
            pm = m[np.ix_(order, order)]
            if not np.triu(pm, 1).sum() == pm.sum() or order == list(range(n)):
                continue
            relabelled += 1
            random.seed(5)
            want = nb.query(reference.spec(h))
            random.seed(5)
            assert_same(nb.query(api.ModelSpec(pm, [ops[v] for v in order])), want)
            break
    assert relabelled > 10


@pytest.mark.parametrize(
    "matrix, ops, message",
    [
        ([[0, 0], [0, 0]], ["input", "output"], "invalid spec, provided graph is disconnected."),
        (np.eye(8, k=1, dtype=int), ["input", *OPS * 2, "output"], "too many vertices, got 8 (max vertices = 7)"),
        (np.triu(np.ones((5, 5), int), 1), ["input", *OPS, "output"], "too many edges, got 10 (max edges = 9)"),
        (np.eye(3, k=1, dtype=int), ["conv3x3-bn-relu"] * 2 + ["output"], "first operation should be 'input'"),
        (np.eye(3, k=1, dtype=int), ["input", "conv3x3-bn-relu", "maxpool3x3"], "last operation should be 'output'"),
        (
            np.eye(3, k=1, dtype=int),
            ["input", "conv5x5", "output"],
            f"unsupported op conv5x5 (available ops = {OPS})",
        ),
    ],
    ids=["disconnected", "8 vertices", "10 edges", "first op", "last op", "unknown op"],
)
def test_specs_outside_the_space_raise_nb101s_messages(odd, matrix, ops, message):
    nb = load(odd[1], seed=0)
    spec = api.ModelSpec(matrix, ops)
    state = random.getstate()
    assert nb.is_valid(spec) is False
    for call in (nb.query, nb.get_metrics_from_spec):
        with pytest.raises(api.OutOfDomainError) as e:
            call(spec)
        assert str(e.value) == message and not isinstance(e.value, KeyError)
    assert random.getstate() == state and nb.get_budget_counters() == (0.0, 0)


def test_epochs_outside_the_file_raise_nb101s_message(odd, reference):
    nb = load(odd[1])
    for epochs in (5, 0, "108", None):
        with pytest.raises(api.OutOfDomainError, match=r"^invalid number of epochs, must be one of \{") as e:
            nb.query(reference.spec(next(iter(reference.fixed))), epochs=epochs)
        assert str(e.value) == f"invalid number of epochs, must be one of {reference.valid_epochs}"


def test_a_cell_the_file_lacks(odd, reference, space):
    """is_valid says False, query and get_metrics_* raise an error that is an OutOfDomainError and a KeyError;
    nothing is drawn or counted."""
    nb = load(odd[1], seed=0)
    row = next(i for i, h in enumerate(space["hash"]) if h not in reference.fixed and space["num_vertices"][i] == 6)
    n = int(space["num_vertices"][row])
    ops = [nb101_cell.LABEL_TO_OP[x] for x in space["operations"][row, :n].tolist()]
    spec = api.ModelSpec(space["adjacency"][row, :n, :n], ops)
    state = random.getstate()
    assert nb.is_valid(spec) is False and space["hash"][row] not in nb.fixed_statistics
    for call in (nb.query, nb.get_metrics_from_spec, lambda s: nb.get_metrics_from_hash(space["hash"][row])):
        with pytest.raises(KeyError) as e:
            call(spec)
        assert isinstance(e.value, api.OutOfDomainError) and type(e.value) is api.CellNotInFileError
        assert str(e.value).startswith((f"cell {space['hash'][row]} is not in", f"hash {space['hash'][row]} is not in"))
    with pytest.raises(KeyError):
        nb.fixed_statistics[space["hash"][row]]
    assert random.getstate() == state and nb.get_budget_counters() == (0.0, 0)
    assert all(nb.is_valid(reference.spec(h)) for h in reference.fixed)


def test_a_file_of_every_cell_checks_the_spec_only(odd, space, monkeypatch):
    """As NB101's is_valid: with every cell in the file, a valid spec is in it, so nothing is looked up."""
    nb = load(odd[1])
    monkeypatch.setattr(api, "NUM_CELLS", len(nb.fixed_statistics))
    monkeypatch.setattr(api.ModelSpec, "hash_spec", lambda *a: pytest.fail("hashed"))
    assert nb.is_valid(api.ModelSpec(np.eye(3, k=1, dtype=int), ["input", "maxpool3x3", "output"])) is True


def test_keys_that_are_no_hash_of_the_file_are_not_in_it(odd, reference):
    nb = load(odd[1])
    h = next(iter(reference.fixed))
    for k in ("0" * 32, "", 5, None, h.encode(), (h,), h.upper(), h[:31], h + "0", h[:31] + "\0", " " + h[1:]):
        assert k not in nb.fixed_statistics and k not in nb.computed_statistics
        with pytest.raises(KeyError):
            nb.computed_statistics[k]


def test_a_file_in_hash_order_finds_every_cell(demo_h5):
    with h5py.File(demo_h5) as f:
        hashes, ops = f["hash"][:].astype("U32"), f["operations"][:]
    assert list(hashes) == sorted(hashes)
    nb = load(demo_h5)
    assert list(nb.hash_iterator()) == hashes.tolist()
    for k in range(0, len(hashes), 7):
        got = nb.fixed_statistics[hashes[k]]["module_operations"]
        assert got == [nb101_cell.LABEL_TO_OP[x] for x in ops[k, : len(got)].tolist()]


def test_answers_are_new_objects(odd, reference):
    nb = load(odd[1])
    h = next(iter(reference.fixed))
    for fixed in (nb.fixed_statistics[h], nb.get_metrics_from_hash(h)[0], nb.query(reference.spec(h))):
        fixed["module_adjacency"][0, 0] = 9
        fixed["module_operations"].append("x")
    nb.computed_statistics[h][108].clear()
    assert_same(nb.get_metrics_from_hash(h), (reference.fixed[h], reference.computed[h]))


def test_evaluate_says_how_to_train_the_cell_here(odd, tmp_path):
    nb = load(odd[1])
    m = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    with pytest.raises(NotImplementedError) as e:
        nb.evaluate(api.ModelSpec(m, ["input", "maxpool3x3", "output"]), str(tmp_path / "model"))
    cell = json.dumps({"adjacency": m, "ops": ["input", "maxpool3x3", "output"]})
    assert f"save {cell} as cell.json" in str(e.value) and "python trainer.py --arch cell.json" in str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "model").exists()


def test_imports_neither_torch_nor_tensorflow_from_any_folder(tmp_path):
    code = (
        "import sys; from nasbench import api; from nasbench.lib import config, graph_util, model_spec;"
        "print(api.__file__, sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert run.stdout == f"{REPO / 'nasbench' / 'api.py'} []\n"


# ----------------------------------------------------------------------------- the real 20k file


@pytest.fixture(scope="module")
def real_reference():
    return Reference(require(REAL_TFRECORD))


@pytest.mark.slow  # ~6 s: 80,004 records decoded one by one, 20,001 cells compared
def test_real_file_answers_as_nb101_does(real_h5, real_reference):
    """One repeat: each query draws randint(0, 0); test accuracies and halfway values are unset, so 0.0."""
    ref = real_reference
    nb = load(real_h5, seed=2)
    assert list(nb.valid_epochs) == list(ref.valid_epochs) and list(nb.hash_iterator()) == list(ref.fixed)
    for h in ref.fixed:
        assert_same(nb.get_metrics_from_hash(h), (ref.fixed[h], ref.computed[h]), h)
    hashes = list(ref.fixed)[::40]
    got = [nb.query(ref.spec(h), epochs=e, stop_halfway=half) for h in hashes for e in EPOCHS for half in (0, 1)]
    random.seed(2)
    want = [ref.query(h, e, half) for h in hashes for e in EPOCHS for half in (0, 1)]
    assert_same(got, want)
    assert {w["test_accuracy"] for w in want} == {0.0} and {w["train_accuracy"] for w in want[1::2]} == {0.0}


@pytest.mark.slow  # ~4 s: random cells drawn until one is in the file, ~20 draws each
def test_drawing_random_cells_until_valid_works_on_the_real_file(real_h5, real_reference):
    """As BANANAS's Cell.random_cell does: random 7-vertex specs until is_valid, then queries of each."""
    nb = load(real_h5, seed=0)
    rng = np.random.RandomState(0)
    drawn = 0
    for _ in range(10):
        while True:
            drawn += 1
            matrix = np.triu(rng.choice([0, 1], size=(7, 7)), 1)
            spec = api.ModelSpec(matrix, ["input", *rng.choice(OPS, 5).tolist(), "output"])
            if nb.is_valid(spec):
                break
        h = spec.hash_spec(OPS)
        assert h in real_reference.fixed
        assert nb.query(spec)["validation_accuracy"] == real_reference.computed[h][108][0]["final_validation_accuracy"]
    assert drawn > 50  # most draws were cells the file lacks


@pytest.mark.slow  # ~4 s: the real TFRecord converted into the cache
def test_the_real_tfrecord_answers_as_its_hdf5(real_h5, tmp_path, monkeypatch):
    monkeypatch.setenv("NB101_NASBENCH_CACHE", str(tmp_path))
    from_record, from_h5 = load(REAL_TFRECORD), load(real_h5)
    for h in list(from_h5.hash_iterator())[::97]:
        assert_same(from_record.get_metrics_from_hash(h), from_h5.get_metrics_from_hash(h))
