"""The four sides of the accuracy run, each trained on one seed's rows and scored once on its test rows.

- ours: the shipped config through the CLI (train split, early stopping on the val split);
- sklearn: GridSearchCV(StandardScaler + MLPClassifier/MLPRegressor) over the translated search grid;
- ensemble: FNNSearchCV(StandardScaler + FNNClassifier/FNNRegressor, refit="ensemble") over the same grid
  in our parameter names: the fold models of the n_ensemble best candidates, averaged (no refit);
- hgb: HistGradientBoostingClassifier/Regressor with scikit-learn's default settings, a non-neural reference.
The three scikit-learn-faced sides fit on the training portion (train + val rows) and k-fold it with the
same folds where they search.
"""

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from lit_basics.experiments.runs import fit

if TYPE_CHECKING:
    from lit_basics.experiments.accuracy.runner import DataSetPlan, SplitRows


def scores_on_test(predicted: np.ndarray, rows: "SplitRows") -> dict[str, float]:
    """accuracy, or R2 and RMSE in the target's units, of predictions for rows.x_test."""
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

    if rows.task == "regression":
        return {"r2": float(r2_score(rows.y_test, predicted)),
                "rmse": float(np.sqrt(mean_squared_error(rows.y_test, predicted)))}
    return {"accuracy": float(accuracy_score(rows.y_test, predicted))}


def run_ours(plan: "DataSetPlan", seed: int, rows: "SplitRows", logs: str, **_: Any) -> dict[str, Any]:
    """The shipped config through the real CLI on split seed `seed`; its test metrics."""
    args = ["--config", str(plan.config), f"--data.init_args.seed={seed}", *plan.overrides]
    started = time.perf_counter()
    metrics = fit(args, f"{logs}/accuracy", plan.name, f"seed_{seed}", seed)
    hp = metrics.get("hparams", {})
    config = (f"hidden_sizes={list(hp.get('hidden_sizes', []))} activation={hp.get('activation')} "
              f"lr={hp.get('lr')} weight_decay={hp.get('weight_decay')} "
              f"batch_size={metrics.get('data_hparams', {}).get('batch_size')} epochs={metrics.get('epochs')}")
    row = {"config": config, "seconds": time.perf_counter() - started}
    if rows.task == "regression":
        return row | {"r2": metrics["test/r2"], "rmse": metrics["test/rmse"]}  # LitFNN logs it in target units
    return row | {"accuracy": metrics["test/acc"]}


def _standardised_target(estimator: Any, regression: bool) -> Any:
    """Regression targets standardised on the rows it is fitted on, as ours (TransformedTargetRegressor)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(estimator, transformer=StandardScaler()) if regression else estimator


def run_sklearn(plan: "DataSetPlan", seed: int, rows: "SplitRows", n_jobs: int, **_: Any) -> dict[str, Any]:
    """GridSearchCV over StandardScaler + MLP on the same training portion and folds; scored on the test rows."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = rows.task == "regression"
    mlp = (MLPRegressor if regression else MLPClassifier)(random_state=seed, **plan.sklearn_fixed)
    estimator = _standardised_target(make_pipeline(StandardScaler(), mlp), regression)
    prefix = ("regressor__" if regression else "") + f"{type(mlp).__name__.lower()}__"
    grid = [{prefix + k: v for k, v in g.items()} for g in plan.sklearn_grid]
    search = GridSearchCV(estimator, grid, cv=rows.folds, n_jobs=n_jobs, error_score="raise")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, batch_size clipped to the rows
        search.fit(rows.x_portion, rows.y_portion)
    predicted = search.predict(rows.x_test)
    best = " ".join(f"{k.removeprefix(prefix)}={v}" for k, v in sorted(search.best_params_.items()))
    return {"config": best, "seconds": time.perf_counter() - started} | scores_on_test(predicted, rows)


def fit_ensemble(plan: "DataSetPlan", seed: int, rows: "SplitRows", n_jobs: int) -> Any:
    """FNNSearchCV(StandardScaler + FNN, refit="ensemble") fitted on the training portion with its folds.

    Regression: inside a TransformedTargetRegressor (targets standardised on the whole training portion,
    so the folds' scores see its mean and std; the test rows never). Classic XOR has no held-out rows
    (each fold trains and scores on the 4 points): its fold models stop on their training loss."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lit_basics.estimators import FNNClassifier, FNNRegressor, FNNSearchCV

    regression = rows.task == "regression"
    fnn = (FNNRegressor if regression else FNNClassifier)(random_state=seed, **plan.fnn_fixed)
    if any(np.array_equal(train, val) for train, val in rows.folds):
        fnn.set_params(early_stopping=False)
    prefix = f"{type(fnn).__name__.lower()}__"
    grid = [{prefix + k: v for k, v in g.items()} for g in plan.fnn_grid]
    search = FNNSearchCV(make_pipeline(StandardScaler(), fnn), grid, cv=rows.folds, refit="ensemble",
                         n_ensemble=plan.n_ensemble, n_jobs=n_jobs)
    return _standardised_target(search, regression).fit(rows.x_portion, rows.y_portion)


def ensemble_search(model: Any) -> Any:
    """The fitted FNNSearchCV of fit_ensemble's model."""
    return getattr(model, "regressor_", model)


def run_ensemble(plan: "DataSetPlan", seed: int, rows: "SplitRows", n_jobs: int, **_: Any) -> dict[str, Any]:
    """The ensemble of the n_ensemble best candidates' fold models, scored on the test rows; seconds: search +
    ensemble (there is no refit)."""
    started = time.perf_counter()
    model = fit_ensemble(plan, seed, rows, n_jobs)
    seconds = time.perf_counter() - started
    search = ensemble_search(model)
    best = search.cv_results_["params"]
    chosen = "; ".join(" ".join(f"{k.split('__')[-1]}={v}" for k, v in sorted(best[c].items()))
                       for c in search.ensemble_candidates_)
    config = (f"{len(search.best_estimator_.estimators_)} networks ({len(search.ensemble_candidates_)} candidates x "
              f"{search.n_splits_} folds), out-of-fold score {search.ensemble_score_:.4f}: {chosen}")
    return {"config": config, "seconds": seconds} | scores_on_test(model.predict(rows.x_test), rows)


def run_hgb(plan: "DataSetPlan", seed: int, rows: "SplitRows", **_: Any) -> dict[str, Any]:
    """HistGradientBoostingClassifier/Regressor (plan.hgb_fixed, else scikit-learn's defaults) on the training
    portion, scored on the test rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if rows.task == "regression" else HistGradientBoostingClassifier
    model = cls(random_state=seed, **plan.hgb_fixed)
    started = time.perf_counter()
    model.fit(rows.x_portion, rows.y_portion)
    seconds = time.perf_counter() - started
    config = f"max_iter={model.max_iter} learning_rate={model.learning_rate} rounds={model.n_iter_}"
    return {"config": config, "seconds": seconds} | scores_on_test(model.predict(rows.x_test), rows)


# the order of the CSV rows and the report's columns
SIDES: dict[str, Callable[..., dict[str, Any]]] = {"ours": run_ours, "sklearn": run_sklearn,
                                                    "ensemble": run_ensemble, "hgb": run_hgb}
