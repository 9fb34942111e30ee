"""FNNClassifier, FNNRegressor and FNNSearchCV: scikit-learn's own estimator checks, composition, search, bridge."""

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from lit_basics.estimators import FNNClassifier, FNNRegressor, FNNSearchCV

TINY = {"hidden_layer_sizes": (16,), "max_iter": 20, "learning_rate_init": 0.02, "batch_size": 32,
        "random_state": 0, "device": "cpu"}


@parametrize_with_checks([FNNClassifier(**TINY), FNNRegressor(**TINY),
                          FNNClassifier(**TINY, norm="batch", residual=True), FNNRegressor(**TINY, norm="layer")])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


IRIS_FNN = {"hidden_layer_sizes": (8,), "max_iter": 15, "batch_size": 16, "learning_rate_init": 0.02,
            "random_state": 0, "device": "cpu"}


def test_search_fold_scores_equal_gridsearchcv_with_the_same_cv():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lit_basics.estimators import FNNSearchCV

    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), FNNClassifier(**IRIS_FNN))
    grid = {"fnnclassifier__hidden_layer_sizes": [(8,), (16, 8)], "fnnclassifier__learning_rate_init": [0.01, 0.05]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ours = FNNSearchCV(pipeline, grid, cv=cv, n_jobs=1).fit(X, y)
    reference = GridSearchCV(pipeline, grid, cv=cv).fit(X, y)
    assert set(ours.cv_results_) == set(reference.cv_results_)
    for k in range(3):
        np.testing.assert_allclose(ours.cv_results_[f"split{k}_test_score"],
                                   reference.cv_results_[f"split{k}_test_score"], atol=1e-6)
    assert ours.best_params_ == reference.best_params_
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_search_regressor_in_two_worker_processes_matches_one():
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import KFold

    from lit_basics.estimators import FNNSearchCV

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120] * 10, y[:120] / 100
    grid = {"learning_rate_init": [0.01, 0.03], "alpha": [0.0, 1.0]}
    searches = [FNNSearchCV(FNNRegressor(**IRIS_FNN), grid, cv=KFold(2), n_jobs=n, refit=False).fit(X, y)
                for n in (1, 2)]
    np.testing.assert_allclose(*(s.cv_results_["mean_test_score"] for s in searches), atol=1e-6)
    assert not hasattr(searches[0], "best_estimator_") and np.isfinite(searches[0].best_score_)


def test_search_refuses_a_whole_step_and_an_estimator_that_is_not_an_fnn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lit_basics.estimators import FNNSearchCV

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    pipeline = make_pipeline(StandardScaler(), FNNClassifier(**IRIS_FNN))
    with pytest.raises(ValueError, match="cannot search 'standardscaler'"):
        FNNSearchCV(pipeline, {"standardscaler": [StandardScaler(), "passthrough"]}, cv=2).fit(X, y)
    with pytest.raises(ValueError, match="got LogisticRegression"):
        FNNSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2).fit(X, y)


def _table() -> tuple:
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 90
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    y = np.where((colour == "red") | (size > 1), "yes", "no")
    return pd.DataFrame({"colour": colour, "size": size, "noise": rng.normal(size=n)}), y


def _column_pipeline():
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = make_column_transformer((OneHotEncoder(sparse_output=False), ["colour"]),
                                   (StandardScaler(), ["size", "noise"]))
    return Pipeline([("prep", prep), ("fnn", FNNClassifier(**{**IRIS_FNN, "max_iter": 40}))])


def test_pipeline_with_column_transformer_composes_with_sklearn_tools():
    import pickle

    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score

    from lit_basics.estimators import FNNSearchCV

    X, y = _table()
    pipeline = _column_pipeline()
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7
    grid = {"fnn__hidden_layer_sizes": [(8,), (4,)], "prep__standardscaler__with_mean": [True, False]}
    ours = FNNSearchCV(pipeline, grid, cv=3).fit(X, y)
    reference = GridSearchCV(pipeline, grid, cv=3).fit(X, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"], atol=1e-6)
    fitted = clone(pipeline).fit(X, y)
    assert list(fitted[-1].classes_) == ["no", "yes"] and fitted[-1].n_features_in_ == 5
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert clone(fitted).get_params()["fnn__max_iter"] == 40 and not hasattr(clone(fitted)[-1], "coefs_")


@pytest.mark.parametrize(("params", "message"), [
    ({"norm": "group"}, "unknown norm 'group'; allowed: batch, layer, none"),
    ({"residual": "yes"}, "residual='yes' must be true or false"),
    ({"activation": "swish"}, "unknown activation 'swish'; allowed:"),
    ({"solver": "lbfgs"}, "unknown optimizer 'lbfgs'; allowed:"),
    ({"loss": "hinge"}, None),
    ({"hidden_layer_sizes": []}, r"hidden_layer_sizes=\[\] must be"),
    ({"learning_rate_init": 0.0}, "learning_rate_init=0.0 must be > 0"),
    ({"tol": -1.0}, "tol=-1.0 must be a number >= 0"),
    ({"device": "tpu"}, "device='tpu' is not a torch device"),
])
def test_bad_parameters_fail_with_one_line_naming_them(params, message):
    X, y = np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 2
    estimator = FNNClassifier(**{**IRIS_FNN, "max_iter": 2, **params})
    if message is None:
        assert estimator.fit(X, y).n_iter_ == 2
        return
    with pytest.raises(ValueError, match=message) as error:
        estimator.fit(X, y)
    assert "\n" not in str(error.value)


def test_alpha_is_l2_larger_alpha_gives_smaller_weights():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    norms = [sum(float((w**2).sum()) for w in FNNClassifier(**{**IRIS_FNN, "alpha": a}).fit(X, y).coefs_)
             for a in (0.0, 10.0)]
    assert norms[1] < 0.8 * norms[0]


def test_early_stopping_records_validation_scores_and_stops():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    clf = FNNClassifier(**{**IRIS_FNN, "max_iter": 300, "early_stopping": True, "n_iter_no_change": 3}).fit(X, y)
    assert clf.n_iter_ < 300 and len(clf.validation_scores_) == len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None


def test_a_larger_tol_stops_sooner():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    epochs = [FNNClassifier(**{**IRIS_FNN, "max_iter": 300, "n_iter_no_change": 5, "tol": tol}).fit(X, y).n_iter_
              for tol in (0.0, 0.05)]
    assert epochs[1] < epochs[0]


def test_to_config_trains_the_same_network_with_train_py(workdir):
    from pathlib import Path

    import yaml

    from tests.conftest import config, run_cli

    clf = FNNClassifier((16, 8), batch_size=16, alpha=0.32, max_iter=2, solver="momentum", random_state=3)
    (workdir / "fnn.yaml").write_text(yaml.safe_dump(clf.to_config()))
    metrics = run_cli("fit", "--config", config("iris"), "--config", "fnn.yaml")
    saved = yaml.safe_load((Path(metrics["log_dir"]) / "config.yaml").read_text())
    assert saved["model"]["hidden_sizes"] == [16, 8] and saved["model"]["optimizer"] == "momentum"
    assert saved["model"]["weight_decay"] == 0.02 and saved["data"]["init_args"]["batch_size"] == 16
    assert saved["trainer"]["max_epochs"] == 2 and saved["seed_everything"] == 3


def test_to_config_builds_the_estimators_network_with_its_initial_weights(workdir):
    """The same random_state gives LitFNN (built from to_config) the estimator's starting weights."""
    import yaml
    from sklearn.datasets import load_iris

    from lit_basics.experiments.runs import check_args
    from tests.conftest import config

    X, y = load_iris(return_X_y=True)
    clf = FNNClassifier((16, 8), learning_rate_init=1e-12, max_iter=1, solver="sgd", random_state=3).fit(X, y)
    (workdir / "fnn.yaml").write_text(yaml.safe_dump(clf.to_config()))
    model = check_args("bridge", ["--config", config("iris"), "--config", "fnn.yaml"]).model
    linears = model.net.linears()
    assert len(linears) == len(clf.coefs_)
    for layer, w, b in zip(linears, clf.coefs_, clf.intercepts_, strict=True):  # an lr of 1e-12 moved nothing
        np.testing.assert_allclose(layer.weight.detach().numpy().T, w, atol=1e-6)
        np.testing.assert_allclose(layer.bias.detach().numpy(), b, atol=1e-6)


def test_search_refuses_an_error_score_it_would_not_honour():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="error_score=nan is not supported; allowed: 'raise'"):
        FNNSearchCV(FNNClassifier(**IRIS_FNN), {"alpha": [0.0]}, cv=2, error_score=np.nan).fit(X, y)


def test_a_searched_candidate_with_dropout_scores_as_its_separate_fit():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = load_iris(return_X_y=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    base = FNNClassifier(**{**IRIS_FNN, "dropout": 0.3})
    search = FNNSearchCV(base, {"hidden_layer_sizes": [(8,), (16,)], "learning_rate_init": [0.02, 0.05]}, cv=cv,
                         n_jobs=1).fit(X, y)
    for i, params in enumerate(search.cv_results_["params"]):
        separate = cross_val_score(FNNClassifier(**{**IRIS_FNN, "dropout": 0.3, **params}), X, y, cv=cv)
        np.testing.assert_allclose([search.cv_results_[f"split{k}_test_score"][i] for k in range(3)], separate,
                                   atol=1e-6)


def test_a_diverging_fit_raises_as_mlpclassifier_does():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=r"training diverged at epoch 1 .* lower learning_rate_init=1000000000000.0"):
        FNNClassifier(**{**IRIS_FNN, "solver": "sgd", "learning_rate_init": 1e12}).fit(X, y)
    with pytest.raises(ValueError, match=r"candidate .*1000000000000.0.* on fold 0: training diverged"):
        FNNSearchCV(FNNClassifier(**{**IRIS_FNN, "solver": "sgd"}), {"learning_rate_init": [0.01, 1e12]}, cv=2,
                    n_jobs=1).fit(X, y)


@pytest.mark.parametrize("params", [{"activation": "gelu"}, {"norm": "batch", "residual": True},
                                    {"norm": "layer", "hidden_layer_sizes": (8, 8)}])
def test_every_architecture_fits_and_predicts_through_the_network_litfnn_builds(params):
    """The estimator's predictions are its module_'s forward: the FNN built from the same architecture."""
    from sklearn.datasets import load_iris

    from lit_basics.models.fnn import FNN

    X, y = load_iris(return_X_y=True)
    clf = FNNClassifier(**{**IRIS_FNN, "max_iter": 60, **params}).fit(X, y)
    assert isinstance(clf.module_, FNN) and clf.score(X, y) > 0.8
    arch = clf.module_.architecture
    assert (arch.norm, arch.residual, arch.activation) == (clf.norm, clf.residual, clf.activation)
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(X, dtype=torch.float64))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[logits.argmax(1).numpy()])


def test_every_schema_field_is_an_estimator_parameter_by_its_name_or_its_scikit_learn_name():
    """The estimators take every field of the one hyperparameter schema: a new field cannot be forgotten here."""
    import inspect

    from lit_basics.models import hparams

    parameters = set(inspect.signature(FNNClassifier.__init__).parameters) - {"self"}
    renamed = {schema: name for name, schema in hparams.SKLEARN_NAMES.items()}
    expected = {renamed.get(name, name) for name in hparams.defaults()} | {"max_iter"}
    assert expected <= parameters, sorted(expected - parameters)
    estimator_only = {"batch_size", "early_stopping", "validation_fraction", "n_iter_no_change", "tol", "random_state",
                      "verbose", "device"}  # MLPClassifier's own training and reporting options
    assert parameters - expected == estimator_only


def test_an_injected_net_trains_in_the_estimator():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    net = {"class_path": "tests.test_models.TwoLayer", "init_args": {"width": 12}}
    clf = FNNClassifier(**{**IRIS_FNN, "max_iter": 60, "hidden_layer_sizes": (100,)}, net=net)
    clf.fit(X, y)
    assert type(clf.module_).__name__ == "TwoLayer" and clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="model.norm='batch' has no effect on net"):
        FNNClassifier(**{**IRIS_FNN, "hidden_layer_sizes": (100,)}, net=net, norm="batch").fit(X, y)
    branching = {"class_path": "tests.test_models.DataDependent"}  # its forward branches on its data
    with pytest.raises(ValueError, match="the batched engine cannot train DataDependent as stacked copies"):
        FNNClassifier(**{**IRIS_FNN, "hidden_layer_sizes": (100,)}, net=branching).fit(X, y)


def _ensemble_search(X, y, n_ensemble, estimator=None, **kwargs):
    from sklearn.model_selection import StratifiedKFold

    estimator = estimator or FNNClassifier(**{**IRIS_FNN, "max_iter": 20})
    grid = {"learning_rate_init": [0.003, 0.01, 0.03], "hidden_layer_sizes": [(8,), (16,)]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return FNNSearchCV(estimator, grid, cv=cv, refit="ensemble", n_ensemble=n_ensemble, **kwargs).fit(X, y)


def test_refit_ensemble_averages_the_fold_models_of_the_best_candidates_and_pickles_and_clones():
    import pickle

    from sklearn.base import clone
    from sklearn.datasets import load_iris
    from sklearn.ensemble import VotingClassifier

    X, y = load_iris(return_X_y=True)
    search = _ensemble_search(X, y, 2)
    ensemble = search.best_estimator_
    assert isinstance(ensemble, VotingClassifier) and len(ensemble.estimators_) == 2 * 3
    ranks = search.cv_results_["rank_test_score"]
    assert sorted(ranks[c] for c in search.ensemble_candidates_) == sorted(ranks)[:2]
    mean = np.mean([m.predict_proba(X) for m in ensemble.estimators_], axis=0)
    np.testing.assert_allclose(search.predict_proba(X), mean)
    np.testing.assert_array_equal(search.predict(X), search.classes_[mean.argmax(1)])
    again = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(again.predict_proba(X), search.predict_proba(X))
    refitted = clone(ensemble).fit(X, y)  # a clone is the same configurations, unfitted
    assert len(refitted.estimators_) == 6 and refitted.score(X, y) > 0.8
    assert search.refit_time_ == 0.0  # nothing was retrained


def test_a_one_member_ensemble_predicts_as_its_member():
    from sklearn.datasets import load_iris

    from lit_basics.estimators.ensemble import fold_ensemble

    X, y = load_iris(return_X_y=True)
    member = FNNClassifier(**IRIS_FNN).fit(X, y)
    ensemble = fold_ensemble([("only", member)])
    np.testing.assert_allclose(ensemble.predict_proba(X), member.predict_proba(X))
    np.testing.assert_array_equal(ensemble.predict(X), member.predict(X))


def test_the_ensembles_out_of_fold_score_uses_only_held_out_folds():
    """Labels that are noise: the fold models learn their training rows, so a score computed on rows they
    trained on would be far above chance; held out, it stays near chance."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(150, 6)), rng.integers(0, 3, 150)
    memorising = FNNClassifier(hidden_layer_sizes=(128,), max_iter=300, learning_rate_init=0.01, batch_size=16,
                               random_state=0, device="cpu", n_iter_no_change=300)
    search = _ensemble_search(X, y, 3, estimator=memorising)
    assert search.best_estimator_.score(X, y) > 0.75  # each row was learnt by 2 of each candidate's 3 models
    assert search.ensemble_score_ < 0.5  # chance is 1/3


def test_refit_ensemble_refuses_a_bad_size():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="n_ensemble=0 must be an integer >= 1"):
        _ensemble_search(X, y, 0)


@pytest.mark.parametrize("n_jobs", [0, 1.5, True])
def test_searchcv_validates_n_jobs_as_gridsearchcv(n_jobs):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=f"n_jobs={n_jobs!r} must be None, a positive integer"):
        FNNSearchCV(FNNClassifier(**IRIS_FNN), {"alpha": [0.0]}, cv=2, n_jobs=n_jobs).fit(X, y)


def test_searchcv_refuses_an_injected_net_vmap_cannot_batch_before_training():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    branching = FNNClassifier(**{**IRIS_FNN, "hidden_layer_sizes": (100,)},
                              net={"class_path": "tests.test_models.DataDependent"})
    with pytest.raises(ValueError, match="cannot train DataDependent as stacked copies"):
        FNNSearchCV(branching, {"learning_rate_init": [0.01, 0.02]}, cv=2).fit(X, y)
