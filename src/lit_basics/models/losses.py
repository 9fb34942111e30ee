"""Losses: each declared once, as a per-sample function both engines use; forward always returns logits.

A loss's `function(logits, y, num_classes, reduction)` takes logits of any leading shape, (batch,
outputs) in LitFNN or (models, batch, outputs) in the batched engine, and returns one value per
sample (reduction "none", what the batched engine averages per model) or their mean ("mean", what
LitFNN minimises; torch's fused reduction where there is one, a step's loss costing half). `num_classes` is 0 for
regression, 2 for a binary head (one logit), C > 2 for one logit per class. A loss may also give
its gradient with respect to the logits in closed form (`with_logit_grad`); the batched engine
otherwise takes it from autograd on the logits alone.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lit_basics.errors import ConfigError, check_choice

TASKS = ("classification", "regression")
Tensor = torch.Tensor


def output_dim(task: str, num_classes: int) -> int:
    """One logit for binary classification and regression, one per class otherwise."""
    return 1 if task == "regression" or num_classes == 2 else num_classes


def _reduce(values: Tensor, reduction: str) -> Tensor:
    return values.mean() if reduction == "mean" else values


def _per_class(fn: Callable[..., Tensor], logits: Tensor, y: Tensor, num_classes: int, reduction: str) -> Tensor:
    """Apply a torch (batch, C) loss to logits of any leading shape (no reshape, no autograd node, for 2-d ones)."""
    if logits.dim() == 2:
        return fn(logits, y, reduction=reduction)
    values = fn(logits.reshape(-1, num_classes), y.reshape(-1), reduction=reduction)
    return values if reduction == "mean" else values.view(y.shape)


def _cross_entropy(logits: Tensor, y: Tensor, num_classes: int, reduction: str) -> Tensor:
    if num_classes == 2:  # BCE-with-logits on the single logit
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y.to(logits.dtype), reduction=reduction)
    return _per_class(F.cross_entropy, logits, y, num_classes, reduction)


def _cross_entropy_with_grad(logits: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-sample cross-entropy and d loss / d logits = p - onehot, without autograd.

    The same values as _cross_entropy, for a fraction of the time in the batched engine: torch's CPU
    log_softmax kernel is slow for a last dimension of ~10 (50 us for 320 rows, more than a
    32x128x128 matmul), and its autograd node costs as much again.
    """
    logits = logits.detach()
    if num_classes == 2:
        z, t = logits.squeeze(-1), y.to(logits.dtype)
        return F.binary_cross_entropy_with_logits(z, t, reduction="none"), (torch.sigmoid(z) - t).unsqueeze(-1)
    target = y.unsqueeze(-1)
    shifted = logits - logits.amax(-1, keepdim=True)
    exp = shifted.exp()
    total = exp.sum(-1, keepdim=True)
    loss = (total.log() - shifted.gather(-1, target)).squeeze(-1)
    grad = exp.div_(total).scatter_add_(-1, target, torch.full(target.shape, -1.0, dtype=exp.dtype,
                                                               device=exp.device))
    return loss, grad


def _hinge(logits: Tensor, y: Tensor, num_classes: int, reduction: str) -> Tensor:
    if num_classes == 2:  # labels {0, 1} -> {-1, +1}, loss max(0, 1 - y f(x))
        signs = 2.0 * y.to(logits.dtype) - 1.0
        return _reduce(torch.clamp(1.0 - signs * logits.squeeze(-1), min=0.0), reduction)
    return _per_class(F.multi_margin_loss, logits, y, num_classes, reduction)  # Crammer-Singer style


def _mse(logits: Tensor, y: Tensor, num_classes: int, reduction: str) -> Tensor:
    if num_classes == 0:  # regression: one real output
        return F.mse_loss(logits.squeeze(-1), y.to(logits.dtype), reduction=reduction)
    if num_classes == 2:  # squared error between P(y=1) and the 0/1 label
        return F.mse_loss(torch.sigmoid(logits.squeeze(-1)), y.to(logits.dtype), reduction=reduction)
    one_hot = F.one_hot(y, num_classes).to(logits.dtype)
    return _reduce(((torch.softmax(logits, dim=-1) - one_hot) ** 2).mean(-1), reduction)


@dataclass(frozen=True)
class Loss:
    """One loss: its values, the tasks it fits, and optionally its closed-form logit gradient.

    function: (logits, y, num_classes, reduction "none" or "mean") -> per-sample values or their mean.
    with_logit_grad: (logits, y, num_classes) -> (per-sample losses, d loss_i / d logits_i), or None.
    """

    name: str
    description: str
    function: Callable[[Tensor, Tensor, int, str], Tensor]
    tasks: tuple[str, ...] = ("classification",)
    with_logit_grad: Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]] | None = None

    def per_sample(self, logits: Tensor, y: Tensor, num_classes: int) -> Tensor:
        """One value per sample: the logits' leading shape."""
        return self.function(logits, y, num_classes, "none")

    def mean(self, logits: Tensor, y: Tensor, num_classes: int) -> Tensor:
        """The batch loss LitFNN minimises: the mean of the per-sample values."""
        return self.function(logits, y, num_classes, "mean")

    def values(self, logits: Tensor, y: Tensor, num_classes: int) -> Tensor:
        """Per-sample values, in closed form where the loss has one (its gradient is then a by-product)."""
        if self.with_logit_grad is not None:
            return self.with_logit_grad(logits, y, num_classes)[0]
        return self.per_sample(logits, y, num_classes)

    def values_and_logit_grad(self, logits: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Per-sample values and each one's gradient with respect to its own logits (the batched engine's
        backward starts there): the closed form where the loss has one, else autograd on the logits alone."""
        if self.with_logit_grad is not None:
            return self.with_logit_grad(logits, y, num_classes)
        with torch.enable_grad():
            z = logits.detach().requires_grad_(True)
            per_sample = self.per_sample(z, y, num_classes)
            (grad,) = torch.autograd.grad(per_sample.sum(), z)  # a sample's loss depends on its own logits only
        return per_sample.detach(), grad


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("cross_entropy", "softmax cross-entropy; BCE-with-logits on one logit when binary", _cross_entropy,
         with_logit_grad=_cross_entropy_with_grad),
    Loss("hinge", "max(0, 1 - y f(x)) when binary; multi-class margin (Crammer-Singer style)", _hinge),
    Loss("mse", "squared error of the probabilities vs one-hot labels; of the output for regression", _mse,
         tasks=TASKS),
)}


def get_loss(name: str, task: str, num_classes: int) -> Loss:
    """The declaration of loss `name`, checked against the task and the number of classes."""
    check_choice("task", task, TASKS)
    loss = LOSSES[check_choice("loss", name, LOSSES)]
    if task not in loss.tasks:
        allowed = ", ".join(sorted(n for n, candidate in LOSSES.items() if task in candidate.tasks))
        raise ConfigError(f"loss {name!r} does not fit task {task!r}; allowed: {allowed}")
    if task == "classification" and num_classes < 2:
        raise ConfigError(f"num_classes={num_classes} must be >= 2 for classification")
    return loss


def head_classes(task: str, num_classes: int) -> int:
    """The `num_classes` a loss is called with: 0 for regression, the class count otherwise."""
    return 0 if task == "regression" else num_classes


def make_loss(name: str, task: str, num_classes: int) -> Callable[[Tensor, Tensor], Tensor]:
    """Return loss(logits, target), the batch mean, for this task; regression allows only mse."""
    loss = get_loss(name, task, num_classes)
    classes = head_classes(task, num_classes)
    return lambda logits, y: loss.mean(logits, y, classes)


def predict(logits: Tensor, task: str, num_classes: int) -> Tensor:
    """Class indices for classification, real values for regression."""
    if task == "regression":
        return logits.squeeze(-1)
    if num_classes == 2:
        return (logits.squeeze(-1) > 0).long()
    return logits.argmax(dim=-1)


def probabilities(logits: Tensor, num_classes: int) -> Tensor:
    """(batch, num_classes) class probabilities from logits."""
    if num_classes == 2:
        p1 = torch.sigmoid(logits.squeeze(-1))
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)
