"""Losses by name for binary, multi-class and regression heads; forward always returns logits."""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lit_basics.errors import ConfigError, check_choice

TASKS = ("classification", "regression")


def output_dim(task: str, num_classes: int) -> int:
    """One logit for binary classification and regression, one per class otherwise."""
    return 1 if task == "regression" or num_classes == 2 else num_classes


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    if num_classes == 2:  # BCE-with-logits on the single logit
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y.to(logits.dtype))
    return F.cross_entropy(logits, y)


def _hinge(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    if num_classes == 2:  # labels {0, 1} -> {-1, +1}, loss max(0, 1 - y f(x))
        signs = 2.0 * y.to(logits.dtype) - 1.0
        return torch.clamp(1.0 - signs * logits.squeeze(-1), min=0.0).mean()
    return F.multi_margin_loss(logits, y)  # Crammer-Singer style multi-class hinge


def _mse(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    if num_classes == 0:  # regression: one real output
        return F.mse_loss(logits.squeeze(-1), y.to(logits.dtype))
    if num_classes == 2:  # squared error between P(y=1) and the 0/1 label
        return F.mse_loss(torch.sigmoid(logits.squeeze(-1)), y.to(logits.dtype))
    one_hot = F.one_hot(y, num_classes).to(logits.dtype)
    return F.mse_loss(torch.softmax(logits, dim=-1), one_hot)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "cross_entropy": _cross_entropy,
    "hinge": _hinge,
    "mse": _mse,
}


def make_loss(name: str, task: str, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return loss(logits, target) for this task; regression allows only mse."""
    check_choice("loss", name, LOSSES)
    check_choice("task", task, TASKS)
    if task == "regression":
        if name != "mse":
            raise ConfigError(f"loss {name!r} does not fit task 'regression'; allowed: mse")
        classes = 0
    else:
        if num_classes < 2:
            raise ConfigError(f"num_classes={num_classes} must be >= 2 for classification")
        classes = num_classes
    fn = LOSSES[name]
    return lambda logits, y: fn(logits, y, classes)


def predict(logits: torch.Tensor, task: str, num_classes: int) -> torch.Tensor:
    """Class indices for classification, real values for regression."""
    if task == "regression":
        return logits.squeeze(-1)
    if num_classes == 2:
        return (logits.squeeze(-1) > 0).long()
    return logits.argmax(dim=-1)


def probabilities(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(batch, num_classes) class probabilities from logits."""
    if num_classes == 2:
        p1 = torch.sigmoid(logits.squeeze(-1))
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)
