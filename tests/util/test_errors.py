"""lib/util/errors.py: how a script ends. A user's mistake and a signal each end it with one line on stderr and
their own exit status; what a signal interrupts is let go (a `finally` runs, a progress bar closes) before
that line; a signal inside deferred_signals waits for the block's end. (Signals sent to real processes of
every script: tests/test_signals.py.)"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from lib.util.errors import UserError, deferred_signals, exit_on_user_error


def ended(capsys, main, *args) -> tuple[int, str]:
    """(exit status, stderr) of exit_on_user_error("prog", main, *args)."""
    with pytest.raises(SystemExit) as e:
        exit_on_user_error("prog", main, *args)
    return e.value.code, capsys.readouterr().err


def signalled(sig: int):
    def main():
        os.kill(os.getpid(), sig)  # delivered in this, the main thread, at once
        raise AssertionError("not interrupted")

    return main


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_is_one_line_and_128_plus_its_number(capsys, sig):
    assert ended(capsys, signalled(sig)) == (128 + sig, f"prog: error: interrupted by {signal.Signals(sig).name}\n")


def test_the_handlers_of_before_are_back_after_main():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert exit_on_user_error("prog", lambda: 7) == 7
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_user_error_is_one_line_and_status_2(capsys):
    def main():
        raise UserError("--epochs 0:\n  must be at least 1")

    assert ended(capsys, main) == (2, "prog: error: --epochs 0: must be at least 1\n")


def test_a_library_that_raises_a_plain_keyboard_interrupt_for_sigterm_is_told_apart(capsys):
    """Ray's waits answer any signal with KeyboardInterrupt() of their own: the signal that came is what counts."""

    def main():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # what the library raises in its place

    assert ended(capsys, main) == (143, "prog: error: interrupted by SIGTERM\n")


def test_what_the_interruption_left_mid_way_ends_before_the_last_line(capsys):
    """A generator left suspended by the interruption (a pool of workers, a progress bar) runs its `finally`
    before the script's line, not after it at the interpreter's exit."""

    def work():
        try:
            yield 1
            yield 2
        finally:
            print("stopped the workers", file=sys.stderr)

    def main():
        bar = work()  # a local, as a progress bar is
        for _ in bar:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt as e:
                caught = e  # noqa: F841 - a frame that keeps its exception: a cycle, which only gc would break
                raise

    assert ended(capsys, main) == (143, "stopped the workers\nprog: error: interrupted by SIGTERM\n")


def test_a_signal_inside_deferred_signals_waits_for_the_end_of_the_block(capsys):
    done = []

    def main():
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("written whole")

    assert ended(capsys, main) == (130, "prog: error: interrupted by SIGINT\n")
    assert done == ["written whole"]
