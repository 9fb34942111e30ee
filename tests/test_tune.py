"""k-fold search: folds, the untouched test split, resume, best.yaml, and bad search spaces."""

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_basics.data import ArrayDataModule, IrisDataModule
from lit_basics.errors import ConfigError
from lit_basics.experiments.commands import tune_main
from lit_basics.experiments.search import tune
from lit_basics.experiments.search.folds import LightningFolds

from .conftest import config, run_cli

SPACE = "space:\n  depth: [1]\n  width: [4, 8]\n  model.lr: [0.01]\n  data.init_args.batch_size: [16]\n"


def _search(tmp_path: Path, space: str = SPACE, folds: int = 2, extra: str = "") -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(
        f"name: tiny_search\nbase: {config('iris')}\nfolds: {folds}\nsampler: grid\npatience: 3\n{extra}"
        "common:\n  trainer.max_epochs: 2\n" + space
    )
    return path


def _tune(path: Path, *args: str) -> Path:
    return tune_main(["--config", str(path), "--no-progress", *args])


def test_folds_are_disjoint_stratified_and_cover_the_training_portion():
    dm = IrisDataModule(test_fraction=0.3, folds=5, seed=3)
    _, y = dm.arrays
    split = dm.split_indices(y)
    portion = np.sort(np.concatenate([split["train"], split["val"]]))
    folds = dm.fold_indices(y)
    assert len(folds) == 5
    val_rows = np.concatenate([val for _, val in folds])
    assert np.array_equal(np.sort(val_rows), portion)  # each training-portion row validates exactly once
    for train, val in folds:
        assert not set(train) & set(val) and not set(val) & set(split["test"])
        assert np.array_equal(np.sort(np.concatenate([train, val])), portion)
        assert np.abs(np.bincount(y[val], minlength=3) / len(val) - 1 / 3).max() < 0.05


def test_fold_datamodule_uses_fold_rows_and_refit_uses_the_whole_portion():
    dm = IrisDataModule(test_fraction=0.3, folds=3, fold=1)
    dm.setup()
    assert dm.split_sizes() == {"train": 70, "val": 35, "test": 45}
    refit = IrisDataModule(test_fraction=0.3, folds=3, fold=-1)
    refit.setup()
    assert refit.split_sizes() == {"train": 105, "val": 0, "test": 45}


def test_tiny_grid_search_writes_every_output_and_best_yaml_trains(workdir, capsys):
    out = _tune(_search(workdir))
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and set(trials["state"]) == {"complete"}
    expected = {"trial", "state", "depth", "width", "lr", "batch_size", "fold_0", "fold_1", "mean", "std",
                "fit_seconds"}
    assert expected <= set(trials.columns)
    np.testing.assert_allclose(trials["mean"], trials[["fold_0", "fold_1"]].mean(axis=1))
    summary = (out / "summary.md").read_text()
    for heading in ("Top 10 configurations", "## Refit", "How the score moves", "Depth x width"):
        assert heading in summary
    assert "test/acc = " in summary
    for figure in ("params", "history", "depth_width", "lr_batch"):
        assert (out / f"{figure}.png").stat().st_size > 5000
    metrics = run_cli("fit", "--config", str(out / "best.yaml"), "--trainer.max_epochs=1")
    assert "test/acc" in metrics and Path(metrics["log_dir"]).parent.name == "tiny_search_best"
    assert "report: reports/tiny_search/" in capsys.readouterr().out


def test_the_test_split_is_never_used_during_the_search(workdir, monkeypatch):
    def forbidden(self):
        raise AssertionError("test split used during the search")

    monkeypatch.setattr(ArrayDataModule, "test_dataloader", forbidden)
    _tune(_search(workdir), "--no-refit")


def test_resume_after_a_finished_search_runs_nothing_new(workdir):
    path = _search(workdir)
    _tune(path, "--no-refit")
    db = "sqlite:///" + str((workdir / "reports/tiny_search/study.db").resolve())
    before = len(optuna.load_study(study_name="tiny_search", storage=db).trials)
    _tune(path, "--no-refit", "--resume")
    assert len(optuna.load_study(study_name="tiny_search", storage=db).trials) == before == 2


def test_resume_after_the_base_config_or_the_engine_changed_is_refused(workdir, capsys):
    base = workdir / "iris_copy.yaml"
    base.write_text(Path(config("iris")).read_text())
    path = _search(workdir)
    path.write_text(path.read_text().replace(config("iris"), str(base)))
    _tune(path, "--no-refit")
    for extra, change in ((["--engine", "lightning"], "engine=batched, this search has lightning"),
                          ([], "base_contents=sha256")):
        if not extra:
            base.write_text(base.read_text() + "\nseed_everything: 7\n")  # an edited base config
        with pytest.raises(SystemExit) as stop:
            _tune(path, "--no-refit", "--resume", *extra)
        assert stop.value.code == 2 and change in capsys.readouterr().err


def test_resume_of_a_study_scored_by_an_older_definition_is_refused(workdir, capsys):
    """A study from before fold scores meant 'accuracy at the lowest-loss epoch' records no score definition."""
    path = _search(workdir)
    _tune(path, "--no-refit")
    db = "sqlite:///" + str((workdir / "reports/tiny_search/study.db").resolve())
    study = optuna.load_study(study_name="tiny_search", storage=db)
    study.set_user_attr("search", {k: v for k, v in study.user_attrs["search"].items() if k != "score"})
    with pytest.raises(SystemExit) as stop:
        _tune(path, "--no-refit", "--resume")
    assert stop.value.code == 2 and "was made with score=None, this search has validation accuracy at the lowest" \
        in capsys.readouterr().err


def test_resume_after_an_interruption_completes_without_repeating(workdir, monkeypatch):
    space = "space:\n  depth: [1]\n  width: [4, 8, 16]\n  model.lr: [0.01]\n  data.init_args.batch_size: [16]\n"
    path = _search(workdir, space)
    calls = []
    real = LightningFolds.fit_folds

    def interrupted(self, args, on_fold, params=None):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second configuration
        return real(self, args, on_fold)

    monkeypatch.setattr(LightningFolds, "fit_folds", interrupted)
    with pytest.raises(SystemExit) as stop:
        _tune(path, "--no-refit", "--engine", "lightning")
    assert stop.value.code == 130
    assert not (workdir / "reports/tiny_search/trials.csv").exists()  # no report of a search that did not finish
    monkeypatch.setattr(LightningFolds, "fit_folds", lambda self, args, on_fold, params=None: (
        calls.append(args), real(self, args, on_fold))[1])
    _tune(path, "--no-refit", "--resume", "--engine", "lightning")
    trials = pd.read_csv(workdir / "reports/tiny_search/trials.csv")
    complete = trials[trials["state"] == "complete"]
    assert sorted(complete["width"]) == [4, 8, 16]
    assert len(calls) == 4  # 2 before the interruption, then only the 2 configurations not yet complete


@pytest.mark.parametrize(
    ("space", "folds", "message"),
    [
        ("space:\n  width: []\n", 2, "search dimension 'width' has an empty choice list"),
        ("space:\n  model.lr: {low: 0.1, high: 0.01}\n", 2, "has low=0.1 > high=0.01"),
        ("space:\n  width: [4]\n", 40, "folds=40 is larger than the smallest class"),
        ("space:\n  model.activation: [relu, swish]\n", 2, "unknown activation 'swish'"),
        ("space:\n  model.lr: {low: 0.001, high: 0.1}\n", 2, "sampler 'grid' needs a list of choices"),
        (
            "space:\n  model.hiden_sizes: [[4]]\n",
            2,
            "--model.hiden_sizes is not an argument; did you mean --model.hidden_sizes?",
        ),
    ],
)
def test_bad_search_spaces_fail_before_any_training(workdir, capsys, space, folds, message):
    with pytest.raises(SystemExit) as info:
        _tune(_search(workdir, space, folds=folds))
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not Path("logs").exists() and not Path("reports").exists()


def test_k_below_two_is_rejected():
    with pytest.raises(ConfigError, match="folds=1 must be 0"):
        IrisDataModule(folds=1)


def test_same_seed_gives_the_same_search(workdir):
    path = _search(workdir)
    first = pd.read_csv(_tune(path, "--no-refit") / "trials.csv")
    second = pd.read_csv(_tune(path, "--no-refit") / "trials.csv")
    pd.testing.assert_frame_equal(first.drop(columns="fit_seconds"), second.drop(columns="fit_seconds"))


def test_engine_interface_is_pluggable(workdir):
    class Constant:
        def fit_folds(self, args, on_fold, params=None):
            width = int(next(a for a in args if a.startswith("--model.hidden_sizes")).split("[")[1].split("]")[0])
            results = []
            for fold in range(2):
                result = tune.FoldResult(fold, score=width / 100, val_loss=1.0, best_epoch=1, epochs=1, seconds=0.0)
                on_fold(result)
                results.append(result)
            return results

    from lit_basics.experiments.search.space import load_search

    out = tune.run_search(load_search(_search(workdir)), refit=False, progress=False, runner=Constant())
    trials = pd.read_csv(out / "trials.csv")
    assert trials.sort_values("width")["mean"].tolist() == [0.04, 0.08]


@pytest.mark.parametrize("engine", ["batched", "lightning"])
def test_both_engines_run_the_same_search_outputs(workdir, engine):
    out = _tune(_search(workdir), "--no-refit", "--engine", engine, "--fold-logs")
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and set(trials["state"]) == {"complete"}
    assert trials[["fold_0", "fold_1"]].notna().all().all()
    runs = sorted((workdir / "logs" / "tiny_search" / "folds").glob("trial_*/fold_*"))
    assert [f"{r.parent.name}/{r.name}" for r in runs] == [f"trial_000{t}/fold_{f}" for t in (0, 1) for f in (0, 1)]
    for run in runs:  # one TensorBoard run per fold fit: its curves and its hparams
        curves = EventAccumulator(str(run))
        curves.Reload()
        assert {"train/loss", "val/loss", "val/acc"} <= set(curves.Tags()["scalars"])
        assert [e.step for e in curves.Scalars("val/acc")] == [0, 1]  # trainer.max_epochs: 2
        trial = trials[trials["trial"] == int(run.parent.name.split("_")[1])].iloc[0]
        assert max(e.value for e in curves.Scalars("val/acc")) == pytest.approx(trial[f"fold_{run.name[-1]}"])
        hparams = EventAccumulator(str(run), size_guidance={"tensors": 0})
        hparams.Reload()
        assert "_hparams_/session_start_info" in hparams.PluginTagToContent("hparams")  # a session, no experiment
        assert "_hparams_/experiment" not in hparams.PluginTagToContent("hparams")


def test_batched_and_lightning_engines_pick_the_same_best_configuration(workdir):
    space = ("space:\n  depth: [1]\n  width: [2, 64]\n  model.lr: [0.0001, 0.03]\n"
             "  data.init_args.batch_size: [16]\n")
    path = _search(workdir, space, folds=3)
    path.write_text(path.read_text().replace("trainer.max_epochs: 2", "trainer.max_epochs: 30"))
    ranking = {}
    for engine in ("batched", "lightning"):
        trials = pd.read_csv(_tune(path, "--no-refit", "--engine", engine) / "trials.csv")
        ordered = trials.sort_values("mean", ascending=False)
        ranking[engine] = list(zip(ordered["width"], ordered["lr"], strict=True))
        assert set(ranking[engine][:2]) == {(2, 0.03), (64, 0.03)}  # lr 1e-4 is far too slow in 30 epochs
    assert ranking["batched"][0] == ranking["lightning"][0]


def test_batched_engine_rejects_a_precision_it_does_not_train_in(workdir, capsys):
    path = _search(workdir, extra="")
    path.write_text(path.read_text().replace("common:\n", "common:\n  trainer.precision: bf16-mixed\n"))
    with pytest.raises(SystemExit):
        _tune(path, "--engine", "batched")
    assert "--engine batched trains in 32-bit precision, not 'bf16-mixed'" in capsys.readouterr().err
    assert not (workdir / "reports").exists() and not (workdir / "logs").exists()


def test_batched_engine_rejects_what_it_cannot_vary(workdir, capsys):
    space = "space:\n  data.init_args.val_fraction: [0.2, 0.3]\n"
    with pytest.raises(SystemExit):
        _tune(_search(workdir, space), "--engine", "batched")
    assert "--engine batched cannot vary 'data.init_args.val_fraction'" in capsys.readouterr().err
    assert not (workdir / "reports").exists() and not (workdir / "logs").exists()


def test_a_trial_taken_but_never_started_is_run_on_resume(workdir):
    path = _search(workdir)
    _tune(path, "--no-refit")  # completes both widths
    db = "sqlite:///" + str((workdir / "reports/tiny_search/study.db").resolve())
    study = optuna.load_study(study_name="tiny_search", storage=db)
    study.enqueue_trial({"depth": 1, "width": 4, "model.lr": 0.01, "data.init_args.batch_size": 16})
    orphan = study.ask()  # a worker took it from the queue and died before writing anything
    assert orphan.number == 2
    _tune(path, "--no-refit", "--resume")
    states = {t.number: t.state.name for t in optuna.load_study(study_name="tiny_search", storage=db).trials}
    assert states[2] == "FAIL"  # the orphan is closed, and width 4 was already complete: nothing reruns
    assert list(states.values()).count("COMPLETE") == 2


def test_ties_are_broken_one_way_in_trials_csv_summary_and_refit():
    from optuna.distributions import CategoricalDistribution

    from lit_basics.experiments.search import report
    from lit_basics.experiments.search.space import Dimension, SearchSpec

    study = optuna.create_study(direction="maximize")
    dist = {"width": CategoricalDistribution([4, 8, 16, 32])}
    for width, value, std, loss in ((4, 0.9, 0.05, 0.3), (8, 0.9, 0.01, 0.5), (16, 0.8, 0.0, 0.1),
                                    (32, 0.9, 0.01, 0.4)):
        study.add_trial(optuna.trial.create_trial(params={"width": width}, distributions=dist, value=value,
                                                  user_attrs={"std": std, "fold_0": value, "fold_1": value,
                                                              "val_loss_0": loss - 0.05, "val_loss_1": loss + 0.05}))
    spec = SearchSpec("ties", Path("base.yaml"), [Dimension("width", choices=[4, 8, 16, 32])], folds=2)
    trials = report.trials_table(study, spec)
    assert study.best_trial.number == 0  # Optuna's own pick among equal means: the first
    assert report.best_trial(study).number == 3  # ours: equal mean, lower std, then lower mean validation loss
    assert trials["trial"].tolist() == [3, 1, 0, 2] and trials["rank"].tolist() == [1, 2, 3, 4]
    assert trials["val_loss"].tolist() == pytest.approx([0.4, 0.5, 0.3, 0.1])
    summary = report.summary_markdown(spec, study, trials, {"epochs": 3, "test/acc": 0.9}, [])
    top = summary.split("## Top 10 configurations")[1]
    assert top.index("| 3 | 32 |") < top.index("| 1 | 8 |") < top.index("| 0 | 4 |")
    assert "The best configuration (trial 3: width=32)" in summary


def test_ctrl_c_stops_a_search_with_one_line_and_it_resumes(workdir):
    import signal
    import subprocess
    import sys
    import time

    from .conftest import REPO

    path = _search(workdir, "space:\n  width: [4, 8]\n").read_text()
    (workdir / "search.yaml").write_text(path.replace("max_epochs: 2", "max_epochs: 40").replace("patience: 3",
                                                                                                "patience: 100"))
    out = workdir / "reports/tiny_search"
    out.mkdir(parents=True)
    (out / "summary.md").write_text("stale report of an earlier search")
    process = subprocess.Popen([sys.executable, str(REPO / "scripts/tune.py"), "--config", "search.yaml",
                                "--no-progress", "--no-refit", "--engine", "lightning"], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120  # bounds a hung subprocess only
    while not (out / "study.db").exists() and process.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    study = None
    while process.poll() is None and time.monotonic() < end:
        try:
            study = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / 'study.db'}")
            if study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                break
        except Exception:  # tables not created yet
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == [
        "interrupted: search 'tiny_search' stopped; its finished trials are kept in reports/tiny_search/study.db; "
        "continue with the same command and --resume"]
    assert not (out / "summary.md").exists()  # the stale report went when the search started
    study = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / 'study.db'}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the interrupted trial: failed
    _tune(workdir / "search.yaml", "--no-refit", "--resume", "--engine", "lightning")
    trials = pd.read_csv(out / "trials.csv")
    assert sorted(trials.loc[trials["state"] == "complete", "width"]) == [4, 8]


def test_the_best_architecture_in_the_summary_is_the_ranked_best_trials():
    """Two cells tie on the mean; the summary names the one the ranking (lower std) puts first, not the first cell."""
    from optuna.distributions import CategoricalDistribution

    from lit_basics.experiments.search import report
    from lit_basics.experiments.search.space import Dimension, SearchSpec

    study = optuna.create_study(direction="maximize")
    dist = {"depth": CategoricalDistribution([1, 2]), "width": CategoricalDistribution([16, 64])}
    for depth, width, std in ((1, 16, 0.05), (2, 64, 0.01)):
        study.add_trial(optuna.trial.create_trial(params={"depth": depth, "width": width}, distributions=dist,
                                                  value=0.9, user_attrs={"std": std, "fold_0": 0.9, "fold_1": 0.9}))
    spec = SearchSpec("cells", Path("base.yaml"), [Dimension("depth", choices=[1, 2]),
                                                   Dimension("width", choices=[16, 64])], folds=2)
    summary = report.summary_markdown(spec, study, report.trials_table(study, spec), None, [])
    assert "Best architecture: 2 hidden layers of 64 units" in summary


def test_an_interrupt_just_after_a_trial_is_created_leaves_no_running_trial(workdir, monkeypatch):
    """The Ctrl-C race: the signal lands between Optuna creating the RUNNING trial and the worker naming
    itself on it; the trial must still be failed by the interrupted worker, not left RUNNING."""
    import signal

    from optuna.trial import TrialState

    original = optuna.Study.ask
    asked = []

    def ask_then_interrupt(self, fixed_distributions=None):
        trial = original(self, fixed_distributions)
        asked.append(trial.number)
        signal.raise_signal(signal.SIGINT)
        return trial

    monkeypatch.setattr(optuna.Study, "ask", ask_then_interrupt)
    with pytest.raises(SystemExit) as info:
        _tune(_search(workdir, "space:\n  width: [4, 8]\n"), "--no-refit")
    assert info.value.code == 130
    study = optuna.load_study(study_name="tiny_search", storage="sqlite:///reports/tiny_search/study.db")
    assert asked and not study.get_trials(states=(TrialState.RUNNING,))
    assert study.trials[asked[0]].state == TrialState.FAIL


def test_a_full_disk_under_the_reports_and_the_study_is_one_line(workdir, monkeypatch, capsys):
    import errno
    import sqlite3

    import sqlalchemy

    from lit_basics import atomic_files

    search = _search(workdir, "space:\n  width: [4]\n")

    original = atomic_files.write_chunk
    disk_full = [True]

    def full(handle, data):
        if disk_full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(handle, data)

    monkeypatch.setattr(atomic_files, "write_chunk", full)
    with pytest.raises(SystemExit) as info:
        _tune(search, "--no-refit")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: cannot write 'reports/tiny_search/trials.csv': no space left on device (ENOSPC); "
        "the previous file, if any, is unchanged")
    assert not list(Path("reports/tiny_search").glob(".*.tmp"))
    disk_full[0] = False

    def full_at_commit(*args, **kwargs):  # as optuna's RDBStorage reports a failed commit
        try:
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
        except sqlalchemy.exc.OperationalError as err:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from err

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", full_at_commit)
    with pytest.raises(SystemExit) as info:
        _tune(search, "--no-refit")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: study storage 'reports/tiny_search/study.db' cannot be written: database or disk is full")


def test_the_heat_map_and_the_summary_show_the_best_trial_of_each_cell_and_close_scores_get_a_note():
    import pandas as pd

    from lit_basics.experiments.search.report import cell_grid, spread_note

    trials = pd.DataFrame({"state": ["complete"] * 4, "depth": [1, 1, 2, 2], "width": [8, 8, 8, 8],
                           "mean": [0.95, 0.60, 0.94, 0.93], "std": [0.015, 0.1, 0.01, 0.01], "rank": [1, 4, 2, 3]})
    grid = cell_grid(trials, "depth", "width")
    # by the cell mean, depth 2 (0.935) would beat depth 1 (0.775); the named best trial is in depth 1
    assert grid.stack().idxmax() == (1, 8) and grid.loc[1, 8] == 0.95
    note = " ".join(spread_note(trials))
    assert "1 other configuration(s) score within one fold std (0.0150) of the best (0.9500)" in note
    assert spread_note(trials.assign(std=0.001)) == []
