"""FNNClassifier and FNNRegressor: scikit-learn estimators trained on the batched engine (one model per group).

Parameters follow `MLPClassifier` where the meaning is the same; the options (activation, solver,
loss, init) are the names of the component registries in `lit_basics.models`, checked there.
"""

import inspect
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from lit_basics.engine.batched import ModelSpec
from lit_basics.engine.batched_fit import Stopping, fit_configurations
from lit_basics.engine.hyperparameters import check_batched, model_spec_values
from lit_basics.engine.kernels import optimizer_update
from lit_basics.engine.runtime import resolve_device
from lit_basics.errors import ConfigError
from lit_basics.models import hparams
from lit_basics.models.fnn import build_network
from lit_basics.models.losses import get_loss, output_dim, predict, probabilities
from lit_basics.models.optimizers import validate_optimization


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


@dataclass
class Plan:
    """What the engine needs to train one estimator's configuration on one block of rows."""

    settings: dict[str, Any]  # LitFNN-named: hidden_sizes, activation, ..., batch_size, lr, weight_decay, ...
    spec: ModelSpec
    stopping: Stopping  # keep_best with early_stopping; min_delta is tol


class FNNEstimator(BaseEstimator):
    """The parameters, validation, engine plan and forward pass both estimators share."""

    _task = "classification"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, momentum=0.9, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, random_state=None, verbose=False,
                 dropout=0.0, l1=0.0, loss="auto", init="glorot", leaky_relu_alpha=0.01, norm="none", residual=False,
                 net=None, optimizer_kwargs=None, scheduler="none", scheduler_kwargs=None, gradient_clip_val=0.0,
                 device="auto"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.dropout = dropout
        self.l1 = l1
        self.loss = loss
        self.init = init
        self.leaky_relu_alpha = leaky_relu_alpha
        self.norm = norm
        self.residual = residual
        self.net = net
        self.optimizer_kwargs = optimizer_kwargs
        self.scheduler = scheduler
        self.scheduler_kwargs = scheduler_kwargs
        self.gradient_clip_val = gradient_clip_val
        self.device = device

    def _loss_name(self) -> str:
        default = "cross_entropy" if self._task == "classification" else "mse"
        return default if self.loss == "auto" else self.loss

    def _hidden(self) -> list[int]:
        sizes = [self.hidden_layer_sizes] if isinstance(self.hidden_layer_sizes, int) else self.hidden_layer_sizes
        sizes = list(sizes) if isinstance(sizes, list | tuple | np.ndarray) else sizes
        if not isinstance(sizes, list) or not sizes or any(
                not isinstance(h, int | np.integer) or isinstance(h, bool) or h < 1 for h in sizes):
            raise ConfigError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be a non-empty list of "
                              "integers >= 1")
        return [int(h) for h in sizes]

    def _check_params(self, num_classes: int) -> None:
        """ConfigError (a ValueError) naming the first bad parameter and what is allowed."""
        self.architecture()
        get_loss(self._loss_name(), self._task, num_classes)
        optimizer_update(self.solver)
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")
        if not (isinstance(self.batch_size, int | np.integer) and self.batch_size >= 1) and self.batch_size != "auto":
            raise ConfigError(f"batch_size={self.batch_size!r} must be 'auto' or an integer >= 1")
        if not self.learning_rate_init > 0:
            raise ConfigError(f"learning_rate_init={self.learning_rate_init!r} must be > 0")
        if not self.alpha >= 0:
            raise ConfigError(f"alpha={self.alpha!r} must be >= 0")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction={self.validation_fraction!r} is outside the allowed range (0, 1)")
        if not (isinstance(self.tol, int | float) and not isinstance(self.tol, bool) and self.tol >= 0):
            raise ConfigError(f"tol={self.tol!r} must be a number >= 0")
        validate_optimization(self.solver, self.learning_rate_init, self.momentum, 0.0, self.l1)
        resolve_device(self.device)

    def schema_values(self, batch: int) -> dict[str, Any]:
        """Every schema field (models/hparams.py) from these parameters: the same name, or its scikit-learn
        name in SKLEARN_NAMES; alpha is MLPClassifier's (loss + alpha / (2 batch) |W|^2, so weight_decay is
        alpha / batch)."""
        sklearn = {schema: name for name, schema in hparams.SKLEARN_NAMES.items()}
        values = {name: getattr(self, sklearn.get(name, name)) for name in hparams.defaults() if name != "max_epochs"}
        values.update(asdict(self.architecture()))
        values.update(loss=self._loss_name(), lr=float(self.learning_rate_init), momentum=float(self.momentum),
                      weight_decay=float(self.alpha) / batch, l1=float(self.l1),
                      optimizer_kwargs=dict(self.optimizer_kwargs or {}),
                      gradient_clip_val=float(self.gradient_clip_val))
        hparams.split(values)  # validated as LitFNN validates them
        return values

    def architecture(self) -> hparams.Architecture:
        """The network these parameters describe (validated): the schema's fields under their own names.

        With an injected `net`, a field left at the estimator's default counts as unset (the net's own
        default applies), as LitFNN treats one left at the schema's default."""
        own = {f.name: getattr(self, f.name) for f in fields(hparams.Architecture) if hasattr(self, f.name)}
        own["hidden_sizes"] = self._hidden()
        if self.net is not None:
            defaults = {**inspect.signature(FNNEstimator.__init__).parameters}
            own = {k: v for k, v in own.items()
                   if k == "net" or v != defaults["hidden_layer_sizes" if k == "hidden_sizes" else k].default
                   and not (k == "hidden_sizes" and tuple(v) == defaults["hidden_layer_sizes"].default)}
        return hparams.Architecture(**own)

    def _seed(self) -> int:
        """An int random_state is the seed; None or a RandomState draws one."""
        if isinstance(self.random_state, int | np.integer) and self.random_state >= 0:
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def plan(self, y: np.ndarray, fold: int = 0) -> Plan:
        """The engine settings and model spec of one fit on rows `y` (validated first)."""
        n = len(y)
        self._check_params(len(np.unique(y)) if self._task == "classification" else 0)
        seed = self._seed()
        batch = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        rows = np.arange(n)
        patience = int(self.n_iter_no_change) if self.n_iter_no_change < self.max_iter else None
        if self.early_stopping:
            stratify = y if self._task == "classification" else None
            train, val = train_test_split(rows, test_size=self.validation_fraction, random_state=seed,
                                          stratify=stratify)
        else:  # n_iter_no_change watches the loss on the training rows (none when it cannot stop), as MLPClassifier
            train, val = rows, rows if patience else rows[:0]
        settings = {**self.schema_values(batch), "max_epochs": int(self.max_iter), "batch_size": batch,
                    "device": str(resolve_device(self.device))}
        spec = ModelSpec(train_rows=torch.as_tensor(train), val_rows=torch.as_tensor(val), fold=fold, seed=seed,
                         **model_spec_values(settings))
        return Plan(settings, spec, Stopping(patience, float(self.tol), bool(self.early_stopping)))

    def _fit_one(self, x: np.ndarray, targets: np.ndarray, labels: np.ndarray) -> "FNNEstimator":
        """Train on (x, targets) with the engine; `labels` are what stratifies the validation split."""
        plan = self.plan(labels)
        device = torch.device(plan.settings["device"])
        num_classes = len(self.classes_) if self._task == "classification" else 0
        if self.net is not None:  # an injected module vmap cannot batch: one line before training
            check_batched(plan.settings, x.shape[1], self._output_dim())
        result = fit_configurations(torch.as_tensor(x, device=device)[None], torch.as_tensor(targets, device=device),
                                    [plan.spec], [plan.settings], num_classes, plan.stopping)
        val_y = targets[plan.spec.val_rows.numpy()]
        self.set_result(result.states[0], result.history[0], len(plan.spec.train_rows), val_y, result.diverged[0])
        return self

    def _output_dim(self) -> int:
        return output_dim(self._task, len(self.classes_) if self._task == "classification" else 0)

    def set_result(self, state: dict[str, Any], history: list[dict[str, float]],
                   n_train: int, val_y: np.ndarray, diverged: bool = False) -> None:
        """The fitted attributes from one engine model: its network's state_dict and its epochs.

        `module_` is the network (built from the same architecture as LitFNN's, in float64 so that a row's
        result does not depend on the batch it is in); predictions go through its forward.
        """
        if diverged:  # as MLPClassifier, which refuses non-finite weights
            raise ValueError(f"training diverged at epoch {len(history)} (the loss became NaN or infinite); "
                             f"lower learning_rate_init={self.learning_rate_init!r} or scale the features")
        with torch.random.fork_rng(devices=[]):
            module = build_network(self.architecture(), self.n_features_in_, self._output_dim())
        module.load_state_dict({k: torch.as_tensor(_numpy(v)) for k, v in state.items()})
        self.module_ = module.double().eval()
        # MLPClassifier's attributes, of the main path's linear layers (any injected net's nn.Linear layers)
        linears = self.module_.linears() if hasattr(self.module_, "linears") else [
            m for m in self.module_.modules() if isinstance(m, torch.nn.Linear)]
        self.coefs_ = [_numpy(layer.weight).T.copy() for layer in linears]  # (fan_in, fan_out), as MLPClassifier
        self.intercepts_ = [np.zeros(layer.out_features) if layer.bias is None else _numpy(layer.bias).copy()
                            for layer in linears]
        self.n_layers_ = len(linears) + 1
        self.n_outputs_ = self._output_dim()
        self.loss_curve_ = [row["train/loss"] for row in history]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = len(history)
        self.t_ = n_train * self.n_iter_
        if self.early_stopping:
            scores = [self._validation_score(row, val_y) for row in history]
            self.validation_scores_ = scores
            self.best_validation_score_ = max(scores)
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_)
        if self.verbose:
            for epoch, loss in enumerate(self.loss_curve_, 1):
                print(f"Iteration {epoch}, loss = {loss:.8f}")

    def _validation_score(self, row: dict[str, float], val_y: np.ndarray) -> float:
        if self._task == "classification":
            return row["val/acc"]
        return 1.0 - row["val/loss"] / max(float(np.var(val_y)), np.finfo(np.float32).tiny)  # R^2 from the MSE

    def _logits(self, X: Any) -> torch.Tensor:
        """(rows, outputs) logits from the fitted network's forward, in float64."""
        check_is_fitted(self)
        x = validate_data(self, X, reset=False, dtype=np.float64)
        with torch.no_grad():
            return self.module_(torch.from_numpy(np.require(x, requirements=["C", "W"])))

    def to_config(self) -> dict[str, Any]:
        """The train.py config of this network and its training, to compose after a data config.

        `python scripts/train.py fit --config configs/digits.yaml --config fnn.yaml` then trains the
        same network with LitFNN (TensorBoard, checkpoints). batch_size "auto" becomes 200 (its value
        for more than 200 rows); train.py validates on the data config's own validation split and
        stops with the trainer config's early stopping, not with early_stopping / n_iter_no_change.
        """
        self._check_params(0 if self._task == "regression" else 2)
        batch = 200 if self.batch_size == "auto" else int(self.batch_size)
        model = {k: v for k, v in self.schema_values(batch).items() if v is not None}
        config = {"model": model, "data": {"init_args": {"batch_size": batch}},
                  "trainer": {"max_epochs": int(self.max_iter)}}
        if isinstance(self.random_state, int | np.integer):
            config["seed_everything"] = int(self.random_state)
        return config

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class FNNClassifier(ClassifierMixin, FNNEstimator):
    """A feedforward classifier with MLPClassifier's parameters, trained on the batched engine.

    alpha is MLPClassifier's L2 strength: the engine adds alpha / batch_size * W to each weight
    gradient (weight_decay = alpha / batch_size; biases are not penalised), which is the gradient
    of loss + alpha / (2 batch_size) ||W||^2. loss "auto" is cross_entropy.
    """

    _task = "classification"

    def fit(self, X: Any, y: Any) -> "FNNClassifier":
        x, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has 1 class ({encoder.classes_[0]!r}); a classifier needs at least 2 classes")
        self.classes_ = encoder.classes_
        codes = encoder.transform(y).astype(np.int64)
        return self._fit_one(x, codes, codes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(rows, classes) probabilities: softmax of the logits (sigmoid of the one logit when binary)."""
        return probabilities(self._logits(X), len(self.classes_)).numpy()

    def predict(self, X: Any) -> np.ndarray:
        logits = self._logits(X)
        return self.classes_[predict(logits, "classification", len(self.classes_)).numpy()]


class FNNRegressor(RegressorMixin, FNNEstimator):
    """A feedforward regressor with MLPRegressor's parameters, trained on the batched engine (loss "auto": mse).

    alpha as FNNClassifier's. The target is used as given (not standardised), as MLPRegressor does.
    """

    _task = "regression"

    def fit(self, X: Any, y: Any) -> "FNNRegressor":
        x, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        return self._fit_one(x, y.astype(np.float32), y)

    def predict(self, X: Any) -> np.ndarray:
        return self._logits(X)[:, 0].numpy()
