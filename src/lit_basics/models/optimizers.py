"""Optimizers and learning-rate schedulers: each optimizer declared once, for LitFNN and the batched engine.

An `Optimizer` names its torch class (what LitFNN builds), its own hyperparameters with their defaults
(set per run with `model.optimizer_kwargs`, or `model.momentum` for momentum) and the state its update
keeps. The batched engine's update of each (many models' rows at once, tested against torch.optim) is
its kernel in engine/kernels.py. Like scikit-learn's `_stochastic_optimizers.py`, one object per optimizer.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lit_basics.errors import ConfigError, check_choice

Tensor = torch.Tensor


def _adam_kwargs(hp: dict[str, float]) -> dict[str, Any]:
    return {"betas": (hp["beta1"], hp["beta2"]), "eps": hp["eps"]}


@dataclass(frozen=True)
class Optimizer:
    """One optimizer.

    torch_class: what LitFNN builds; `torch_kwargs(hp)` maps the hyperparameters to its arguments.
    defaults: the optimizer's own hyperparameters and their defaults (torch.optim's).
    state: the names of the per-parameter buffers its batched update (engine/kernels.py) keeps.
    decoupled_weight_decay: L2 shrinks the weights directly (AdamW) instead of entering the gradient.
    """

    name: str
    description: str
    torch_class: type[torch.optim.Optimizer]
    defaults: dict[str, float] = field(default_factory=dict)
    torch_kwargs: Callable[[dict[str, float]], dict[str, Any]] = lambda hp: dict(hp)
    state: tuple[str, ...] = ()
    decoupled_weight_decay: bool = False
    fused: bool = False  # torch's fused kernel cuts the per-step Python overhead that dominates small networks

    def hyperparameters(self, momentum: float, kwargs: dict[str, float] | None) -> dict[str, float]:
        """The defaults updated with `optimizer_kwargs` (and `momentum` where the optimizer has one)."""
        unknown = sorted(set(kwargs or {}) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"optimizer {self.name!r} has no hyperparameter {', '.join(unknown)}; allowed: {allowed}")
        hp = {**self.defaults, **(kwargs or {})}
        if "momentum" in hp and not (kwargs and "momentum" in kwargs):
            hp["momentum"] = momentum
        bad = [f"{k}={v!r}" for k, v in hp.items() if not isinstance(v, int | float) or isinstance(v, bool) or v < 0]
        if bad:
            raise ConfigError(f"optimizer {self.name!r} hyperparameters {', '.join(bad)} must be numbers >= 0")
        return {k: float(v) for k, v in hp.items()}


_EPS = {"eps": 1e-8}
OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("sgd", "plain stochastic gradient descent", torch.optim.SGD),
    Optimizer("momentum", "SGD with momentum (`model.momentum`)", torch.optim.SGD, {"momentum": 0.9},
              state=("momentum",)),
    Optimizer("rmsprop", "RMSprop: steps scaled by a running RMS of the gradient", torch.optim.RMSprop,
              {"alpha": 0.99, **_EPS}, state=("square_avg",)),
    Optimizer("adam", "Adam: momentum and RMS scaling with bias correction", torch.optim.Adam,
              {"beta1": 0.9, "beta2": 0.999, **_EPS}, _adam_kwargs, ("exp_avg", "exp_avg_sq"), fused=True),
    Optimizer("adamw", "Adam with decoupled weight decay (`model.weight_decay` shrinks the weights)",
              torch.optim.AdamW, {"beta1": 0.9, "beta2": 0.999, **_EPS}, _adam_kwargs, ("exp_avg", "exp_avg_sq"),
              decoupled_weight_decay=True, fused=True),
)}

SCHEDULERS: dict[str, type | None] = {
    "none": None,
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}


def get_optimizer(name: str) -> Optimizer:
    """The declaration of optimizer `name`; an unknown name is a ConfigError listing the known ones."""
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)]


def validate_optimization(optimizer: str, lr: float, momentum: float, weight_decay: float, l1: float,
                          optimizer_kwargs: dict[str, float] | None = None) -> dict[str, float]:
    """The optimizer's hyperparameters; ConfigError for an unknown optimizer or an out-of-range value."""
    declaration = get_optimizer(optimizer)
    if not lr > 0:
        raise ConfigError(f"lr={lr!r} must be > 0")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum={momentum!r} is outside the allowed range [0, 1)")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay={weight_decay!r} must be >= 0")
    if l1 < 0:
        raise ConfigError(f"l1={l1!r} must be >= 0")
    return declaration.hyperparameters(momentum, optimizer_kwargs)


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight matrices get `weight_decay` (L2); biases get none, as in scikit-learn's MLP.

    Without weight decay all parameters form one group: each group is one more optimizer kernel
    launch per step, which is measurable for small networks.
    """
    if weight_decay == 0:
        return [{"params": list(module.parameters()), "weight_decay": 0.0}]
    decay = [p for p in module.parameters() if p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _fused_supported(cls: type[torch.optim.Optimizer]) -> bool:
    return "fused" in inspect.signature(cls.__init__).parameters


def make_optimizer(name: str, module: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                   optimizer_kwargs: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """Build optimizer `name` over `module`'s parameters (L2 on weight matrices only)."""
    hp = validate_optimization(name, lr, momentum, weight_decay, 0.0, optimizer_kwargs)
    declaration = OPTIMIZERS[name]
    kwargs: dict[str, Any] = {"lr": lr, **declaration.torch_kwargs(hp)}
    if declaration.fused and _fused_supported(declaration.torch_class):
        kwargs["fused"] = True
    return declaration.torch_class(parameter_groups(module, weight_decay), **kwargs)


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, kwargs: dict[str, Any] | None, max_epochs: int | None
) -> Any:
    """Build scheduler `name` with `kwargs`; cosine defaults T_max to the run's max_epochs."""
    check_choice("scheduler", name, SCHEDULERS)
    cls = SCHEDULERS[name]
    if cls is None:
        return None
    kwargs = dict(kwargs or {})
    if name == "step":
        kwargs.setdefault("step_size", 10)
    if name == "exponential":
        kwargs.setdefault("gamma", 0.95)
    if name == "cosine":
        kwargs.setdefault("T_max", max(1, max_epochs or 100))
    try:
        return cls(optimizer, **kwargs)
    except TypeError as err:
        raise ConfigError(f"scheduler {name!r} does not accept scheduler_kwargs={kwargs}: {err}") from None
