"""Train each shipped config on several split seeds, and scikit-learn's grid-searched MLP on the same rows.

For split seed S both sides see the rows of the DataModule built from `configs/<name>.yaml` with
`data.seed=S`: ours trains on its train split (early stopping on its val split), scikit-learn's
`GridSearchCV` k-folds the same train + val rows, and both are scored once on the same test rows.
scikit-learn's grid is the search space that chose the shipped config (`tune_<name>.yaml`),
translated axis by axis, so both sides had a grid of the same size.
"""

import itertools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_basics.errors import ConfigError, check_choice
from lit_basics.experiments.runs import check_args, fit
from lit_basics.experiments.search.space import SearchSpec, load_search

DATASETS = ("xor", "moons", "circles", "iris", "digits", "breast_cancer", "wine", "diabetes")
QUICK_DATASETS = ("xor", "iris")
# A searched key of tune_<name>.yaml -> MLPClassifier/MLPRegressor's parameter with the same meaning.
SKLEARN_PARAMS = {
    "model.lr": "learning_rate_init",
    "data.init_args.batch_size": "batch_size",
    "model.weight_decay": "alpha",  # alpha = weight_decay * batch_size: _alpha_per_batch_size
    "model.activation": "activation",
}
SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic", "identity": "identity"}


@dataclass
class DataSetPlan:
    """One data set: its shipped config, the search that chose it, and scikit-learn's grid from that search."""

    name: str
    config: Path
    search: SearchSpec
    sklearn_grid: list[dict[str, Any]]
    sklearn_fixed: dict[str, Any]
    overrides: list[str] = field(default_factory=list)  # extra CLI arguments for our runs (quick mode)


def plan_datasets(names: list[str], configs: str | Path, quick: bool = False) -> list[DataSetPlan]:
    """Check every name, config and search space before anything trains; quick: tiny epochs and grids."""
    if not names:
        raise ConfigError(f"--datasets is empty; allowed: {', '.join(DATASETS)}")
    for name in names:
        check_choice("data set", name, DATASETS)
    if len(set(names)) != len(names):
        raise ConfigError(f"--datasets {','.join(names)} names a data set twice")
    return [_plan(name, Path(configs), quick) for name in names]


def _plan(name: str, configs: Path, quick: bool) -> DataSetPlan:
    config, search_file = configs / f"{name}.yaml", configs / "experiments" / f"tune_{name}.yaml"
    if not config.is_file():
        raise ConfigError(f"{name}: shipped config {str(config)!r} not found")
    search = load_search(search_file)
    grid = _sklearn_grid(search)
    epochs = int(search.common.get("trainer.max_epochs", 200))
    fixed = {"max_iter": epochs}
    overrides: list[str] = []
    if quick:
        first_axis = next(iter(grid[0]))
        grid = [{k: v[:2] if k == first_axis else v[:1] for k, v in grid[0].items()}]
        fixed["max_iter"] = 5
        search.folds = 2
        overrides = ["--trainer.max_epochs=3"]
    cli = check_args(name, ["--config", str(config), *overrides])
    shipped = {"model.lr": cli.model.hparams.lr, "data.init_args.batch_size": cli.datamodule.batch_size,
               "model.weight_decay": cli.model.hparams.weight_decay,
               "model.activation": SKLEARN_ACTIVATIONS.get(cli.model.hparams.activation)}
    fixed |= {SKLEARN_PARAMS[k]: v for k, v in shipped.items() if SKLEARN_PARAMS[k] not in grid[0] and v is not None}
    return DataSetPlan(name, config, search, *_alpha_per_batch_size(grid[0], fixed), overrides)


def _alpha_per_batch_size(grid: dict[str, list[Any]], fixed: dict[str, Any]) -> tuple[list[dict], dict[str, Any]]:
    """Our weight decay w as MLPClassifier's alpha = w * batch_size (its L2 gradient is alpha * W / batch
    rows), so with several batch sizes the grid becomes one sub-grid per batch size (same size)."""
    if "batch_size" not in grid:
        batch = fixed.get("batch_size", 200)  # 200: the cap of MLPClassifier's batch_size="auto"
        if "alpha" in grid:
            return [grid | {"alpha": [float(w) * batch for w in grid["alpha"]]}], fixed
        return [grid], fixed | ({"alpha": float(fixed["alpha"]) * batch} if "alpha" in fixed else {})
    decays = grid.get("alpha", [fixed.get("alpha", 0.0)])
    rest = {k: v for k, v in grid.items() if k not in ("alpha", "batch_size")}
    return ([rest | {"batch_size": [b], "alpha": [float(w) * b for w in decays]} for b in grid["batch_size"]],
            {k: v for k, v in fixed.items() if k != "alpha"})


def _sklearn_grid(search: SearchSpec) -> list[dict[str, list[Any]]]:
    """The search's grid as GridSearchCV's param_grid (`hidden_layer_sizes` from depth x width)."""
    axes = dict(search.grid())
    depths, widths = axes.pop("depth", None), axes.pop("width", None)
    grid: dict[str, list[Any]] = {}
    if depths is not None or widths is not None:
        grid["hidden_layer_sizes"] = [
            (int(w),) * int(d) for d, w in itertools.product(depths or [2], widths or [64])
        ]
    for key, values in axes.items():
        if key not in SKLEARN_PARAMS:
            raise ConfigError(
                f"{search.name}: searched key {key!r} has no scikit-learn counterpart; "
                f"allowed: depth, width, {', '.join(SKLEARN_PARAMS)}"
            )
        if key == "model.activation":
            for value in values:
                check_choice("activation for scikit-learn's MLP", value, SKLEARN_ACTIVATIONS)
            values = [SKLEARN_ACTIVATIONS[v] for v in values]
        grid[SKLEARN_PARAMS[key]] = list(values)
    return [grid]


def grid_size(grid: list[dict[str, list[Any]]]) -> int:
    return sum(int(np.prod([len(v) for v in g.values()])) for g in grid)


@dataclass
class SplitRows:
    """One seed's rows as raw arrays: the training portion with its k folds, and the test rows."""

    x_portion: np.ndarray
    y_portion: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    task: str
    target_std: float  # std of the train split's targets: our RMSE is in these units


def split_rows(plan: DataSetPlan, seed: int) -> SplitRows:
    """The rows our run with `data.seed=seed` uses, from the same DataModule class and arguments."""
    cli = check_args(plan.name, ["--config", str(plan.config), f"--data.init_args.seed={seed}", *plan.overrides])
    dm = cli.datamodule
    dm.folds = plan.search.folds
    y = np.asarray(dm.arrays[1])
    splits = dm.split_indices(y)
    portion = dm.training_portion(y)
    positions = {row: i for i, row in enumerate(portion)}
    folds = [(np.array([positions[r] for r in tr]), np.array([positions[r] for r in va]))
             for tr, va in dm.fold_indices(y, portion)]
    x = np.asarray(dm.arrays[0], dtype=np.float64)
    return SplitRows(x[portion], y[portion], x[splits["test"]], y[splits["test"]], folds, dm.task,
                     float(y[splits["train"]].std()) or 1.0)


def run_ours(plan: DataSetPlan, seed: int, rows: SplitRows, logs: str) -> dict[str, Any]:
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


def run_sklearn(plan: DataSetPlan, seed: int, rows: SplitRows, n_jobs: int) -> dict[str, Any]:
    """GridSearchCV over StandardScaler + MLP on the same training portion and folds; scored on the test rows."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = rows.task == "regression"
    mlp = (MLPRegressor if regression else MLPClassifier)(random_state=seed, **plan.sklearn_fixed)
    estimator: Any = make_pipeline(StandardScaler(), mlp)
    prefix = f"{type(mlp).__name__.lower()}__"
    if regression:  # targets standardised on the training rows, as ours
        estimator, prefix = TransformedTargetRegressor(estimator, transformer=StandardScaler()), f"regressor__{prefix}"
    grid = [{prefix + k: v for k, v in g.items()} for g in plan.sklearn_grid]
    search = GridSearchCV(estimator, grid, cv=rows.folds, n_jobs=n_jobs, error_score="raise")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, batch_size clipped to the rows
        search.fit(rows.x_portion, rows.y_portion)
    predicted = search.predict(rows.x_test)
    best = " ".join(f"{k.removeprefix(prefix)}={v}" for k, v in sorted(search.best_params_.items()))
    row = {"config": best, "seconds": time.perf_counter() - started}
    if regression:
        return row | {"r2": r2_score(rows.y_test, predicted),
                      "rmse": float(np.sqrt(mean_squared_error(rows.y_test, predicted)))}
    return row | {"accuracy": accuracy_score(rows.y_test, predicted)}


def run_dataset(plan: DataSetPlan, seeds: list[int], logs: str, n_jobs: int,
                on_row: Any = None) -> list[dict[str, Any]]:
    """Both sides on every seed; one row per side x seed."""
    out = []
    for seed in seeds:
        rows = split_rows(plan, seed)
        common = {"dataset": plan.name, "seed": seed, "n_train": len(rows.y_portion), "n_test": len(rows.y_test),
                  "grid_size": grid_size(plan.sklearn_grid)}
        for side, result in (("ours", run_ours(plan, seed, rows, logs)),
                             ("sklearn", run_sklearn(plan, seed, rows, n_jobs))):
            row = {**common, "side": side, "accuracy": None, "r2": None, "rmse": None} | result
            out.append(row)
            if on_row is not None:
                on_row(row)
    return out
