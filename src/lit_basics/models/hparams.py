"""The hyperparameter schema: every setting of a network and its training, declared once with its default,
its check and how the batched engine treats it.

Three dataclasses group the settings: `Architecture` (what the network is), `Optimization` (how it is
trained) and `Regularization` (penalties on its weights; dropout is part of the architecture because the
network applies it). LitFNN's arguments, the batched engine's per-model `ModelSpec` and group settings,
the estimators' parameters (`SKLEARN_NAMES`) and the README's hyperparameter table are all read from
these fields, under the same names (a test holds LitFNN's signature to them).

Each field's metadata says what the batched engine does with it:
- per model: may differ between the models of one stacked group (a value per row of the stack);
- shared by a group: models that differ in it train in separate groups;
- mergeable: shared unless the search merges groups (widths are zero-padded, batch sizes summed).
"""

from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from lit_basics.errors import ConfigError, check_choice

PER_MODEL = "per model"
SHARED = "shared by a group"
MERGEABLE = "mergeable"
FROM_DATA = "from the data"

NORMS = {"none": "no normalisation", "batch": "BatchNorm1d after each hidden linear layer (running statistics)",
         "layer": "LayerNorm after each hidden linear layer"}


def _kind(kind: str, default: Any = MISSING, **kwargs: Any) -> Any:
    if isinstance(default, list | dict | tuple):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"batched": kind}, **kwargs)
    return field(default=default, metadata={"batched": kind}, **kwargs)


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{name}={value!r} must be >= 0")


def check_hidden_sizes(hidden_sizes: Any) -> list[int]:
    """The widths as a list, or a ConfigError naming the value."""
    if isinstance(hidden_sizes, int | str) or not isinstance(hidden_sizes, Sequence) or len(hidden_sizes) == 0:
        raise ConfigError(f"hidden_sizes={hidden_sizes!r} must be a non-empty list of positive integers")
    bad = [h for h in hidden_sizes if not isinstance(h, int) or isinstance(h, bool) or h <= 0]
    if bad:
        raise ConfigError(f"hidden_sizes={list(hidden_sizes)!r} has non-positive sizes {bad}; each must be >= 1")
    return [int(h) for h in hidden_sizes]


def check_net(net: Any) -> None:
    """An injected network is `{class_path: "package.module.Class", init_args: {...}}`."""
    if net is None:
        return
    if not isinstance(net, dict) or not isinstance(net.get("class_path"), str) or "." not in net["class_path"]:
        raise ConfigError(f"net={net!r} must be {{class_path: package.module.Class, init_args: {{...}}}}")
    unknown = sorted(set(net) - {"class_path", "init_args"})
    if unknown or not isinstance(net.get("init_args") or {}, dict):
        raise ConfigError(f"net={net!r}: allowed keys are class_path and init_args (a mapping)")


@dataclass(frozen=True)
class Architecture:
    """What the network is. `net` injects any nn.Module instead of the built-in FNN (models/network.py)."""

    hidden_sizes: list[int] = _kind(MERGEABLE, [64, 64])  # its length is the depth; narrower ones padded
    activation: str = _kind(SHARED, "relu")
    leaky_relu_alpha: float = _kind(SHARED, 0.01)
    dropout: float = _kind(PER_MODEL, 0.0)
    norm: str = _kind(SHARED, "none")
    residual: bool = _kind(SHARED, False)
    init: str = _kind(SHARED, "pytorch")
    net: dict[str, Any] | None = _kind(SHARED, None)

    def __post_init__(self) -> None:
        from lit_basics.models.activations import ACTIVATIONS
        from lit_basics.models.fnn import INITS

        object.__setattr__(self, "hidden_sizes", check_hidden_sizes(self.hidden_sizes))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("norm", self.norm, NORMS)
        check_choice("init", self.init, INITS)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout!r} is outside the allowed range [0, 1)")
        _non_negative("leaky_relu_alpha", self.leaky_relu_alpha)
        if not isinstance(self.residual, bool):
            raise ConfigError(f"residual={self.residual!r} must be true or false")
        check_net(self.net)


@dataclass(frozen=True)
class Optimization:
    """How the network is trained: loss, optimizer and its hyperparameters, schedule, clipping."""

    loss: str = _kind(SHARED, "auto")  # auto: cross_entropy for classification, mse for regression
    optimizer: str = _kind(SHARED, "adam")
    lr: float = _kind(PER_MODEL, 1e-3)
    momentum: float = _kind(PER_MODEL, 0.9)
    optimizer_kwargs: dict[str, float] | None = _kind(PER_MODEL, None)
    scheduler: str = _kind(SHARED, "none")
    scheduler_kwargs: dict[str, Any] | None = _kind(SHARED, None)
    gradient_clip_val: float = _kind(PER_MODEL, 0.0)

    def __post_init__(self) -> None:
        from lit_basics.models.losses import LOSSES
        from lit_basics.models.optimizers import SCHEDULERS, validate_optimization

        if self.loss != "auto":
            check_choice("loss", self.loss, LOSSES)
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        validate_optimization(self.optimizer, self.lr, self.momentum, 0.0, 0.0, self.optimizer_kwargs)
        _non_negative("gradient_clip_val", self.gradient_clip_val)

    def loss_for(self, task: str) -> str:
        """The loss this task trains with: `loss`, or the task's own for "auto"."""
        return ("mse" if task == "regression" else "cross_entropy") if self.loss == "auto" else self.loss


@dataclass(frozen=True)
class Regularization:
    """Penalties on the weight matrices (not biases, not normalisation parameters)."""

    weight_decay: float = _kind(PER_MODEL, 0.0)  # L2, applied by the optimizer (decoupled for adamw)
    l1: float = _kind(PER_MODEL, 0.0)  # added to the loss

    def __post_init__(self) -> None:
        _non_negative("weight_decay", self.weight_decay)
        _non_negative("l1", self.l1)


SCHEMA = (Architecture, Optimization, Regularization)
DATA_LINKED = {"input_dim": FROM_DATA, "num_classes": FROM_DATA, "task": FROM_DATA}  # linked by the CLI
# the trainer and data settings a search may vary besides model.*: (flag, the engine's name, kind)
TRAINING_SETTINGS = {"data.init_args.batch_size": ("batch_size", MERGEABLE),
                     "trainer.max_epochs": ("max_epochs", SHARED)}


def kinds() -> dict[str, str]:
    """Every model hyperparameter's batched kind, by its LitFNN name (data-linked ones first)."""
    out = dict(DATA_LINKED)
    for cls in SCHEMA:
        out.update({f.name: f.metadata["batched"] for f in fields(cls)})
    return out


def names(kind: str) -> tuple[str, ...]:
    """The hyperparameters (and searchable training settings) of one batched kind."""
    settings = [name for name, k in TRAINING_SETTINGS.values() if k == kind]
    return (*(name for name, k in kinds().items() if k == kind and name not in DATA_LINKED), *settings)


def defaults() -> dict[str, Any]:
    """Every schema field's default value, by name."""
    return {k: v for cls in SCHEMA for k, v in asdict(cls()).items()}


def split(settings: dict[str, Any]) -> tuple[Architecture, Optimization, Regularization]:
    """The three groups from one flat dict of LitFNN-named settings (other keys are ignored)."""
    return tuple(cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings}) for cls in SCHEMA)


def per_model_values(settings: dict[str, Any]) -> dict[str, Any]:
    """The per-model values of one configuration (ModelSpec's hyperparameter fields)."""
    return {name: settings[name] for name in names(PER_MODEL) if name in settings}


# The estimators' parameters: scikit-learn's MLPClassifier names for these schema fields (alpha maps to
# weight_decay / batch size); every other field is an estimator parameter under its own name (norm,
# residual, net, dropout, l1, init, ...). A test holds the estimators' signature to this.
SKLEARN_NAMES = {"hidden_layer_sizes": "hidden_sizes", "solver": "optimizer", "learning_rate_init": "lr",
                 "max_iter": "max_epochs", "alpha": "weight_decay"}
