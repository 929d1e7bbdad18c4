"""The strategy of a search with real training as a Ray Tune Searcher, and the callback that tells it why
a trial failed: what lib/search/ray_search.py's engine hands Tune. The searcher asks the strategy for
cells, keeps each cell in flight to one trial, writes every suggestion down (<out>/ray/<strategy>-s<seed>/
suggested.jsonl, before Tune sees it) and journals, tells and prints each finished trial once.

Ray is imported inside the functions (the classes are built on first use): the rest of the toolkit never
pays for it.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from lib.search.trials import Journal, read_metrics
from lib.util.errors import first_line, one_line

if TYPE_CHECKING:  # a trial's worker imports this module: it must not pay for torch (lib.search.trial_search's)
    from lib.search.trial_search import TrialSearch

REASK = 10  # asks for another cell when the strategy names one already in flight


@cache
def searcher_class():
    """StrategySearcher's body, built on ray.tune.search.Searcher when Ray is first needed."""
    from ray.tune.search import Searcher

    class _StrategySearcher(Searcher):
        """The strategy as a Tune Searcher. suggest() asks it for a cell (None while it waits on trials
        in flight; FINISHED once the budget is handed out), marks the cell in flight so that no other
        trial gets it, and writes the suggestion down; on_trial_complete journals the record, tells the
        strategy and prints the progress line."""

        def __init__(self, search: TrialSearch, suggested: Journal, quiet: bool = False):
            super().__init__()
            self.search, self.suggested = search, suggested
            self.live: dict[str, dict] = {}  # Tune's trial id -> its config
            self.errored: dict[str, dict] = {}  # failed for good, waiting for _TrialNotes' error line
            self.flight: set[tuple[int, int]] = set()  # (row, asked epochs) of the trials in flight
            self.pending, self.next = search.replay(suggested.records())
            self.recorded = {r["index"] for r in search.records}  # the indices journaled and told
            self.buffer: list[tuple[int, int]] = []
            self.bar = tqdm(
                total=search.trials,
                initial=len(self.recorded),
                desc=f"{search.name} s{search.seed}",
                unit="trial",
                disable=quiet,
            )

        def complete(self) -> bool:
            return len(self.recorded) >= self.search.trials

        def suggest(self, trial_id: str):
            if self.pending:  # handed out before a kill, never journaled: the same index and cell again
                config = self.pending.pop(0)
            elif self.next >= self.search.trials:
                return Searcher.FINISHED
            else:
                asked = self.ask()
                if asked is None:
                    return None  # the strategy waits for trials in flight; Tune asks again later
                config = {"index": self.next, "row": int(asked[0]), "asked_epochs": int(asked[1])}
                self.suggested.append(config)
                self.next += 1
            self.start(trial_id, config)
            job = self.search.job(config["index"], config["row"], config["asked_epochs"])  # all a worker needs
            return config | {"job": job, "epochs": self.search.trial_epochs(config["asked_epochs"])}

        def ask(self) -> tuple[int, int] | None:
            """The strategy's next (row, asked epochs) not in flight (after REASK tries, any)."""
            for _ in range(REASK):
                if not self.buffer:
                    self.buffer = list(self.search.strategy.ask())
                    if not self.buffer:
                        return None
                pair = self.buffer.pop(0)
                if pair not in self.flight:
                    return pair
            return pair

        def start(self, trial_id: str, config: dict) -> None:
            self.live[trial_id] = config
            row, asked = config["row"], config["asked_epochs"]
            self.flight.add((row, asked))
            self.search.strategy.claim(row, asked)  # no other trial gets it while it trains

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            config = self.live.pop(trial_id, None)
            if config is None:
                return
            if error:
                self.errored[trial_id] = config  # _TrialNotes.on_trial_error follows with the error
                return
            if result and result.get("trial"):
                index, row, asked = config["index"], config["row"], config["asked_epochs"]
                self.finish(self.search.record(index, row, asked, json.loads(result["trial"])))
            else:
                self.finish(stopped_record(self.search, config, result or {}))

        def fail(self, trial_id: str, error: str) -> None:
            config = self.errored.pop(trial_id, None)
            if config is not None:
                self.finish(failed_record(self.search, config, error))

        def finish(self, record: dict) -> None:
            """Journal, tell, print: once per index (a trial Tune ran again is told once)."""
            self.flight.discard((record["row"], record["asked_epochs"]))
            if record["index"] in self.recorded:
                return
            self.search.journal.append(record)
            self.search.tell(record)
            self.recorded.add(record["index"])
            self.bar.write(self.search.progress_line(record), file=sys.stdout)
            self.bar.update()

        def close(self) -> None:
            for trial_id in list(self.errored):  # no error line came: say what is known
                self.fail(trial_id, "the trial failed on Ray (no error reported)")
            self.bar.close()

        def save(self, checkpoint_path: str) -> None:
            """Tune's periodic snapshot: the journal and the suggestion log are the state (replay())."""
            Path(checkpoint_path).write_text(json.dumps({"next": self.next, "live": list(self.live.values())}))

        def restore(self, checkpoint_path: str) -> None:
            pass  # search_on_ray never calls Tuner.restore: see lib/search/ray_search.py's docstring

        def __getstate__(self):
            # Tune pickles its config (tuner.pkl) for Tuner.restore, which is not used: keep it small.
            return {"next": self.next}

    return _StrategySearcher


def stopped_record(search: TrialSearch, config: dict, result: dict) -> dict:
    """The record of a trial Tune stopped before it reported its own: its last reported epoch."""
    index, row, asked = config["index"], config["row"], config["asked_epochs"]
    trial = {"status": "stopped", "val": result.get("val"), "test": result.get("test")}
    trial |= {"epochs": int(result.get("epoch") or 0), "seconds": float(result.get("seconds") or 0.0)}
    trial |= {"error": None, "run_dir": str(search.run_dir(index, row))}
    return search.record(index, row, asked, trial)


def failed_record(search: TrialSearch, config: dict, error: str) -> dict:
    """The record of a trial that failed on Ray even after its retries (its worker died, say)."""
    index, row, asked = config["index"], config["row"], config["asked_epochs"]
    run_dir = search.run_dir(index, row)
    epochs = len((read_metrics(run_dir) or {}).get("epochs") or [])  # trained before it failed, where visible
    trial = {"status": "failed", "val": None, "test": None, "epochs": epochs, "seconds": 0.0, "error": error}
    return search.record(index, row, asked, trial | {"run_dir": str(run_dir)})


def trial_error(trial) -> str:
    """A failed Tune trial's error as one line: the exception raised in the trainable, else why its
    worker died. Read from the driver's copy of the trial's error files, which Tune has just written."""
    from ray import cloudpickle

    try:
        with open(trial.pickled_error_file, "rb") as f:
            error = cloudpickle.load(f)
    except Exception:  # none written, or not unpicklable here: the text version
        try:
            text = Path(trial.error_file).read_text().split("\n", 2)  # "Failure # n (occurred at ...)", error
            return one_line(text[1]) if len(text) > 1 and text[1].strip() else "the trial failed on Ray"
        except Exception:
            return "the trial failed on Ray"
    cause = getattr(error, "cause", None)
    return first_line(cause if isinstance(cause, BaseException) else error)


@cache
def notes_class():
    from ray.tune import Callback

    class _TrialNotes(Callback):
        """Tune tells a searcher that a trial failed, not why: this callback, told right after,
        journals it with its error line. A failure Tune retries is one line on the console."""

        def __init__(self, searcher, max_failures: int):
            self.searcher, self.max_failures = searcher, max_failures

        def on_trial_error(self, iteration, trials, trial, **info):
            self.searcher.fail(trial.trial_id, trial_error(trial))

        def on_trial_recover(self, iteration, trials, trial, **info):
            s, index = self.searcher.search, trial.config.get("index", -1)
            n = trial.run_metadata.num_failures
            self.searcher.bar.write(
                f"{s.name} s{s.seed} trial {index + 1}/{s.trials}: {trial_error(trial)}; "
                f"running it again (failure {n} of {self.max_failures} allowed)",
                file=sys.stdout,
            )

    return _TrialNotes
