"""k-fold cross-validation search (exercise 6): Optuna study, per-fold pruning, refit, report."""

import statistics
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState
from rich.progress import Progress

from lit_basics.atomic_files import atomic_write_bytes, atomic_write_text
from lit_basics.engine.runtime import machine_description
from lit_basics.errors import ConfigError, check_choice
from lit_basics.experiments.runs import check_args, fit
from lit_basics.experiments.search import plots as search_plots
from lit_basics.experiments.search import report as search_report
from lit_basics.experiments.search.batched_folds import BatchedFolds
from lit_basics.experiments.search.ensemble import ENSEMBLE_FILES, FoldModels, build_ensemble
from lit_basics.experiments.search.folds import (
    FoldResult,
    FoldRunner,
    LightningFolds,
    TrialDiverged,
    fold_args,
    write_fold_runs,
)
from lit_basics.experiments.search.space import SearchSpec, grid_size
from lit_basics.experiments.search.study import (
    DONE,
    WORKER,
    StrayTrial,
    claim,
    count_done,
    open_study,
    search_settings,
)
from lit_basics.outputs import check_name, check_writable_dir

ENGINES = ("batched", "lightning")


def validate_search(spec: SearchSpec) -> dict[str, Any] | None:
    """Each value of each dimension must build, and k must fit the smallest class, before any fit.

    Returns the data's identity (what the study records about its data).
    """
    if spec.ensemble_selection != "top" and not spec.ensemble:
        raise ConfigError(f"ensemble_selection={spec.ensemble_selection!r} needs ensemble >= 1 (how many "
                          "configurations to choose from)")
    first = {d.name: d.choices[0] if d.choices else d.low for d in spec.space}
    for dim in spec.space:
        for value in dim.choices or [dim.low, dim.high]:
            params = {**first, dim.name: value}
            label = f"search value {dim.name}={value!r}"
            args = [*spec.run_args(params), *fold_args(spec.folds, 0, spec.seed, spec.patience)]
            cli = check_args(label, args)
    datamodule = cli.datamodule
    if hasattr(datamodule, "fold_indices"):
        datamodule.fold_indices(datamodule.arrays[1])
    return datamodule.identity() if hasattr(datamodule, "identity") else None


def objective_for(spec: SearchSpec, runner: FoldRunner, fold_logs: Path | None = None,
                  kept: FoldModels | None = None):
    prune = spec.sampler != "grid"

    def objective(trial: optuna.Trial) -> float:
        if spec.sampler == "grid" and not claim(trial):
            trial.set_user_attr("stray", True)
            raise StrayTrial
        trial.set_user_attr("worker", WORKER)
        params = {dim.name: dim.suggest(trial) for dim in spec.space}
        scores: list[float] = []
        results: list[FoldResult] = []

        def on_fold(result: FoldResult) -> None:
            scores.append(result.score)
            results.append(result)
            if fold_logs:
                write_fold_runs(fold_logs, trial.number, params, [result])
            record_fold(trial, result)
            if result.diverged:
                raise TrialDiverged
            if prune:
                trial.report(statistics.fmean(scores), result.fold)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        started = time.perf_counter()
        try:
            runner.fit_folds(spec.run_args(params), on_fold, params)
        finally:
            record_totals(trial, scores, time.perf_counter() - started)
        if kept is not None:
            kept.offer(trial.number, statistics.fmean(scores), results)
        return statistics.fmean(scores)

    return objective


def record_fold(trial: optuna.Trial, result: FoldResult) -> None:
    """A fold's score, best validation loss and best epoch, as user attributes of its trial (trials.csv)."""
    trial.set_user_attr(f"fold_{result.fold}", result.score)
    trial.set_user_attr(f"val_loss_{result.fold}", result.val_loss)
    trial.set_user_attr(f"best_epoch_{result.fold}", result.best_epoch)
    if result.diverged:
        trial.set_user_attr("diverged", f"fold {result.fold}, epoch {result.epochs}")


def record_totals(trial: optuna.Trial, scores: list[float], seconds: float) -> None:
    """The trial's fit time and the spread of its fold scores (0 with fewer than two, as a pruned trial)."""
    trial.set_user_attr("fit_seconds", seconds)
    trial.set_user_attr("std", statistics.pstdev(scores) if len(scores) > 1 else 0.0)


def optimize_until_done(study: optuna.Study, objective, total: int, callbacks: list, grid: bool) -> None:
    """Run trials until `total` are complete or pruned, counting those of every worker on the storage.

    A grid worker takes queued trials one by one and stops when the queue is empty; a random/TPE
    worker stops when the study holds `total` finished trials.
    """
    if grid:
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.optimize(objective, n_trials=1, callbacks=callbacks, catch=(StrayTrial, TrialDiverged))
        return
    stop = optuna.study.MaxTrialsCallback(total, states=DONE)
    while (done := count_done(study)) < total:
        study.optimize(objective, n_trials=total - done, callbacks=[stop, *callbacks], catch=(TrialDiverged,))
        if count_done(study) == done:
            return


def target_trials(spec: SearchSpec) -> int:
    return grid_size(spec) if spec.sampler == "grid" else int(spec.n_trials)


def run_grid_batched(study: optuna.Study, spec: SearchSpec, runner: BatchedFolds, show, max_configs: int = 64,
                     fold_logs: Path | None = None, kept: FoldModels | None = None) -> None:
    """Take queued grid configurations in rounds and train each round's folds x configurations at once."""
    while True:
        claimed = []
        while len(claimed) < max_configs and study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = study.ask()
            if not claim(trial):
                trial.set_user_attr("stray", True)
                study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr("worker", WORKER)
            claimed.append((trial, {dim.name: dim.suggest(trial) for dim in spec.space}))
        if not claimed:
            return
        for (trial, params), results in zip(claimed, runner.fit_many([p for _, p in claimed]), strict=True):
            if fold_logs:
                write_fold_runs(fold_logs, trial.number, params, results)
            for result in results:
                record_fold(trial, result)
            scores = [r.score for r in results]
            record_totals(trial, scores, sum(r.seconds for r in results))
            if any(r.diverged for r in results):
                study.tell(trial, state=TrialState.FAIL)  # as a Lightning fold that diverged
            else:
                study.tell(trial, statistics.fmean(scores))
                if kept is not None:
                    kept.offer(trial.number, statistics.fmean(scores), results)
            show(study, None)


def make_runner(spec: SearchSpec, engine: str) -> FoldRunner:
    check_choice("engine", engine, ENGINES)
    if engine == "batched":
        runner = BatchedFolds(spec.run_args({}), spec.folds, spec.seed, spec.patience)
        for dim in spec.space:  # a value the engine cannot train fails here, before any output
            for value in dim.choices or [dim.low, dim.high]:
                runner.settings({dim.name: value})
        return runner
    return LightningFolds(spec.folds, spec.seed, spec.patience)


def run_search(
    spec: SearchSpec,
    reports: str = "reports",
    logs: str = "logs",
    storage: str | None = None,
    resume: bool = False,
    refit: bool = True,
    progress: bool = True,
    runner: FoldRunner | None = None,
    engine: str = "batched",
    fold_logs: bool = False,
) -> Path:
    """Run (or continue) the search, then write trials.csv, summary.md, figures, best.yaml (and with
    `spec.ensemble`, ensemble.yaml and ensemble.ckpt)."""
    data = validate_search(spec)
    runner = runner or make_runner(spec, engine)  # its errors come before anything is written
    kept = FoldModels(spec.ensemble, spec.folds) if spec.ensemble else None
    if kept is not None:
        runner.keep_states = True  # the fold models the ensemble averages, at their best epochs
    started = time.perf_counter()
    check_writable_dir(reports, "reports folder")
    check_writable_dir(logs, "logs folder")
    out = check_writable_dir(Path(reports) / check_name(spec.name, "search name"), "report folder")
    created = [folder for folder in (out, out.parent) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    try:
        study = open_study(spec, storage, resume, search_settings(spec, data, engine))
    except ConfigError:
        for folder in created:  # leave no empty report folder behind
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    remove_reports(out)  # until this search completes, no report describes another state of the study
    total = target_trials(spec)
    fold_log_dir = Path(logs) / spec.name / "folds" if fold_logs else None
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"{spec.name}: trials x {spec.folds} folds", total=total,
                                completed=count_done(study))
            show = lambda s, t: bar.update(task, completed=count_done(s))  # noqa: E731
            if spec.sampler == "grid" and isinstance(runner, BatchedFolds):
                run_grid_batched(study, spec, runner, show, fold_logs=fold_log_dir, kept=kept)
            else:
                optimize_until_done(study, objective_for(spec, runner, fold_log_dir, kept), total, [show],
                                    grid=spec.sampler == "grid")
    except BaseException:
        fail_own_running_trials(study)
        raise
    test_metrics = refit_best(spec, study, out, logs) if refit else None
    ensemble = (build_ensemble(spec, study, runner, kept, out, logs, spec.ensemble, spec.ensemble_selection)
                if kept is not None else None)
    trials = search_report.trials_table(study, spec)
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))
    figures = search_plots.search_figures(spec, trials, study, out)
    footer = (f"{count_done(study)} trials x {spec.folds} folds (+ refit) in {time.perf_counter() - started:.0f} s "
              f"on {machine_description()}.")
    atomic_write_text(out / "summary.md",
                      search_report.summary_markdown(spec, study, trials, test_metrics, figures, footer, ensemble))
    return out


REPORT_FILES = ("trials.csv", "summary.md", "best.yaml", "best.ckpt", *ENSEMBLE_FILES)


def remove_reports(out: Path) -> None:
    """Delete the report files and figures of an earlier search; the study in the storage stays."""
    for path in [*(out / name for name in REPORT_FILES), *out.glob("*.png")]:
        path.unlink(missing_ok=True)


def fail_own_running_trials(study: optuna.Study) -> None:
    """An interrupted worker's running trials are marked failed at once, so a resume queues them again."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == WORKER:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def refit_best(spec: SearchSpec, study: optuna.Study, out: Path, logs: str) -> dict[str, Any]:
    """Train the best configuration on the whole training portion, test it once, save best.yaml.

    No validation rows remain, so there is no early stopping: the refit trains for the median of
    the folds' best epochs.
    """
    best = search_report.best_trial(study)
    epochs = [v for k, v in best.user_attrs.items() if k.startswith("best_epoch_")]
    max_epochs = max(1, int(statistics.median(epochs))) if epochs else 10
    checkpoint = "[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {filename: best}}]"
    args = [
        *spec.run_args(best.params),
        f"--data.init_args.folds={spec.folds}",
        "--data.init_args.fold=-1",
        f"--data.init_args.seed={spec.seed}",
        f"--trainer.max_epochs={max_epochs}",
        "--trainer.limit_val_batches=0",
        f"--trainer.callbacks={checkpoint}",
    ]
    metrics = fit(args, logs, spec.name, "refit", spec.seed)
    config = yaml.safe_load((Path(metrics["log_dir"]) / "config.yaml").read_text())
    logger = config["trainer"]["logger"]["init_args"]
    logger.update({"name": f"{spec.name}_best", "version": None})
    atomic_write_text(
        out / "best.yaml",
        f"# Best configuration of search {spec.name!r} (trial {best.number}, mean CV score {best.value:.4f}),\n"
        f"# trained on the whole training portion for {max_epochs} epochs. Retrain with:\n"
        f"#   python scripts/train.py fit --config {out / 'best.yaml'}\n" + yaml.safe_dump(config, sort_keys=False)
    )
    atomic_write_bytes(out / "best.ckpt", Path(metrics["best_model_path"]).read_bytes())
    return {k: v for k, v in metrics.items() if k.startswith("test/")} | {"epochs": max_epochs}
