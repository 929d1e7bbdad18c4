"""How every script ends when it cannot finish: a user's mistake, or SIGINT / SIGTERM.

    from lib.util.errors import ArgumentParser, UserError, exit_on_user_error
    raise UserError("--epochs 0: must be at least 1")          # anywhere, for a mistake of the user's
    p = ArgumentParser(description=...)                        # its errors are UserErrors too

    if __name__ == "__main__":
        exit_on_user_error("train.py", main)                   # one line on stderr, exit status 2 (130, 143)

Bad input raises UserError (or a subclass that names the kind: a damaged record, a foreign data
file, an invalid cell); the script prints `script: error: message` and exits with USAGE_ERROR, the
status argparse gives for bad arguments. Every other exception is a bug and keeps its traceback.

While main runs, SIGINT (Ctrl-C) and SIGTERM raise Interrupted in the main thread, so that every
`finally` and context manager on the way out runs (worker processes and trials are stopped, temp
files removed); the script then prints `script: error: interrupted by SIGTERM[; how to continue]` and
exits with 128 + the signal's number (130, 143). Code that can say how to continue catches the
interruption and raises interrupted(e, hint); what must be written whole is written inside
deferred_signals(). Before that last line, what the exception's frames still hold is let go (let_go):
a progress bar prints its last state above it, not below.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import traceback
from contextlib import contextmanager

USAGE_ERROR = 2
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UserError(Exception):
    """A mistake of the user's (bad argument, input or output path): one line, exit status 2."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which (the exit status is 128 + signum), `hint` how to continue."""

    def __init__(self, signum: int = signal.SIGINT, hint: str = ""):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.hint = signum, hint


def interrupted(e: KeyboardInterrupt, hint: str) -> Interrupted:
    """The interruption `e` (Interrupted, or a plain KeyboardInterrupt: Ctrl-C's, or one that a library raised
    in place of ours, as Ray's waits do), saying how to continue."""
    return Interrupted(getattr(e, "signum", None) or _state["last"] or signal.SIGINT, hint)


def one_line(message: object) -> str:
    """The message with every run of whitespace, newlines included, made one space."""
    return " ".join(str(message).split())


def first_line(e: BaseException, width: int = 160) -> str:
    """An exception as `Type: its first line`, without terminal colour codes, at most `width` characters:
    the reason a library gives, for a message of ours (torch's and pickle's run to many lines)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= width else text[: width - 3] + "..."


def exit_on_user_error(prog: str, main, *args):
    """main(*args), with a UserError printed as one line on stderr and exit status USAGE_ERROR, and SIGINT or
    SIGTERM as one line and exit status 128 + the signal's number."""
    with stop_on_signals():
        try:
            return main(*args)
        except UserError as e:
            message, status = one_line(e), USAGE_ERROR
            let_go(e)
        except KeyboardInterrupt as e:
            stop = interrupted(e, getattr(e, "hint", ""))
            hint = f"; {stop.hint}" if stop.hint else ""
            message, status = f"interrupted by {signal.Signals(stop.signum).name}{hint}", 128 + stop.signum
            let_go(e)
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(status)


def let_go(e: BaseException) -> None:
    """Clear the frames of e's tracebacks (its cause and context included): what they held goes now, not at
    the interpreter's exit, so a progress bar closes (and prints its last state) before the script's last line,
    and a generator left mid-way runs its `finally`."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        e = e.__cause__ or e.__context__


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose mistakes are UserErrors: one line like every other, no usage dump."""

    def error(self, message: str):
        raise UserError(message)


# ----------------------------------------------------------------------------- signals

_state = {"defer": 0, "pending": None, "last": None}  # "last": the signal that last raised Interrupted


def _on_signal(signum, frame) -> None:
    _state["last"] = signum
    if _state["defer"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise Interrupted while inside; the previous handlers come back after.

    Outside the main thread (signals cannot be caught there) it does nothing."""
    with own_signal_handlers():  # the handlers of before come back on leaving
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, _on_signal)
        yield


@contextmanager
def deferred_signals():
    """A signal arriving inside is raised on leaving, so what is written inside is written whole."""
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
        if not _state["defer"] and _state["pending"] is not None:  # the outermost raises it
            pending, _state["pending"] = _state["pending"], None
            raise Interrupted(pending)


@contextmanager
def own_signal_handlers():
    """Inside, a library may install handlers of its own (ray.init sets one for SIGTERM that exits, and a
    native one that dumps a stack); on leaving, the handlers of before are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)
