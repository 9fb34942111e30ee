"""The training loop of a batched group: epochs, per-model batch order, validation, early stopping."""

import math

import torch

from lit_basics.engine.batched import BatchedMLP, BatchedOptimizer, GroupResult, ModelSpec, per_sample_loss
from lit_basics.models.fnn import FNN
from lit_basics.models.losses import output_dim, predict


def _padded(rows: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(M, n_max) row indices, -1 where a model has fewer rows."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out.to(device)


def _epoch_order(specs: list[ModelSpec], epoch: int) -> list[torch.Tensor]:
    """Each model's training rows in its own seeded order for this epoch (as TensorBatchLoader draws)."""
    order = []
    for spec in specs:
        generator = torch.Generator().manual_seed(spec.seed + epoch)
        order.append(spec.train_rows[torch.randperm(len(spec.train_rows), generator=generator)])
    return order


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


def fit_group(
    x: torch.Tensor,
    y: torch.Tensor,
    specs: list[ModelSpec],
    hidden_sizes: list[int] | list[list[int]],
    num_classes: int,
    activation: str = "relu",
    alpha: float = 0.01,
    loss: str = "cross_entropy",
    optimizer: str = "adam",
    batch_size: int = 32,
    max_epochs: int = 50,
    patience: int | None = None,
) -> GroupResult:
    """Train len(specs) networks together; x is (folds, rows, features): one standardised copy per fold.

    `hidden_sizes` is one list for all models or one per model (same depth; narrower ones are padded).
    Early stopping per model on its validation loss (stop after `patience` epochs without a strict
    improvement, as Lightning's EarlyStopping); a stopped model is frozen while the others go on.
    """
    device = x.device
    m = len(specs)
    folds = torch.tensor([s.fold for s in specs], device=device)
    sizes = hidden_sizes if isinstance(hidden_sizes[0], list | tuple) else [hidden_sizes] * m
    out_dim = output_dim("classification" if num_classes else "regression", num_classes)
    modules = []
    for spec, widths in zip(specs, sizes, strict=True):
        torch.manual_seed(spec.seed)  # each model starts as a separate FNN of its own sizes would
        modules.append(FNN(x.shape[-1], list(widths), out_dim))
    hp = {k: torch.tensor([getattr(s, k) for s in specs], dtype=x.dtype, device=device)
          for k in ("lr", "weight_decay", "l1", "dropout", "momentum")}
    net = BatchedMLP.from_modules(modules, activation, alpha, hp["dropout"]).to(device)
    opt = BatchedOptimizer(optimizer, net, hp["lr"], hp["weight_decay"], hp["momentum"])
    val_rows = _padded([s.val_rows for s in specs], device)
    val_mask = (val_rows >= 0).to(x.dtype)
    x_val, y_val = x[folds[:, None], val_rows.clamp(min=0)], y[val_rows.clamp(min=0)]
    active = torch.ones(m, dtype=torch.bool, device=device)
    best_loss = torch.full((m,), math.inf, device=device)
    best_acc = torch.zeros(m, device=device)
    best_epoch = torch.zeros(m, dtype=torch.long, device=device)
    waited = torch.zeros(m, dtype=torch.long, device=device)
    epochs_run = torch.zeros(m, dtype=torch.long, device=device)
    history: list[list[dict[str, float]]] = [[] for _ in range(m)]
    generator = torch.Generator(device=device).manual_seed(specs[0].seed)
    for epoch in range(max_epochs):
        order = _padded(_epoch_order(specs, epoch), device)
        train_sum = torch.zeros(m, device=device)
        train_count = torch.zeros(m, device=device)
        for start in range(0, order.shape[1], batch_size):
            idx = order[:, start : start + batch_size]  # (M, B)
            mask = (idx >= 0).to(x.dtype)
            rows = idx.clamp(min=0)
            logits = net(x[folds[:, None], rows], train=True, generator=generator)
            losses = _masked_mean(per_sample_loss(loss, logits, y[rows], num_classes), mask)  # (M,)
            objective = losses
            if bool((hp["l1"] > 0).any()):
                objective = objective + hp["l1"] * (net.flat.abs() * net.weight_mask).sum(1)
            stepping = active & (mask.sum(1) > 0)
            grads = torch.autograd.grad((objective * stepping).sum(), net.parameters)
            opt.step(grads, stepping)
            train_sum += losses.detach() * mask.sum(1) * stepping
            train_count += mask.sum(1) * stepping
        with torch.no_grad():
            logits = net(x_val)
            val_loss = _masked_mean(per_sample_loss(loss, logits, y_val, num_classes), val_mask)
            if num_classes:
                correct = (predict(logits, "classification", num_classes) == y_val).to(x.dtype)
            else:  # regression: no accuracy
                correct = val_mask * 0
            val_acc = _masked_mean(correct, val_mask)
        epochs_run += active
        improved = active & (val_loss < best_loss)
        best_loss = torch.where(improved, val_loss, best_loss)
        best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch + 1), best_epoch)
        best_acc = torch.where(active, torch.maximum(best_acc, val_acc), best_acc)
        waited = torch.where(improved, torch.zeros_like(waited), waited + active.long())
        rows = zip(active.tolist(), (train_sum / train_count.clamp(min=1)).tolist(), val_loss.tolist(),
                   val_acc.tolist(), strict=True)
        for i, (was_active, train_value, loss_value, acc_value) in enumerate(rows):  # one host sync per epoch
            if was_active:
                history[i].append({"epoch": float(epoch), "train/loss": train_value, "val/loss": loss_value,
                                   "val/acc": acc_value})
        if patience is not None:
            active &= waited < patience
        if not bool(active.any()):
            break
    return GroupResult(best_loss.tolist(), best_acc.tolist(), best_epoch.tolist(), epochs_run.tolist(), history)
