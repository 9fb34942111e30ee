"""Optimizers and learning-rate schedulers by name, with L2 applied to weights only."""

import inspect
from typing import Any

import torch
from torch import nn

from lit_basics.errors import ConfigError, check_choice

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}

SCHEDULERS: dict[str, type | None] = {
    "none": None,
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}


def validate_optimization(optimizer: str, lr: float, momentum: float, weight_decay: float, l1: float) -> None:
    """Raise ConfigError for an unknown optimizer or an out-of-range rate, momentum or penalty."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if not lr > 0:
        raise ConfigError(f"lr={lr!r} must be > 0")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"momentum={momentum!r} is outside the allowed range [0, 1)")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay={weight_decay!r} must be >= 0")
    if l1 < 0:
        raise ConfigError(f"l1={l1!r} must be >= 0")


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


def make_optimizer(
    name: str, module: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Build optimizer `name`: sgd (no momentum), momentum (SGD with `momentum`), rmsprop, adam, adamw."""
    validate_optimization(name, lr, momentum, weight_decay, 0.0)
    cls = OPTIMIZERS[name]
    groups = parameter_groups(module, weight_decay)
    kwargs: dict[str, Any] = {"lr": lr}
    if name == "momentum":
        kwargs["momentum"] = momentum
    # Fused kernels cut the per-step Python overhead that dominates small networks (CPU and CUDA).
    if name in ("adam", "adamw") and _fused_supported(cls):
        kwargs["fused"] = True
    return cls(groups, **kwargs)


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
