"""The tasks of tests/util/test_workers.py, in a module of their own that imports nothing heavy: a spawned
worker imports the module of its task, and this one costs it no torch to import and to tear down."""

import os
import signal
import time


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"no {x}")
    return x


def die_on_three(x):
    if x == 3:
        os._exit(7)
    return x


def kill_self_on_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


SEEN = []  # what init saw, where it ran


def remember(tag):
    SEEN.append((tag, os.getpid()))


def pid_and_init(x):
    return os.getpid(), list(SEEN)


def stubborn(x):
    """Task 0 at once; any other never ends, and ignores SIGTERM."""
    if x:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)
    return x
