"""The converter's worker pool at real sizes: seeded random damage anywhere in the real 20k-cell file,
the check of the framing and CRCs that comes before any decoding, a worker that dies or fails,
errors that cross the process boundary. Every run is bounded: a subprocess timeout or
pytest-timeout, so a hang fails instead of stalling the suite.
(tests/test_converter.py runs every kind of bad input through the pool too.)"""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REAL_TFRECORD, REPO, require, run_main

from lib.tfrecord import chunks as nb101_chunks
from lib.tfrecord import convert as nb101_convert
from lib.tfrecord import crc32c_numpy
from lib.tfrecord import records as R
from lib.util.errors import USAGE_ERROR
from tools import make_demo_data as demo
from tools import nasbench_tfrecord_converter as C

SCRIPT = REPO / "tools" / "nasbench_tfrecord_converter.py"
KINDS = ("flip", "zero run", "cut", "cut out", "insert")
PREVIOUS = b"the previous output"


@pytest.fixture(scope="module")
def real_bytes():
    """The real file's bytes and the set of its record starts (plus its end)."""
    data = require(REAL_TFRECORD).read_bytes()
    starts = {offset for _, offset, _ in R.read_tfrecord(REAL_TFRECORD)} | {len(data)}
    return data, starts


def damage(data: bytes, starts: set[int], kind: str, rng: np.random.Generator) -> bytes:
    """One random damage of `kind`. Cuts never fall on record boundaries at both ends: that leaves
    a valid file of fewer records, which no format check can tell from a smaller file."""
    size = len(data)
    while True:
        pos = int(rng.integers(0, size))
        if kind == "flip":
            return data[:pos] + bytes([data[pos] ^ int(rng.integers(1, 256))]) + data[pos + 1 :]
        n = int(rng.integers(1, 4097))
        if kind == "zero run":
            new = data[:pos] + bytes(min(n, size - pos)) + data[pos + n :]
        elif kind == "cut":
            new = data[:pos] if pos not in starts else data
        elif kind == "cut out":
            new = data[:pos] + data[pos + n :] if not (pos in starts and min(pos + n, size) in starts) else data
        else:  # insert
            new = data[:pos] + rng.integers(0, 256, int(rng.integers(1, 65)), np.uint8).tobytes() + data[pos:]
        if new != data:
            return new


def first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.frombuffer(a, np.uint8, n) != np.frombuffer(b, np.uint8, n))
    return int(diff[0]) if len(diff) else n


def expected_error(path: Path, starts: list[int], new: bytes, data: bytes) -> str:
    """The record holding the first changed byte is the first bad one, and only a CRC (or the
    framing) can tell: every byte of a TFRecord file is under one."""
    i = int(np.searchsorted(starts, first_difference(new, data), side="right")) - 1
    return f"{C.PROG}: error: {path}: record {i} at byte {starts[i]}: "


def assert_failed_cleanly(err: str, want: str, out: Path) -> None:
    assert err.count("\n") == 1 and err.startswith(want), (want, err)
    assert "CRC mismatch" in err or "truncated record" in err, err
    assert out.read_bytes() == PREVIOUS and sorted(out.parent.iterdir()) == [out]  # untouched, no temp file


def previous_output(tmp_path: Path) -> Path:
    out = tmp_path / "out" / "nasbench.hdf5"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(PREVIOUS)
    return out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_random_damage_anywhere_in_the_real_file_is_caught_by_the_pool(tmp_path, real_bytes, capsys):
    """25 seeded damages (5 of each kind), each through the CLI's main() with a pool of 2 workers and
    1 MiB tasks, so the damage lands in a range a worker decodes."""
    data, starts = real_bytes
    order = sorted(starts)
    bad, out, rng = tmp_path / "bad.tfrecord", previous_output(tmp_path), np.random.default_rng(0)
    seconds = []
    for k in range(25):
        new = damage(data, starts, KINDS[k % len(KINDS)], rng)
        bad.write_bytes(new)
        t0 = time.perf_counter()
        rc = run_main(C.PROG, C.main, "--input", bad, "--output", out, "--workers", 2, "--chunk-bytes", 1 << 20)
        seconds.append(time.perf_counter() - t0)
        assert rc == USAGE_ERROR, KINDS[k % len(KINDS)]
        assert_failed_cleanly(capsys.readouterr().err, expected_error(bad, order, new, data), out)
    print(f"slowest error {max(seconds):.2f} s, mean {np.mean(seconds):.2f} s, load {os.getloadavg()}")
    assert max(seconds) < 30


@pytest.mark.parametrize(
    "where, change",
    [
        ("byte 5,000,000 zeroed", lambda d: d[:5_000_000] + b"\0" + d[5_000_001:]),
        ("first byte flipped", lambda d: bytes([d[0] ^ 1]) + d[1:]),
        ("last byte cut", lambda d: d[:-1]),
        ("bytes inserted near the end", lambda d: d[:-100] + b"\x07" * 3 + d[-100:]),
    ],
)
@pytest.mark.slow
def test_damaged_real_file_through_the_command_line(tmp_path, real_bytes, where, change):
    """The real command, default options (a pool from 16 MiB on): one line, exit 2, within seconds."""
    data, starts = real_bytes
    bad, out = tmp_path / "bad.tfrecord", previous_output(tmp_path)
    new = change(data)
    bad.write_bytes(new)
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, SCRIPT, "--input", bad, "--output", out], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == USAGE_ERROR and time.perf_counter() - t0 < 30, where
    assert_failed_cleanly(run.stderr, expected_error(bad, sorted(starts), new, data), out)


# ----------------------------------------------------------------------------- framing and CRCs first


@pytest.fixture(scope="module")
def demo_bytes(space, tmp_path_factory):
    """A demo file of 480 records (~195 kB): its bytes, and the start of each record plus its end."""
    src = tmp_path_factory.mktemp("demo") / "demo.tfrecord"
    demo.write_demo(src, demo.choose_cells(space, 40, seed=0))
    return src.read_bytes(), [offset for _, offset, _ in R.read_tfrecord(src)] + [src.stat().st_size]


LAST_RECORD_DAMAGE = {  # (the file with its last record, at offset o, damaged; what the error says)
    "data byte flipped": (lambda d, o: d[:-20] + bytes([d[-20] ^ 4]) + d[-19:], "data CRC mismatch"),
    "length byte flipped": (lambda d, o: d[: o + 1] + bytes([d[o + 1] ^ 1]) + d[o + 2 :], "length CRC mismatch"),
    "length made huge": (lambda d, o: d[: o + 7] + b"\x7f" + d[o + 8 :], "length CRC mismatch"),
    "zeroed run": (lambda d, o: d[: o + 5] + bytes(30) + d[o + 35 :], "length CRC mismatch"),
    "cut": (lambda d, o: d[:-7], "truncated record"),
    "bytes inserted": (lambda d, o: d[: o + 40] + b"xyz" + d[o + 40 :], "data CRC mismatch"),
}


def no_decoding(*args):
    raise AssertionError("a range was decoded before every range was checked")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", ["2", "1"])
@pytest.mark.parametrize("kind", LAST_RECORD_DAMAGE)
def test_damage_in_the_last_range_fails_before_any_range_is_decoded(
    tmp_path, demo_bytes, capsys, monkeypatch, kind, workers
):
    """~100 ranges of 2 kB, the last one damaged: the check names it and nothing is decoded (decoding
    would fail with another message), in a pool or in this process."""
    data, starts = demo_bytes
    change, why = LAST_RECORD_DAMAGE[kind]
    bad, out = tmp_path / "bad.tfrecord", previous_output(tmp_path)
    bad.write_bytes(change(data, starts[-2]))
    monkeypatch.setattr(nb101_chunks, "decode_range", no_decoding)  # before the pool forks
    monkeypatch.setattr(nb101_convert, "POOL_BYTES", len(data) // 2)  # a large file: checked first in any case
    rc = run_main(C.PROG, C.main, "--input", bad, "--output", out, "--workers", workers, "--chunk-bytes", 2000)
    assert rc == USAGE_ERROR
    err = capsys.readouterr().err
    want = f"{C.PROG}: error: {bad}: record {len(starts) - 2} at byte {starts[-2]}: "
    assert err.count("\n") == 1 and err.startswith(want), err
    assert why in err, err
    assert out.read_bytes() == PREVIOUS and sorted(out.parent.iterdir()) == [out]


def test_a_sound_file_is_checked_whole_then_decoded_without_crcs(tmp_path, demo_bytes, monkeypatch):
    """Every range is checked before the first is decoded, each in one crc32c pass (no per-record
    reference walk), and the decoding, told the CRCs are checked, gives the same HDF5."""
    data, _ = demo_bytes
    src = tmp_path / "demo.tfrecord"
    src.write_bytes(data)
    events = []
    check_range, decode_range = nb101_chunks.check_range, nb101_chunks.decode_range

    def check(path, start, *rest):
        events.append(("check", start))
        return check_range(path, start, *rest)

    def decode(path, start, end, first_index, starts, crcs_checked=False):
        events.append(("decode", start, crcs_checked))
        return decode_range(path, start, end, first_index, starts, crcs_checked)

    all_crcs_match, passes = crc32c_numpy.all_crcs_match, []

    def one_pass(*args):  # False would send the range through the per-record walk
        passes.append(all_crcs_match(*args))
        return passes[-1]

    monkeypatch.setattr(nb101_chunks, "check_range", check)
    monkeypatch.setattr(nb101_chunks, "decode_range", decode)
    monkeypatch.setattr(crc32c_numpy, "all_crcs_match", one_pass)
    nb101_convert.convert(src, tmp_path / "checked.hdf5", workers=1, chunk_bytes=2000, check_first=True)
    checks, decodes = [e for e in events if e[0] == "check"], [e for e in events if e[0] == "decode"]
    assert len(checks) == len(decodes) > 90 and events[: len(checks)] == checks  # all checks come first
    assert passes == [True] * len(checks)
    assert [e[1] for e in checks] == [e[1] for e in decodes] and all(e[2] for e in decodes)
    monkeypatch.undo()
    nb101_convert.convert(src, tmp_path / "plain.hdf5", workers=1, chunk_bytes=2000, check_first=False)
    with h5py.File(tmp_path / "checked.hdf5") as a, h5py.File(tmp_path / "plain.hdf5") as b:
        assert sorted(a) == sorted(b) and dict(a.attrs).keys() == dict(b.attrs).keys()
        for name in a:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


@pytest.mark.parametrize("chunk_bytes", [pytest.param(1, marks=pytest.mark.slow), 3000, 1 << 30])  # 1: ~5 s
def test_the_check_finds_what_the_reference_reader_finds(tmp_path, demo_bytes, chunk_bytes):
    """100 seeded damages of every kind: the first error of the ranges' checks, in file order, is
    read_tfrecord's, word for word, and a sound file checks out."""
    data, starts = demo_bytes
    bad, rng = tmp_path / "bad.tfrecord", np.random.default_rng(1)
    for k in range(101):
        new = damage(data, set(starts), KINDS[k % len(KINDS)], rng) if k else data
        bad.write_bytes(new)
        want = None
        try:
            for _ in R.read_tfrecord(bad):
                pass
        except R.RecordError as e:
            want = str(e)
        plan = nb101_chunks.plan_chunks(str(bad), len(new), chunk_bytes)
        got = next((str(e) for r in plan if (e := nb101_chunks.check_range(str(bad), *r))), None)
        assert got == want and (want is None) == (k == 0), (KINDS[k % len(KINDS)], got, want)


def test_a_damaged_length_ends_the_plan_at_its_header(tmp_path, demo_bytes):
    """A length that leads far away (here past the end) is not followed: the last range ends at the
    damaged header, instead of taking in the rest of the file."""
    data, starts = demo_bytes
    o = starts[50]
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(data[: o + 7] + b"\x7f" + data[o + 8 :])
    plan = list(nb101_chunks.plan_chunks(str(bad), len(data), 3000))
    assert plan[-1][1] == o + R.HEADER and max(end - start for start, end, *_ in plan) < 2 * 3000
    assert str(nb101_chunks.check_range(str(bad), *plan[-1])).startswith(f"{bad}: record 50 at byte {o}: length CRC")


def test_a_file_changed_after_its_check_is_not_converted(tmp_path, demo_bytes):
    """The decoding leaves the CRCs to the check, so a file changed in between is an error."""
    data, _ = demo_bytes
    src = tmp_path / "demo.tfrecord"
    src.write_bytes(data)

    def touch(end):
        if end == len(data):  # the last range checked out: the file changes before it is decoded
            st = src.stat()
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    parts = nb101_chunks.decode_parts(str(src), len(data), 20_000, 2, check_first=True, on_checked=touch)
    with pytest.raises(R.RecordError, match="the file changed while it was read"):
        list(parts)


# ----------------------------------------------------------------------------- workers that die or fail

# The converter with TARGET (decode_range or check_range) replaced, before the pool forks: the
# worker of every range but the first one meets FAULT.
FAULTY_WORKER = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal, whatever the runner's parent ignores
from lib.tfrecord import chunks as nb101_chunks
from lib.util.errors import exit_on_user_error
from tools.nasbench_tfrecord_converter import PROG, main
target = nb101_chunks.TARGET
def faulty(path, start, *rest):
    if start > 0:
        FAULT
    return target(path, start, *rest)
nb101_chunks.TARGET = faulty
sys.exit(exit_on_user_error(PROG, main, sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "target, fault, says",
    [
        ("decode_range", "os._exit(3)", "a decoding worker process died"),
        ("decode_range", "os.kill(os.getpid(), signal.SIGKILL)", "a decoding worker process died"),
        ("decode_range", "raise MemoryError('cannot allocate')", "failed in a worker: MemoryError: cannot allocate"),
        ("decode_range", "raise ZeroDivisionError('a bug')", "failed in a worker: ZeroDivisionError: a bug"),
        ("check_range", "os.kill(os.getpid(), signal.SIGKILL)", "a decoding worker process died"),
        ("check_range", "raise ZeroDivisionError('a bug')", "checking failed in a worker: ZeroDivisionError"),
    ],
)
@pytest.mark.slow
def test_a_worker_that_dies_or_fails_ends_the_run_in_one_line(tmp_path, space, target, fault, says):
    src = tmp_path / "demo.tfrecord"
    demo.write_demo(src, demo.choose_cells(space, 30, seed=0))  # 360 records, ~60 tasks of 2 kB
    out = previous_output(tmp_path)
    code = FAULTY_WORKER.replace("TARGET", target).replace("FAULT", fault)
    args = ["--input", str(src), "--output", str(out), "--workers", "2", "--chunk-bytes", "2000"]
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert run.returncode == C.WORKER_FAILED and seconds < 30, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"{C.PROG}: error: {src}: "), run.stderr
    assert says in run.stderr
    assert out.read_bytes() == PREVIOUS and sorted(out.parent.iterdir()) == [out]
    assert not [p for p in Path("/proc").glob("[0-9]*") if str(src).encode() in _cmdline(p)]  # no worker left


@pytest.mark.slow
def test_ctrl_c_stops_the_pool_and_writes_nothing(tmp_path, space):
    src = tmp_path / "demo.tfrecord"
    demo.write_demo(src, demo.choose_cells(space, 30, seed=0))
    out = previous_output(tmp_path)
    started = tmp_path / "started"
    sleepy = f"open({str(started)!r}, 'w').close(); time.sleep(0.5)"  # ~15 s in all
    code = FAULTY_WORKER.replace("TARGET", "decode_range").replace("FAULT", sleepy)
    args = ["--input", str(src), "--output", str(out), "--workers", "2", "--chunk-bytes", "2000"]
    run = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.perf_counter() + 60
    while not started.exists() and time.perf_counter() < deadline:  # the pool is at work
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    t0 = time.perf_counter()
    err = run.communicate(timeout=60)[1]
    assert run.returncode == 128 + signal.SIGINT and time.perf_counter() - t0 < 10
    assert err == f"{C.PROG}: error: interrupted by SIGINT; {out} not written\n"
    assert out.read_bytes() == PREVIOUS and sorted(out.parent.iterdir()) == [out]
    assert not [p for p in Path("/proc").glob("[0-9]*") if str(src).encode() in _cmdline(p)]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def test_record_errors_cross_the_process_boundary_whole():
    e = R.RecordError("data/x.tfrecord", 7, 1234, "data CRC mismatch")
    back = pickle.loads(pickle.dumps(e))
    assert (
        type(back) is R.RecordError
        and str(back) == str(e) == "data/x.tfrecord: record 7 at byte 1234: data CRC mismatch"
    )
    assert (back.path, back.index, back.offset, back.msg) == ("data/x.tfrecord", 7, 1234, "data CRC mismatch")
