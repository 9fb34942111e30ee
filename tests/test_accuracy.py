"""scripts/accuracy.py: every side on the same rows, the report's files and verdicts, bad input."""

import csv
from pathlib import Path

import numpy as np
import pytest

from lit_basics.experiments.accuracy import sides
from lit_basics.experiments.accuracy.report import CSV_COLUMNS, compare_sides
from lit_basics.experiments.accuracy.runner import (
    DATASETS,
    SKLEARN_ACTIVATIONS,
    grid_size,
    plan_datasets,
    split_rows,
)
from lit_basics.experiments.commands import accuracy_main
from lit_basics.experiments.runs import check_args
from lit_basics.experiments.search.space import load_search

from .conftest import CONFIGS


def test_quick_run_writes_csv_markdown_and_readme_section(workdir, capsys):
    readme = workdir / "README.md"
    readme.write_text("# project\n")
    out = accuracy_main(["--quick", "--datasets", "xor,iris,diabetes", "--no-progress", "--configs", str(CONFIGS),
                         "--readme", str(readme)])
    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert len(rows) == 3 * 4 * 2  # data sets x sides x seeds
    assert {(r["dataset"], r["side"], r["seed"]) for r in rows} == {
        (d, s, str(seed)) for d in ("xor", "iris", "diabetes") for s in ("ours", "sklearn", "ensemble", "hgb")
        for seed in (0, 1)}
    iris = [r for r in rows if r["dataset"] == "iris"]
    assert {r["n_test"] for r in iris} == {"45"} and {r["n_train"] for r in iris} == {"105"}
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in iris)
    assert {r["config"].split(" (")[0] for r in iris if r["side"] == "ensemble"} == {"4 networks"}  # 2 x 2 folds
    diabetes = [r for r in rows if r["dataset"] == "diabetes"]
    assert all(r["accuracy"] == "" and float(r["rmse"]) > 0 and r["r2"] for r in diabetes)
    markdown = (out / "results.md").read_text()
    tables = markdown.split("\n\n")
    table = next(t for t in tables if t.startswith("| data set | metric | ours |")).splitlines()
    assert table[0].split(" | ")[2:6] == ["ours", "sklearn", "ensemble", "hgb"]
    assert [line.split(" | ")[:2] for line in table[2:]] == [
        ["| xor", "accuracy"], ["| iris", "accuracy"], ["| diabetes", "r2"], ["| diabetes", "rmse"]]
    paired = next(t for t in tables if t.startswith("| data set | metric | vs |")).splitlines()
    assert [line.split(" | ")[:3] for line in paired[2:]] == [
        ["| xor", "accuracy", "ensemble"], ["| xor", "accuracy", "hgb"], ["| iris", "accuracy", "ensemble"],
        ["| iris", "accuracy", "hgb"], ["| diabetes", "r2", "ensemble"], ["| diabetes", "r2", "hgb"],
        ["| diabetes", "rmse", "ensemble"], ["| diabetes", "rmse", "hgb"]]
    assert "python scripts/accuracy.py --quick" in markdown
    text = readme.read_text()
    assert "<!-- results:accuracy:start -->" in text and "| iris | accuracy |" in text
    assert not list(Path("reports").glob(".accuracy.*"))


def test_sklearn_side_sees_the_rows_of_our_run():
    (plan,) = plan_datasets(["wine"], CONFIGS)
    rows = split_rows(plan, seed=3)
    dm = check_args("wine", ["--config", str(CONFIGS / "wine.yaml"), "--data.init_args.seed=3"]).datamodule
    dm.setup("fit")
    x_test, y_test = (t.numpy() for t in dm.tensors["test"])
    assert np.array_equal(rows.y_test, y_test)
    scaled = (rows.x_test - dm.scaler[0]) / dm.scaler[1]
    np.testing.assert_allclose(scaled, x_test, atol=1e-5)
    assert len(rows.y_portion) == len(dm.tensors["train"][1]) + len(dm.tensors["val"][1])
    covered = np.sort(np.concatenate([val for _, val in rows.folds]))
    assert np.array_equal(covered, np.arange(len(rows.y_portion)))


def test_sklearn_grid_is_the_search_grid_translated():
    (plan,) = plan_datasets(["moons"], CONFIGS)
    search = load_search(CONFIGS / "experiments" / "tune_moons.yaml")
    assert grid_size(plan.sklearn_grid) == int(np.prod([len(v) for v in search.grid().values()]))
    assert set(plan.sklearn_grid[0]) == {"hidden_layer_sizes", "activation", "learning_rate_init", "batch_size",
                                         "alpha"}
    (xor,) = plan_datasets(["xor"], CONFIGS)
    assert xor.sklearn_fixed["batch_size"] == 4 and xor.sklearn_fixed["alpha"] == 0  # not searched: the shipped value


def test_weight_decay_becomes_alpha_times_the_batch_size():
    """MLPClassifier's L2 gradient is alpha * W / batch rows; LitFNN's is weight_decay * W."""
    (plan,) = plan_datasets(["iris"], CONFIGS)
    search = load_search(CONFIGS / "experiments" / "tune_iris.yaml")
    axes = dict(search.grid())
    decays = axes["model.weight_decay"]
    assert [g["batch_size"] for g in plan.sklearn_grid] == [[b] for b in axes["data.init_args.batch_size"]]
    for sub in plan.sklearn_grid:
        assert sub["alpha"] == pytest.approx([w * sub["batch_size"][0] for w in decays])
    assert grid_size(plan.sklearn_grid) == int(np.prod([len(v) for v in search.grid().values()]))


def test_classic_xor_folds_train_and_score_on_the_four_points():
    (plan,) = plan_datasets(["xor"], CONFIGS)
    rows = split_rows(plan, seed=0)
    assert len(rows.y_portion) == len(rows.y_test) == 4
    assert all(np.array_equal(tr, np.arange(4)) and np.array_equal(va, np.arange(4)) for tr, va in rows.folds)


def test_beyond_noise_compares_the_mean_difference_with_the_seed_spread():
    rows = [{"dataset": "d", "side": side, "seed": s, "accuracy": acc}
            for s, (a, b) in enumerate([(0.95, 0.90), (0.97, 0.93), (0.96, 0.91)])
            for side, acc in (("ours", a), ("sklearn", b))]
    clear = compare_sides(rows, "d", "accuracy")
    assert clear["beyond_noise"] and clear["diff"] == pytest.approx(0.0467, abs=1e-3) and clear["p"] < 0.01
    noisy = [dict(r, accuracy=r["accuracy"] + (0.1 if r["side"] == "sklearn" and r["seed"] == 0 else 0)) for r in rows]
    assert not compare_sides(noisy, "d", "accuracy")["beyond_noise"]


@pytest.mark.parametrize(("args", "message"), [
    (["--datasets", "cifar"], f"unknown data set 'cifar'; allowed: {', '.join(sorted(DATASETS))}"),
    (["--datasets", "iris,iris"], "names a data set twice"),
    (["--datasets", ""], "--datasets is empty"),
    (["--seeds", "0"], "--seeds 0 must be >= 1"),
    (["--n-ensemble", "0"], "--n-ensemble 0 must be an integer >= 1"),
    (["--configs", "nowhere"], "shipped config 'nowhere/xor.yaml' not found"),
    (["--readme", "absent.md"], "--readme 'absent.md' is not a file"),
])
def test_bad_input_gives_one_line_and_leaves_nothing(workdir, capsys, args, message):
    configs = [] if "--configs" in args else ["--configs", str(CONFIGS)]
    with pytest.raises(SystemExit) as info:
        accuracy_main(["--quick", "--no-progress", *configs, *args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not Path("reports").exists() and not list(Path(".").glob("logs/**/*.*"))


def test_every_data_set_has_a_search_on_its_default_split_and_a_translatable_grid():
    from lit_basics.experiments.accuracy.runner import DATASETS

    plans = plan_datasets(list(DATASETS), CONFIGS)
    for plan in plans:
        default_seed = check_args(plan.name, ["--config", str(plan.config)]).datamodule.seed
        assert plan.search.seed == default_seed, plan.name
        assert plan.search.base.resolve() == plan.config.resolve(), plan.name
        assert grid_size(plan.sklearn_grid) == int(np.prod([len(v) for v in plan.search.grid().values()]))


def test_the_ensemble_side_is_the_fold_models_averaged_and_scored_on_the_test_rows(monkeypatch):
    """Its members are the candidates' fold models, each scaled and trained on its fold's training rows only;
    its prediction is the mean of their probabilities; the reported accuracy is that prediction's on y_test."""
    from sklearn.ensemble import VotingClassifier

    (plan,) = plan_datasets(["iris"], CONFIGS, quick=True, n_ensemble=2)
    rows = split_rows(plan, seed=1)
    fitted = []
    fit = sides.fit_ensemble
    monkeypatch.setattr(sides, "fit_ensemble", lambda *a, **k: fitted.append(fit(*a, **k)) or fitted[-1])
    result = sides.run_ensemble(plan, 1, rows, n_jobs=1)
    (search,) = fitted
    ensemble = search.best_estimator_
    assert isinstance(ensemble, VotingClassifier) and len(ensemble.estimators_) == 2 * 2  # candidates x folds
    assert sorted(search.ensemble_candidates_) == [0, 1]
    for name, member in ensemble.named_estimators_.items():
        train = rows.folds[int(name.rsplit("fold", 1)[1])][0]
        np.testing.assert_allclose(member[0].mean_, rows.x_portion[train].mean(0))  # its fold's rows, no test row
        assert member[-1].max_iter == 3 and member[-1].random_state == 1
    mean_proba = np.mean([m.predict_proba(rows.x_test) for m in ensemble.estimators_], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(rows.x_test), mean_proba)
    assert result["accuracy"] == np.mean(search.classes_[mean_proba.argmax(1)] == rows.y_test)
    assert result["config"].startswith("4 networks (2 candidates x 2 folds), out-of-fold score")


def test_the_regression_ensemble_predicts_in_the_targets_units():
    from sklearn.ensemble import VotingRegressor

    (plan,) = plan_datasets(["diabetes"], CONFIGS, quick=True)
    rows = split_rows(plan, seed=0)
    model = sides.fit_ensemble(plan, 0, rows, n_jobs=1)
    assert isinstance(sides.ensemble_search(model).best_estimator_, VotingRegressor)
    predicted = model.predict(rows.x_test)
    assert abs(predicted.mean() - rows.y_portion.mean()) < rows.y_portion.std()  # not standardised units (~0)


def test_gradient_boosting_trains_on_the_training_portion_and_is_scored_on_the_test_rows(monkeypatch):
    from sklearn import ensemble

    seen = {}

    class Spy(ensemble.HistGradientBoostingClassifier):
        def fit(self, X, y):
            seen["fit"] = (X, y)
            return super().fit(X, y)

        def predict(self, X):
            seen["predict"] = X
            seen["predicted"] = super().predict(X)
            return seen["predicted"]

    monkeypatch.setattr(ensemble, "HistGradientBoostingClassifier", Spy)
    (plan,) = plan_datasets(["wine"], CONFIGS, quick=True)
    rows = split_rows(plan, seed=2)
    result = sides.run_hgb(plan, 2, rows)
    assert np.array_equal(seen["fit"][0], rows.x_portion) and np.array_equal(seen["fit"][1], rows.y_portion)
    assert np.array_equal(seen["predict"], rows.x_test)
    assert result["accuracy"] == np.mean(seen["predicted"] == rows.y_test)
    assert result["config"].startswith("max_iter=10 ")  # quick: 10 rounds


def test_the_ensemble_grid_is_the_sklearn_grid_in_our_names_with_the_shipped_settings():
    ours_name = {v: k for k, v in SKLEARN_ACTIVATIONS.items()}
    for plan in plan_datasets(list(DATASETS), CONFIGS):
        renamed = [{k: [ours_name[v] for v in values] if k == "activation" else values for k, values in g.items()}
                   for g in plan.sklearn_grid]
        assert plan.fnn_grid == renamed, plan.name
        epochs = int(plan.search.common.get("trainer.max_epochs", 200))
        assert plan.fnn_fixed["max_iter"] == epochs and plan.fnn_fixed["n_iter_no_change"] == plan.search.patience
        cli = check_args(plan.name, ["--config", str(plan.config)])
        hp = cli.model.hparams
        assert plan.fnn_fixed["init"] == hp.init and plan.fnn_fixed["solver"] == hp.optimizer, plan.name
        if "activation" not in plan.fnn_grid[0]:
            assert plan.fnn_fixed["activation"] == hp.activation, plan.name
