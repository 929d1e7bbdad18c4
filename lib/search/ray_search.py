"""Trials side by side on Ray Tune: the engine behind `budgeted_search.py --engine ray`. The strategy of a
TrialSearch (lib/search/trial_search.py) is a Ray Tune Searcher (lib/search/ray_searcher.py), each trial a
function trainable that runs TrialSearch.run (trainer.py in a subprocess, lib/search/trials.py) and
reports every epoch to Tune, so that a scheduler (ASHA) can stop it early. The journal, the trial folders
and `search.records` are the local engine's (search_locally):

    from lib.search.ray_search import search_on_ray
    records = search_on_ray(search, concurrent=2)                  # a local Ray instance, 2 trials at once
    records = search_on_ray(search, address="head:6379", scheduler="asha", max_failures=3)

Ray Tune does the queueing, the resources (`trial_resources`: a GPU per trial where there are GPUs),
the retries (FailureConfig: a retried trial continues from its folder's checkpoint) and the early
stopping (ASHAScheduler over the "epoch" attribute, metric "val", reduction 4, grace 1 epoch). A trial
that still fails is journaled as failed with its one-line error, and the search goes on. A trial ASHA
stops is journaled as "stopped" with the last epoch it reported; its trainer gets SIGTERM and ends
after that epoch ("interrupted" in its metrics.json), or dies with its worker.

Continuing a killed search: calling search_on_ray again on the same folder replays the journal and
<out>/ray/<strategy>-s<seed>/suggested.jsonl (each trial handed to Tune, written before Tune sees it).
The trials suggested but never journaled are handed to Tune again first, with their index and cell:
their folders continue from the checkpoint (or are read back where they had ended). Tune's own
Tuner.restore is not used: its experiment snapshot is taken every 10 s or more, so after a kill it
lacks the trials suggested since (their index would be lost) and still runs the trials journaled
since (they would be told twice); the journal and the suggestion log are written as things happen.
Each call is a new Tune experiment, <out>/ray/<strategy>-s<seed>/run<k>.

Ray is imported inside the functions: the rest of the toolkit never pays for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lib.search.ray_searcher import notes_class, searcher_class
from lib.search.trials import Journal, StopTrial, run_job
from lib.util.errors import Interrupted, UserError, first_line, one_line, own_signal_handlers

if TYPE_CHECKING:  # a trial's worker imports this module: it must not pay for torch (lib.search.trial_search's)
    from lib.search.trial_search import TrialSearch

CONNECT_S = 5  # how long an --address may take to answer before it counts as unreachable
OBJECT_STORE_BYTES = 100 * 2**20  # trials pass only small configs and results through it
# Ray and Tune read these in the driver and in the workers: keep the trial's working directory (trainer
# commands and folders may be relative), let Ctrl-C reach the search (which then shuts Ray down), no
# Tune progress tables or logger noise.
RAY_ENV = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_THRESHOLD_S": "60",
    "RAY_DEDUP_LOGS": "0",
}


def search_on_ray(
    search: TrialSearch,
    *,
    address: str | None = None,
    scheduler: str | None = None,
    concurrent: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float | None = None,
    max_failures: int = 2,
    quiet: bool = False,
) -> list[dict]:
    """Run the search's trials on Ray Tune, `concurrent` at a time (None: one per GPU, else one per CPU
    of the cluster), until the budget of trials is journaled (after a kill: what the journal lacks).
    Returns every record of this search, in the order told, as search_locally does."""
    import ray

    if scheduler not in (None, "asha"):
        raise UserError(f"--scheduler {scheduler}: Ray Tune's engine knows none and asha")
    os.environ.update(RAY_ENV)
    try:
        start_ray(address, concurrent, cpus_per_trial)
        gpus = int(ray.cluster_resources().get("GPU", 0)) or cuda_devices()
        resources = trial_resources(gpus, cpus_per_trial, gpus_per_trial)
        concurrent = concurrent or default_concurrency(resources, ray.cluster_resources())
        return run_tune(search, scheduler, concurrent, resources, max_failures, quiet)
    finally:
        ray.shutdown()  # also on an error or Ctrl-C: the workers end, and their trainers with them


def start_ray(address: str | None, concurrent: int | None, cpus_per_trial: float) -> None:
    """Join the cluster at `address` (a one-line UserError within CONNECT_S when nothing answers there),
    or start a small local one: CPUs for `concurrent` trials, a small object store, no dashboard."""
    import ray

    common = dict(
        log_to_driver=False,  # the trials' output is in their folders; the progress lines are the driver's
        logging_level=logging.ERROR,
        include_dashboard=False,
        runtime_env={"env_vars": dict(RAY_ENV)},
    )
    if address:
        check_address(address)
        where = dict(address=address)
    else:  # "local": a new instance of our own, even where someone's `ray start` runs on this machine
        cpus = max(1, math.ceil((concurrent or os.cpu_count() or 1) * cpus_per_trial))
        where = dict(address="local", num_cpus=cpus, object_store_memory=OBJECT_STORE_BYTES)
    with own_signal_handlers():  # ray.init installs a SIGTERM handler that exits: ours (lib.util.errors) come back
        try:
            ray.init(**where, **common)
        except SystemExit:  # that handler, at work while ray.init ran: SIGTERM arrived
            raise Interrupted(signal.SIGTERM) from None
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            if not address:
                raise
            raise UserError(f"--address {address}: no Ray cluster there ({first_line(e)})") from None


def check_address(address: str) -> None:
    """UserError within CONNECT_S unless `address` names a Ray cluster that answers: host:port or
    ray://host:port accepting a connection, or auto (a cluster started here by `ray start`, or RAY_ADDRESS's)."""
    if address == "auto":
        from ray._private import services

        try:
            found = services.canonicalize_bootstrap_address_or_die("auto")
        except Exception as e:  # noqa: BLE001 - ConnectionError when none runs; a broken lookup says the same
            raise UserError(
                f"--address auto: no Ray cluster runs on this machine ({first_line(e, 80)}); start one with "
                "`ray start --head`, or give host:port"
            ) from None
        return check_address(found)
    scheme, _, hostport = address.rpartition("://")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    if scheme not in ("", "ray") or not host or any(c.isspace() for c in host) or not port.isdigit():
        raise UserError(
            f"--address {address}: not the address of a Ray cluster (give host:port, ray://host:port or auto)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_S).close()
    except (OSError, OverflowError) as e:
        raise UserError(f"--address {address}: no Ray cluster there ({one_line(e)})") from None


def cuda_devices() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # a broken CUDA install counts as no GPU, as Ray's own detection does
        return 0


def trial_resources(gpus_available: int, cpus_per_trial: float = 1, gpus_per_trial: float | None = None) -> dict:
    """What one trial asks Ray for: cpus_per_trial CPUs and gpus_per_trial GPUs (None: one GPU per
    trial where the cluster has GPUs, none where it has none)."""
    gpus = gpus_per_trial if gpus_per_trial is not None else (1 if gpus_available > 0 else 0)
    return {"cpu": cpus_per_trial, "gpu": gpus}


def default_concurrency(resources: dict, cluster: dict) -> int:
    """As many trials as the cluster's GPUs (or CPUs, without GPUs) hold at once."""
    if resources["gpu"]:
        return max(1, int(cluster.get("GPU", 0) // resources["gpu"]))
    return max(1, int(cluster.get("CPU", 1) // max(resources["cpu"], 1e-9)))


def run_tune(search: TrialSearch, scheduler, concurrent: int, resources: dict, max_failures: int, quiet) -> list:
    """One Tune experiment for what the search lacks; its folder is <out>/ray/<strategy>-s<seed>/run<k>."""
    from ray import tune

    folder = experiment_folder(search)
    searcher = searcher_class()(search, Journal(folder / "suggested.jsonl"), quiet=quiet)
    if searcher.complete():
        searcher.close()
        return search.records
    trainable = tune.with_resources(train_trial, resources)
    runs = len(list(folder.glob("run*")))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(scheduler, search.epochs),
            num_samples=-1,  # the searcher says when the budget is spent (Searcher.FINISHED)
            max_concurrent_trials=concurrent,
            # A worker per trial. Reusing one needs the last trial's thread gone within 2 s of its stop
            # (its trainer saving first may take longer), and Tune 2.60 never tells the searcher of a
            # trial whose reuse failed: the search would wait for it for ever.
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=f"run{runs}",
            storage_path=str(folder),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[notes_class()(searcher, max_failures)],
        ),
    )
    tune_log = logging.getLogger("ray.tune")
    level, _ = tune_log.level, tune_log.setLevel(logging.CRITICAL)  # tracebacks of failures: one line each
    try:
        tuner.fit()
    finally:
        tune_log.setLevel(level)
        searcher.close()
    missing = sorted(set(range(search.trials)) - searcher.recorded)
    if missing:
        raise RuntimeError(f"Ray Tune ended with trials {missing} of {search.name} s{search.seed} never told")
    return search.records


def experiment_folder(search: TrialSearch) -> Path:
    folder = (search.out / "ray" / f"{search.name}-s{search.seed}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_scheduler(name: str | None, epochs: int):
    """ASHA over epochs: a trial below the rung's best quarter stops there (Tune's default reduction 4)."""
    if name is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric="val", mode="max", max_t=epochs, grace_period=1)


def train_trial(config: dict) -> None:
    """Tune's function trainable: train one trial (config["job"]: lib.search.trials.run_job's), reporting each
    epoch ({"val", "epoch"}); the last report carries the trial's result. Stopped by Tune (a scheduler's
    decision), the trainer is ended cleanly after that epoch and nothing more is reported: the driver
    builds the record."""
    from ray import tune

    t0 = time.perf_counter()
    stopped, last = False, config["epochs"]

    def on_epoch(epoch: dict) -> None:
        nonlocal stopped
        if epoch["epoch"] >= last:
            return  # the final report says it, with the result (ASHA stops every trial at max_t)
        seconds = time.perf_counter() - t0
        report = {"val": epoch["valid_acc"], "test": epoch.get("test_acc"), "epoch": epoch["epoch"]}
        try:
            tune.report(report | {"seconds": seconds})
        except SystemExit:  # how Tune's session ends a trial it stops: end the trainer with it
            stopped = True
            raise StopTrial from None

    trial = run_job(config["job"], on_epoch)
    if not stopped:
        val = math.nan if trial["val"] is None else trial["val"]
        tune.report({"val": val, "epoch": trial["epochs"], "trial": json.dumps(trial)})
