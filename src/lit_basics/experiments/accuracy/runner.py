"""Plan the accuracy run and take each split seed's rows; the sides that train on them are in sides.py.

For split seed S every side sees the rows of the DataModule built from `configs/<name>.yaml` with
`data.seed=S`: ours trains on its train split (early stopping on its val split); scikit-learn's
`GridSearchCV`, our `FNNSearchCV(refit="ensemble")` and `HistGradientBoosting*` train on the same
train + val rows (the searches k-fold them), and all are scored once on the same test rows. Both
searches' grids are the search space that chose the shipped config (`tune_<name>.yaml`), translated
axis by axis, so they have a grid of the same size.
"""

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_basics.errors import ConfigError, check_choice
from lit_basics.experiments.runs import check_args
from lit_basics.experiments.search.space import SearchSpec, load_search
from lit_basics.models import hparams

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
ENSEMBLE_SIZE = 5  # the ensemble side: the fold models of the 5 best candidates (5 x 5 folds = 25 networks)
QUICK_HGB_ITERATIONS = 10  # boosting rounds in --quick (default: scikit-learn's 100)


@dataclass
class DataSetPlan:
    """One data set: its shipped config, the search that chose it, and both searches' grids from that search.

    `fnn_grid` / `fnn_fixed`: FNNClassifier's (FNNRegressor's) parameters, the same names as scikit-learn's
    MLP but our activations; every schema field the search does not vary is the shipped config's.
    """

    name: str
    config: Path
    search: SearchSpec
    sklearn_grid: list[dict[str, Any]]
    sklearn_fixed: dict[str, Any]
    fnn_grid: list[dict[str, Any]] = field(default_factory=list)
    fnn_fixed: dict[str, Any] = field(default_factory=dict)
    n_ensemble: int = ENSEMBLE_SIZE
    hgb_fixed: dict[str, Any] = field(default_factory=dict)  # HistGradientBoosting*'s settings (default: none)
    overrides: list[str] = field(default_factory=list)  # extra CLI arguments for our runs (quick mode)


def plan_datasets(names: list[str], configs: str | Path, quick: bool = False,
                  n_ensemble: int = ENSEMBLE_SIZE) -> list[DataSetPlan]:
    """Check every name, config and search space before anything trains; quick: tiny epochs and grids."""
    if not names:
        raise ConfigError(f"--datasets is empty; allowed: {', '.join(DATASETS)}")
    for name in names:
        check_choice("data set", name, DATASETS)
    if len(set(names)) != len(names):
        raise ConfigError(f"--datasets {','.join(names)} names a data set twice")
    if isinstance(n_ensemble, bool) or not isinstance(n_ensemble, int) or n_ensemble < 1:
        raise ConfigError(f"--n-ensemble {n_ensemble!r} must be an integer >= 1")
    return [_plan(name, Path(configs), quick, n_ensemble) for name in names]


def _plan(name: str, configs: Path, quick: bool, n_ensemble: int) -> DataSetPlan:
    config, search_file = configs / f"{name}.yaml", configs / "experiments" / f"tune_{name}.yaml"
    if not config.is_file():
        raise ConfigError(f"{name}: shipped config {str(config)!r} not found")
    search = load_search(search_file)
    grid, fnn_grid = _sklearn_grid(search), _sklearn_grid(search, activations=None)
    epochs = int(search.common.get("trainer.max_epochs", 200))
    fixed = {"max_iter": epochs}
    overrides: list[str] = []
    hgb: dict[str, Any] = {}
    if quick:
        grid, fnn_grid = _quick_grid(grid), _quick_grid(fnn_grid)
        fixed["max_iter"] = 5
        search.folds = 2
        overrides = ["--trainer.max_epochs=3"]
        hgb["max_iter"] = QUICK_HGB_ITERATIONS
    cli = check_args(name, ["--config", str(config), *overrides])
    shipped = {"model.lr": cli.model.hparams.lr, "data.init_args.batch_size": cli.datamodule.batch_size,
               "model.weight_decay": cli.model.hparams.weight_decay,
               "model.activation": SKLEARN_ACTIVATIONS.get(cli.model.hparams.activation)}
    fixed |= {SKLEARN_PARAMS[k]: v for k, v in shipped.items() if SKLEARN_PARAMS[k] not in grid[0] and v is not None}
    sklearn_grid, sklearn_fixed = _alpha_per_batch_size(grid[0], fixed)
    ours = _fnn_fixed(cli, set(fnn_grid[0]), 3 if quick else epochs, search.patience)
    fnn_grid, fnn_fixed = _alpha_per_batch_size(fnn_grid[0], ours)
    return DataSetPlan(name, config, search, sklearn_grid, sklearn_fixed, fnn_grid, fnn_fixed, n_ensemble, hgb,
                       overrides)


def _quick_grid(grid: list[dict[str, list[Any]]]) -> list[dict[str, list[Any]]]:
    """Two configurations: the first two values of the first axis, the first of every other."""
    first_axis = next(iter(grid[0]))
    return [{k: v[:2] if k == first_axis else v[:1] for k, v in grid[0].items()}]


def _fnn_fixed(cli: Any, searched: set[str], epochs: int, patience: int) -> dict[str, Any]:
    """FNNClassifier's parameters for what the search does not vary: every schema field of the shipped model
    (under its estimator name, hparams.SKLEARN_NAMES; weight_decay as `alpha`, made alpha = w * batch by
    _alpha_per_batch_size), its batch size, and the search's epochs and patience (early stopping on a
    validation split of each fold's training rows, the share of the training portion ours holds out)."""
    estimator_name = {schema: name for name, schema in hparams.SKLEARN_NAMES.items()}
    shipped = {estimator_name.get(k, k): v for k, v in dict(cli.model.hparams).items()
               if k in hparams.defaults() and v is not None}
    dm = cli.datamodule
    fixed = shipped | {"batch_size": dm.batch_size, "max_iter": epochs, "early_stopping": True,
                       "n_iter_no_change": patience, "tol": 0.0,  # the trainer's EarlyStopping: min_delta 0
                       "validation_fraction": dm.val_fraction / (1.0 - dm.test_fraction)}
    return {k: v for k, v in fixed.items() if k not in searched}


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


def _sklearn_grid(search: SearchSpec, activations: dict[str, str] | None = SKLEARN_ACTIVATIONS
                  ) -> list[dict[str, list[Any]]]:
    """The search's grid as GridSearchCV's param_grid (`hidden_layer_sizes` from depth x width); activations
    renamed by `activations` (None: our names, for FNNSearchCV)."""
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
        if key == "model.activation" and activations is not None:
            for value in values:
                check_choice("activation for scikit-learn's MLP", value, SKLEARN_ACTIVATIONS)
            values = [activations[v] for v in values]
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



def run_dataset(plan: DataSetPlan, seeds: list[int], logs: str, n_jobs: int,
                on_row: Any = None) -> list[dict[str, Any]]:
    """Every side on every seed's rows; one row per side x seed."""
    from lit_basics.experiments.accuracy.sides import SIDES

    out = []
    for seed in seeds:
        rows = split_rows(plan, seed)
        common = {"dataset": plan.name, "seed": seed, "n_train": len(rows.y_portion), "n_test": len(rows.y_test),
                  "grid_size": grid_size(plan.sklearn_grid)}
        for side, run_side in SIDES.items():
            result = run_side(plan, seed, rows, logs=logs, n_jobs=n_jobs)
            row = {**common, "side": side, "accuracy": None, "r2": None, "rmse": None} | result
            out.append(row)
            if on_row is not None:
                on_row(row)
    return out
