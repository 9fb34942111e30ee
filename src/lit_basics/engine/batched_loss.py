"""A loss of models/losses.py as the batched engine uses it: per-sample values and their logit gradients."""

import torch

from lit_basics.models.losses import LOSSES


def loss_values(name: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(M, B) per-sample losses, in closed form where the loss has one (its gradient is a by-product)."""
    loss = LOSSES[name]
    if loss.with_logit_grad is not None:
        return loss.with_logit_grad(logits, y, num_classes)[0]
    return loss.per_sample(logits, y, num_classes)


def loss_with_grad(name: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, B) per-sample losses and the gradient of each with respect to its own logits (M, B, outputs).

    The loss's closed form where it has one; otherwise autograd on the logits alone.
    """
    loss = LOSSES[name]
    if loss.with_logit_grad is not None:
        return loss.with_logit_grad(logits, y, num_classes)
    with torch.enable_grad():
        z = logits.detach().requires_grad_(True)
        per_sample = loss.per_sample(z, y, num_classes)
        (grad,) = torch.autograd.grad(per_sample.sum(), z)  # a sample's loss depends on its own logits only
    return per_sample.detach(), grad
