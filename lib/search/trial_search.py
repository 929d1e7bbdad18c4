"""A search whose queries are real trainings (lib/search/trials.py): a strategy (lib/search/strategies.py)
asks for cells of the NB101 space, each is trained as a trial, and the strategy is told its validation
accuracy. The local engine runs the trials one after another in this process's care;
lib/search/ray_search.py runs them side by side on Ray Tune. Both keep the same journal and trial folders:

    <out>/trials/<strategy>-s<seed>/<index>-<hash8>/   a trial's run folder (trainer.py's metrics.json ...)
    <out>/trials.jsonl                                 each finished trial, one line, in the order told

--resume replays the journal into a new strategy of the same seed: it asks again, is told the
recorded result, and so reaches the state it had; the trials after it are then trained (a trial cut
short continues from its checkpoint, one that had ended is read from its folder, never trained twice).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lib.nb101.cell import cell_from_row, short_ops
from lib.nb101.schema import EPOCHS
from lib.nb101.space import space_hashes
from lib.search.ask_tell import Strategy
from lib.search.report import Trace, Truth, pool_summary, summarize
from lib.search.trials import Journal, run_job
from lib.util.errors import UserError

FIRST_FAILURES = 3  # this many first trials failing alike stop the search


class TrialSetupError(UserError):
    """Trials that cannot succeed, whatever the cell: the trial flags or the data are at fault."""


def measured(record: dict) -> float | None:
    """A trial's validation accuracy, None where it has none (it failed)."""
    return None if record["status"] == "failed" else record["val"]


def best_record(records: list[dict]) -> dict | None:
    """The trial with the best accuracy at the most epochs asked: the incumbent, top1.json's cell."""
    done = [r for r in records if measured(r) is not None]
    return max(done, key=lambda r: (r["asked_epochs"], r["val"])) if done else None


@dataclass
class TrialSearch:
    """One strategy and seed searching with real training: what the engines share."""

    name: str  # the strategy's
    seed: int
    strategy: Strategy
    trials: int  # the budget, in trials
    trainer: list[str]  # python trainer.py + the flags of every trial (the network, the data)
    out: Path
    epochs: int  # a full trial's epochs (the strategy asks for NB101's epochs; 108 is the full trial)
    threads: int = 1  # CPU threads per trial
    records: list[dict] = field(default_factory=list)  # the finished trials told to the strategy, in order

    @property
    def journal(self) -> Journal:
        return Journal(self.out / "trials.jsonl")

    def cell(self, row: int) -> tuple[list[list[int]], list[str]]:
        c = self.strategy.pool.cells
        cell = cell_from_row(c["adjacency"][row], c["operations"][row], c["num_vertices"][row])
        return cell.matrix.tolist(), list(cell.ops)

    def trial_epochs(self, asked: int) -> int:
        """NB101's epochs a strategy asks for (4, 12, 36 or 108) as the same share of a full trial's epochs."""
        return max(1, round(self.epochs * asked / EPOCHS[-1]))

    def hash(self, row: int) -> str:
        return str(space_hashes(self.strategy.pool.cells, [row])[0])

    def run_dir(self, index: int, row: int) -> Path:
        return self.out / "trials" / f"{self.name}-s{self.seed}" / f"{index:04d}-{self.hash(row)[:8]}"

    def job(self, index: int, row: int, asked: int) -> dict:
        """What training trial `index` takes (lib.search.trials.run_trial's arguments), as plain data: an
        engine may send it to another process, which needs nothing else of the search."""
        trainer = self.trainer + ["--epochs", str(self.trial_epochs(asked))]
        adjacency, ops = self.cell(row)
        run_dir = str(self.run_dir(index, row).resolve())
        return {"trainer": trainer, "cell": [adjacency, ops], "run_dir": run_dir, "threads": self.threads}

    def run(self, index: int, row: int, asked: int, on_epoch=None) -> dict:
        """Train trial `index` (cell `row` for the share of a full trial's epochs asked) and return its
        journal record."""
        trial = run_job(self.job(index, row, asked), on_epoch)
        return self.record(index, row, asked, trial)

    def record(self, index: int, row: int, asked: int, trial: dict) -> dict:
        """The journal's line: which search, which cell, what it scored."""
        adjacency, ops = self.cell(row)
        return {"strategy": self.name, "seed": self.seed, "index": index, "row": int(row), "hash": self.hash(row)} | {
            "asked_epochs": asked,
            "adjacency": adjacency,
            "ops": ops,
            **trial,
        }

    def tell(self, record: dict) -> None:
        """The strategy learns the trial's accuracy (NaN: failed); the record joins `records`."""
        val = measured(record)
        self.strategy.tell(record["row"], record["asked_epochs"], math.nan if val is None else val)
        self.records.append(record)

    def check_not_all_failing(self) -> None:
        """The first FIRST_FAILURES trials failing with one error say the trial setup is wrong, not the
        cells: stop the search with that error rather than fail every trial of the budget."""
        opening = self.records[:FIRST_FAILURES]
        errors = {r["error"] for r in opening if r["status"] == "failed"}
        if len(opening) == FIRST_FAILURES and len(errors) == 1 and all(r["status"] == "failed" for r in opening):
            raise TrialSetupError(f"the first {FIRST_FAILURES} trials all failed: {errors.pop()}")

    def replay(self, handed: list[dict] = ()) -> tuple[list[dict], int]:
        """Tell the fresh strategy what the journal holds of this search, in index order: it is asked once
        per index, as it was, and told the journaled trials. `handed` (Ray's log of the trials it handed
        out) adds those never journaled, claimed as in flight. A strategy asking another cell than the
        journal's (a predictor that fits otherwise on another machine) is told the journal's anyway.
        Returns the handed-out trials never journaled (to hand out again, same index and cell) and the
        next index to ask for."""
        done = {r["index"]: r for r in self.journal.records() if r["strategy"] == self.name and r["seed"] == self.seed}
        handed = {c["index"]: c for c in handed}
        for index in sorted(set(done) | set(handed)):
            self.strategy.ask()
            if index in done:
                self.tell(done[index])
            else:
                self.strategy.claim(handed[index]["row"], handed[index]["asked_epochs"])
        pending = [handed[i] for i in sorted(set(handed) - set(done))]
        return pending, max([*done, *handed], default=-1) + 1

    def progress_line(self, r: dict) -> str:
        """One line per finished trial: the cell, its accuracy, its time, the best so far."""
        b = best_record(self.records)
        what = f"val {100 * r['val']:.2f}%" if r["val"] is not None else f"FAILED ({r['error']})"
        if r["status"] == "stopped":
            what += f" (stopped after {r['epochs']} epochs)"
        best = f"best {100 * b['val']:.2f}% (trial {b['index'] + 1})" if b else "best -"
        trial = f"trial {r['index'] + 1}/{self.trials} {r['hash'][:8]} [{short_ops(r['ops'])}]"
        return f"{self.name} s{self.seed} {trial} {what} in {r['seconds']:.1f} s | {best}"


def search_locally(search: TrialSearch, quiet: bool = False) -> list[dict]:
    """Ask, train, tell, one trial at a time, until the budget of trials is spent (after --resume:
    what the journal lacks). Returns every record of this search, in order."""
    _, index = search.replay()  # after Ray's engine, indices may have gaps
    desc = f"{search.name} s{search.seed}"
    bar = tqdm(total=search.trials, initial=len(search.records), desc=desc, unit="trial", disable=quiet)
    while len(search.records) < search.trials:
        asked_now = search.strategy.ask()
        if not asked_now:  # only a strategy waiting on trials in flight asks nothing; none are here
            raise RuntimeError(f"{search.name} asked for no cell with no trial in flight")
        for row, asked in asked_now[: search.trials - len(search.records)]:
            record = search.run(index, row, asked)
            search.journal.append(record)
            search.tell(record)
            bar.write(search.progress_line(record), file=sys.stdout)
            bar.update()
            search.check_not_all_failing()
            index += 1
    bar.close()
    return search.records


def trials_summary(records: dict[str, list[list[dict]]]) -> tuple[dict, dict]:
    """budget.json's pool and per-strategy results for searches with real training ({strategy: [each
    seed's records]}), through lib/search/report's summarize: the "pool" is every cell trained, its truth
    the validation accuracy measured (0 for a cell whose trials all failed), the cost each trial's wall
    seconds."""
    every = [r for runs in records.values() for run in runs for r in run]
    rows = {h: i for i, h in enumerate(dict.fromkeys(r["hash"] for r in every))}  # the pool row of each cell
    val, test = np.zeros(len(rows)), np.full(len(rows), np.nan)
    for h in rows:  # a cell's truth: its best trial at the most epochs asked
        best = best_record([r for r in every if r["hash"] == h])
        if best is not None:
            val[rows[h]], test[rows[h]] = best["val"], np.nan if best["test"] is None else best["test"]
    truth = Truth(np.array(list(rows)), val, test)
    traces = {name: [trace_of(run, rows) for run in runs] for name, runs in records.items()}
    horizon = max(t.seconds.sum() for runs in traces.values() for t in runs)
    result = {"pool": pool_summary(truth, None) | {"kind": "the cells trained"}, "strategies": {}}
    curves = {}
    for name, runs in traces.items():
        result["strategies"][name], curves[name] = summarize(runs, truth, horizon)
    return result, curves


def trace_of(run: list[dict], rows: dict[str, int]) -> Trace:
    """A search's trials as a Trace over trials_summary's pool (a failed trial scores -inf)."""
    labels = [-math.inf if measured(r) is None else r["val"] for r in run]
    return Trace(
        np.array([rows[r["hash"]] for r in run], np.int64),
        np.array([r["asked_epochs"] for r in run]),
        np.array(labels),
        np.array([r["seconds"] for r in run]),
    )
