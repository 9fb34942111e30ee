"""Per-sample losses of M stacked models, and their gradients with respect to the logits."""

import torch
import torch.nn.functional as F


def per_sample_loss(name: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(M, B) losses; the same definitions as lit_basics.models.losses, without the mean."""
    if num_classes == 0:
        return (logits.squeeze(-1) - y) ** 2
    if num_classes == 2:
        z, t = logits.squeeze(-1), y.to(logits.dtype)
        if name == "cross_entropy":
            return F.binary_cross_entropy_with_logits(z, t, reduction="none")
        if name == "hinge":
            return torch.clamp(1.0 - (2.0 * t - 1.0) * z, min=0.0)
        return (torch.sigmoid(z) - t) ** 2
    flat, target = logits.reshape(-1, num_classes), y.reshape(-1)
    if name == "cross_entropy":
        return F.cross_entropy(flat, target, reduction="none").view(y.shape)
    if name == "hinge":
        return F.multi_margin_loss(flat, target, reduction="none").view(y.shape)
    return ((torch.softmax(logits, -1) - F.one_hot(y, num_classes).to(logits.dtype)) ** 2).mean(-1)


def cross_entropy_with_grad(logits: torch.Tensor, y: torch.Tensor, num_classes: int
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, B) cross-entropy (BCE-with-logits for 2 classes) and d loss / d logits = p - onehot, no autograd.

    The same values as per_sample_loss, for a fraction of the time: torch's CPU log_softmax kernel
    is slow for a last dimension of ~10 (50 us for 320 rows, more than a 32x128x128 matmul), and
    its autograd node costs as much again.
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


def _closed_form(name: str, num_classes: int) -> bool:
    return name == "cross_entropy" and num_classes >= 2


def loss_values(name: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(M, B) per-sample losses, cross-entropy in closed form (its gradient is a by-product)."""
    if _closed_form(name, num_classes):
        return cross_entropy_with_grad(logits, y, num_classes)[0]
    return per_sample_loss(name, logits, y, num_classes)


def loss_with_grad(name: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, B) per-sample losses and the gradient of each with respect to its own logits (M, B, outputs).

    Cross-entropy in closed form; the other losses through autograd on the logits alone.
    """
    if _closed_form(name, num_classes):
        return cross_entropy_with_grad(logits, y, num_classes)
    with torch.enable_grad():
        z = logits.detach().requires_grad_(True)
        per_sample = per_sample_loss(name, z, y, num_classes)
        (grad,) = torch.autograd.grad(per_sample.sum(), z)  # a sample's loss depends on its own logits only
    return per_sample.detach(), grad
