"""The Optuna study behind a search: creation, the grid as a queue, workers, dead and stray trials.

Several `tune.py` processes (here or on other machines) may share one storage; everything here
keeps them from running a configuration twice and lets `--resume` finish what a killed one left.
"""

import contextlib
import hashlib
import itertools
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from lit_basics.atomic_files import process_alive
from lit_basics.checkpoints import describe_data
from lit_basics.errors import ConfigError
from lit_basics.experiments.search.space import SearchSpec

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def make_sampler(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=spec.seed)
    return optuna.samplers.RandomSampler(seed=spec.seed)  # grid: every trial comes from the queue


def _begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _driver_autocommit(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_immediate, not the driver


def make_storage(url: str) -> str | optuna.storages.RDBStorage:
    """The storage at `url`; for SQLite, one whose transactions take the write lock as they begin.

    Optuna hands a queued trial to a worker by reading that it is WAITING, then setting it RUNNING,
    in one transaction with SELECT ... FOR UPDATE. SQLite ignores FOR UPDATE, and Python's driver
    begins a transaction only at the first write, so two workers could both read WAITING and both
    run the trial (seen as "Cannot tell a COMPLETE trial" in one of them). BEGIN IMMEDIATE makes
    the read and the write one step (SQLAlchemy's documented recipe for pysqlite); a worker that
    finds the lock taken waits up to a minute. Server databases lock the row and keep the URL.
    """
    if not url.startswith("sqlite"):
        return url
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    sqlalchemy.event.listen(storage.engine, "connect", _driver_autocommit)
    sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
    storage.engine.dispose()  # connections made while creating the tables lack the listeners
    return storage


# what a fold's score means; a study whose trials were scored otherwise (an older lit-basics) is not resumed
FOLD_SCORE = "validation accuracy at the lowest validation loss (classification); minus that loss (regression)"


def search_settings(spec: SearchSpec, data: dict[str, Any] | None, engine: str = "batched") -> dict[str, Any]:
    """What a study's trials depend on (what a fold score means, space, sampler, folds, seed, patience, base
    config and its contents, data, engine), as JSON values."""
    space = {d.name: d.choices if d.choices is not None else {"low": d.low, "high": d.high, "log": d.log,
                                                                "int": d.integer} for d in spec.space}
    contents = hashlib.sha256(Path(spec.base).read_bytes()).hexdigest()[:12]
    settings = {"score": FOLD_SCORE, "space": space, "sampler": spec.sampler, "folds": spec.folds, "seed": spec.seed,
                "patience": spec.patience, "base": str(spec.base), "base_contents": f"sha256 {contents}",
                "common": spec.common, "data": data, "engine": engine}
    return json.loads(json.dumps(settings, default=str))


def check_same_search(study: optuna.Study, settings: dict[str, Any], name: str) -> None:
    """`--resume` continues a study only with the settings it was made with; else one line naming what changed."""
    saved = study.user_attrs.get("search")
    if saved is None:
        if study.get_trials(deepcopy=False):
            raise ConfigError(f"--resume: study {name!r} records no search settings (made by an older lit-basics); "
                              "start a new search with --name NEW, or drop --resume to replace it")
        study.set_user_attr("search", settings)
        return
    changed = [key for key in settings if saved.get(key) != settings[key]]
    if not changed:
        return
    key = changed[0]
    there, here = saved.get(key), settings[key]
    if key == "space":
        dim = next(d for d in sorted({*there, *here}) if there.get(d) != here.get(d))
        key, there, here = f"space {dim}", there.get(dim), here.get(dim)
    if key == "data" and isinstance(there, dict) and isinstance(here, dict):
        there, here = describe_data(there), describe_data(here)
    more = f" (and {', '.join(changed[1:])})" if len(changed) > 1 else ""
    raise ConfigError(f"--resume: study {name!r} was made with {key}={there}, this search has {here}{more}; "
                      "start a new search with --name NEW, or drop --resume to replace it")


def open_study(spec: SearchSpec, storage: str, resume: bool, settings: dict[str, Any] | None = None) -> optuna.Study:
    """Create the study (replacing an old one of that name unless resuming) or join it.

    A grid search is a queue: each configuration not yet covered is enqueued once, and workers
    take queued trials one at a time (the storage hands each to one worker only: make_storage),
    so several `tune.py --resume` processes on one storage never run a configuration twice.
    """
    pruner = optuna.pruners.NopPruner() if spec.sampler == "grid" else optuna.pruners.MedianPruner(n_startup_trials=3)
    for attempt in range(5):
        try:
            backend = make_storage(storage)
            if not resume:
                with contextlib.suppress(KeyError):  # KeyError: no such study yet
                    optuna.delete_study(study_name=spec.name, storage=backend)
            study = optuna.create_study(
                study_name=spec.name,
                storage=backend,
                sampler=make_sampler(spec),
                pruner=pruner,
                direction="maximize",
                load_if_exists=True,
            )
            break
        except Exception as err:  # workers starting together on a fresh database race to create its tables
            retriable = "sqlalchemy" in type(err).__module__ and "NoSuchModule" not in type(err).__name__
            if retriable and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"storage {storage!r} cannot be opened: {first}") from None
    if settings is not None:
        check_same_search(study, settings, spec.name)
    ask_as_worker(study)
    fail_dead_trials(study)
    if spec.sampler == "grid":
        enqueue_grid(study, spec)
    else:
        enqueue_failed(study)
    return study


def ask_as_worker(study: optuna.Study) -> None:
    """Make `study.ask` record this worker on the trial before a Ctrl-C or SIGTERM can act.

    Between Optuna creating a RUNNING trial and the worker writing its name on it, an interrupt left
    the trial RUNNING and nameless, so the interrupted worker could not fail it (seen once on a busy
    machine). The two steps run with both signals blocked; one that arrives meanwhile is delivered
    just after, when the trial already names its worker and `fail_own_running_trials` finds it.
    """
    original = study.ask

    def ask(fixed_distributions: dict | None = None) -> optuna.Trial:
        with signals_held():
            trial = original(fixed_distributions)
            trial.set_user_attr("worker", WORKER)
        return trial

    study.ask = ask


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM wait until the block ends (main thread of a POSIX process; elsewhere a no-op)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _covered(study: optuna.Study) -> list[dict[str, Any]]:
    states = (*DONE, TrialState.WAITING, TrialState.RUNNING)
    return [t.params or t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False, states=states)
            if not t.user_attrs.get("stray")]


def enqueue_grid(study: optuna.Study, spec: SearchSpec) -> None:
    """Queue each grid configuration that no finished, queued or running trial covers."""
    covered = _covered(study)
    names = list(spec.grid())
    for values in itertools.product(*spec.grid().values()):
        params = dict(zip(names, values, strict=True))
        if params not in covered:
            study.enqueue_trial(params)


def enqueue_failed(study: optuna.Study) -> None:
    """Queue again the failed configurations (an interrupted run's) that nothing else covers."""
    covered = _covered(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if trial.params and not trial.user_attrs.get("stray") and trial.params not in covered:
            study.enqueue_trial(trial.params)
            covered.append(trial.params)


def fail_dead_trials(study: optuna.Study) -> None:
    """Trials left RUNNING by a worker process that no longer exists are marked failed.

    A trial knows its worker once the worker wrote it (first thing in the trial); one killed just
    after taking a trial from the queue has none, and counts as dead when no other registered
    worker is alive. Trials of live workers, here or on other machines, are left alone.
    """
    host = socket.gethostname()

    def dead(worker: str) -> bool:
        worker_host, _, pid = worker.rpartition(":")
        return worker_host == host and pid.isdigit() and not process_alive(int(pid))

    others = [k.removeprefix("worker ") for k in study.user_attrs if k.startswith("worker ")]
    others_alive = any(not dead(w) for w in others if w != WORKER)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if (worker and dead(worker)) or (worker is None and not others_alive):
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    study.set_user_attr(f"worker {WORKER}", time.time())  # register, for the check above in later workers
    return True


class StrayTrial(Exception):
    """A grid trial another worker already covers (or not from the queue at all); it is discarded."""


def claim(trial: optuna.Trial) -> bool:
    """Whether this worker should run this queued grid configuration.

    Two workers starting on a fresh storage can both queue the grid; a configuration then runs
    only in the lowest-numbered of its trials that is running or done, so it never runs twice.
    """
    fixed = trial.storage.get_trial_system_attrs(trial._trial_id).get("fixed_params")
    if fixed is None:  # the queue was empty when this worker asked
        return False
    for other in trial.study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING)):
        if other.number == trial.number or other.user_attrs.get("stray"):
            continue
        same = (other.params or other.system_attrs.get("fixed_params")) == fixed
        if same and (other.state in DONE or other.number < trial.number):
            return False
    return True


def count_done(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=DONE))
