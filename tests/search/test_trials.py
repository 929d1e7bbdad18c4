"""lib/search/trials.py: a trial's trainer that writes much never stalls, and a pick's training that
fails reaches the user in one line."""

import sys
from pathlib import Path

import pytest

from lib.search.trials import run_trial, train_pick
from lib.util.errors import UserError


def test_a_trainer_that_writes_much_to_stderr_never_stalls(tmp_path: Path):
    """Progress bars of a long trial fill any pipe; the trial still ends, and its error line is found."""
    noisy = tmp_path / "noisy.py"
    noisy.write_text(
        "import sys\nfor i in range(20000):\n    print(f'epoch 1/1 {i} ' + '█' * 40, file=sys.stderr)\n"
        "print('trainer.py: error: out of memory', file=sys.stderr)\nsys.exit(2)\n"
    )
    trial = run_trial([sys.executable, str(noisy)], ([[0, 1], [0, 0]], ["input", "output"]), tmp_path / "run")
    assert trial["status"] == "failed" and trial["error"] == "out of memory"


def test_a_failed_training_of_the_pick_is_one_line(capfd):
    """train_pick runs the command in the foreground: it says what it runs, and a failure (an error exit,
    a signal) ends the search in one line below the trainer's own error."""
    python = [sys.executable, "-c"]
    train_pick([*python, "print('trained')"])
    assert capfd.readouterr().out.splitlines()[-1] == "trained"
    with pytest.raises(UserError, match=r"^trainer.py exited with status 2 \(its error is above\)$"):
        train_pick([*python, "import sys; sys.exit(2)"])
    with pytest.raises(UserError, match=r"^trainer.py was killed by signal 9 \(SIGKILL\)$"):
        train_pick([*python, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
