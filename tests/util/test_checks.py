"""lib/util/checks.py: the argparse types for ranges and seeds, and the output paths checked before any work."""

import argparse
import math
import os

import pytest

from lib.util.checks import SEED, at_least, number, output_file, output_folder, same_file
from lib.util.errors import ArgumentParser, UserError


def test_at_least_and_seed_take_integers_in_range_only():
    assert at_least(1)("7") == 7 and at_least(0, 3)("3") == 3 and SEED("4294967295") == 2**32 - 1
    for parse, text, says in [
        (at_least(1), "0", "must be at least 1 (got 0)"),
        (at_least(0, 3), "4", "must be 0 to 3 (got 4)"),
        (SEED, "-1", "must be 0 to 4294967295 (got -1)"),
        (at_least(1), "1.5", "'1.5' is not an integer"),
        (at_least(1), "", "'' is not an integer"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{says.replace('(', '[(]').replace(')', '[)]')}$"):
            parse(text)


def test_number_is_finite_and_within_its_bounds():
    assert number(above=0)("1e-9") == 1e-9 and number(low=0, high=1)("1") == 1.0 and number(low=0)("-0") == 0
    for parse, text, says in [
        (number(above=0), "0", "must be > 0 (got 0)"),
        (number(low=0, below=1), "1", "must be >= 0 and < 1 (got 1)"),
        (number(low=0, high=1), "1.5", "must be >= 0 and <= 1 (got 1.5)"),
        (number(low=0), "nan", "must be a finite number (got nan)"),
        (number(), "-inf", "must be a finite number (got -inf)"),
        (number(), "x", "'x' is not a number"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as e:
            parse(text)
        assert str(e.value) == says
    assert math.isfinite(number()("1e308"))


def test_a_bad_value_is_one_usage_error_naming_the_flag():
    p = ArgumentParser(prog="x.py")
    p.add_argument("--epochs", type=at_least(1))
    with pytest.raises(UserError, match=r"^argument --epochs: must be at least 1 \(got 0\)$"):
        p.parse_args(["--epochs", "0"])


def test_output_file_refuses_folders_inputs_and_unwritable_places(tmp_path):
    (tmp_path / "in.tfrecord").write_bytes(b"data")
    os.symlink(tmp_path / "in.tfrecord", tmp_path / "link.hdf5")
    (tmp_path / "f").write_text("")
    assert output_file(tmp_path / "new" / "o.hdf5", "--output", [tmp_path / "in.tfrecord"]) == tmp_path / "new/o.hdf5"
    assert not (tmp_path / "new").exists()  # checked, not made
    for path, says in [
        (tmp_path / "in.tfrecord", "is the input"),
        (tmp_path / "sub" / ".." / "in.tfrecord", "is the input"),
        (tmp_path / "link.hdf5", "is the input"),
        (tmp_path, "is a folder (give a file name)"),
        (tmp_path / "f" / "o.hdf5", f"{tmp_path / 'f'} is a file, not a folder"),
        ("/proc/nope/o.hdf5", "cannot write in /proc"),
        ("", "--output: empty path"),
    ]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UserError, match="^--output") as e:
            output_file(path, "--output", [tmp_path / "in.tfrecord"])
        assert says in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "in.tfrecord", "link.hdf5", "sub"]  # no probe left
    assert same_file(tmp_path / "link.hdf5", tmp_path / "in.tfrecord") and not same_file(tmp_path / "none", tmp_path)


def test_output_folder_refuses_files_and_unwritable_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("")
    (tmp_path / "runs").write_text("")
    assert output_folder(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b" and not (tmp_path / "a").exists()
    assert output_folder(tmp_path, "--out") == tmp_path
    with pytest.raises(UserError, match=r"^--out .*/f: is a file, not a folder \(choose another\)$"):
        output_folder(tmp_path / "f", "--out")
    with pytest.raises(UserError, match=r"^runs: is a file, not a folder \(keep it free\)$"):
        output_folder("runs", None, "keep it free")
    with pytest.raises(UserError, match="cannot write in /proc"):
        output_folder("/proc/nope/run", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "runs"]
