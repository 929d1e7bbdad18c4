"""The one convention for user mistakes in every script.

    from lib.util.errors import ArgumentParser, UserError, exit_on_user_error
    raise UserError("--epochs 0: must be at least 1")          # anywhere, for a mistake of the user's
    p = ArgumentParser(description=...)                        # its errors are UserErrors too

    if __name__ == "__main__":
        exit_on_user_error("train.py", main)                   # one line on stderr, exit status 2

Bad input raises UserError (or a subclass that names the kind: a damaged record, a foreign data
file, an invalid cell); the script prints `script: error: message` and exits with USAGE_ERROR, the
status argparse gives for bad arguments. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys

USAGE_ERROR = 2


class UserError(Exception):
    """A mistake of the user's (bad argument, input or output path): one line, exit status 2."""


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
    """main(*args), with a UserError printed as one line on stderr and exit status USAGE_ERROR."""
    try:
        return main(*args)
    except UserError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose mistakes are UserErrors: one line like every other, no usage dump."""

    def error(self, message: str):
        raise UserError(message)
