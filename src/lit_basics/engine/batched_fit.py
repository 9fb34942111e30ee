"""The training loop of a batched group: epochs, per-model batch order, validation, early stopping."""

import math

import numpy as np
import torch

from lit_basics.engine.batched import BatchedMLP, BatchedOptimizer, GroupResult, ModelSpec
from lit_basics.engine.batched_loss import cross_entropy_with_grad, per_sample_loss
from lit_basics.models.fnn import FNN
from lit_basics.models.losses import output_dim, predict

EPOCH_GATHER_LIMIT = 2**25  # floats (128 MB): above it, rows are gathered per step instead of per epoch


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
    init: str = "pytorch",
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
        modules.append(FNN(x.shape[-1], list(widths), out_dim, activation=activation, init=init))
    hp = {k: torch.tensor([getattr(s, k) for s in specs], dtype=x.dtype, device=device)
          for k in ("lr", "weight_decay", "l1", "dropout", "momentum")}
    net = BatchedMLP.from_modules(modules, activation, alpha, hp["dropout"]).to(device)
    opt = BatchedOptimizer(optimizer, net, hp["lr"], hp["weight_decay"], hp["momentum"], hp["l1"])
    val_rows = _padded([s.val_rows for s in specs], device)
    val_mask = (val_rows >= 0).to(x.dtype)
    x_val, y_val = x[folds[:, None], val_rows.clamp(min=0)], y[val_rows.clamp(min=0)]
    active = torch.ones(m, dtype=torch.bool, device=device)
    active_host = np.ones(m, dtype=bool)  # the same, on the host: which models step (no sync per step)
    best_loss = torch.full((m,), math.inf, device=device)
    best_acc = torch.zeros(m, device=device)
    best_epoch = torch.zeros(m, dtype=torch.long, device=device)
    waited = torch.zeros(m, dtype=torch.long, device=device)
    epochs_run = torch.zeros(m, dtype=torch.long, device=device)
    history: list[list[dict[str, float]]] = [[] for _ in range(m)]
    generator = torch.Generator(device=device).manual_seed(specs[0].seed)
    counts = np.array([len(s.train_rows) for s in specs])
    fewest = int(counts.min())
    x_rows, y_rows = x.reshape(-1, x.shape[-1]), y.repeat(x.shape[0])  # row r of fold f: f * n + r
    offset = folds[:, None] * x.shape[1]
    closed_form = loss == "cross_entropy" and num_classes >= 2
    gather_per_epoch = m * max(len(s.train_rows) for s in specs) * x.shape[-1] <= EPOCH_GATHER_LIMIT
    for epoch in range(max_epochs):
        order = _padded(_epoch_order(specs, epoch), device)  # (M, most rows), -1 past a model's rows
        valid = order >= 0
        order = torch.where(valid, order, 0) + offset
        # this epoch's rows in order, gathered once: each step then reads a slice (when it fits in memory)
        flat_order = order.view(-1)
        if epoch == 0:  # buffers reused every epoch: a fresh multi-MB tensor costs its page faults each time
            x_epoch = x_rows.new_empty((*order.shape, x.shape[-1])) if gather_per_epoch else None
            y_epoch = y_rows.new_empty(order.shape)
        if x_epoch is not None:
            torch.index_select(x_rows, 0, flat_order, out=x_epoch.view(-1, x.shape[-1]))
        torch.index_select(y_rows, 0, flat_order, out=y_epoch.view(-1))
        per_sample_losses = []  # (M, B) per step; the epoch's training loss is their mean over valid rows
        stepping = active_host
        for start in range(0, order.shape[1], batch_size):
            end = start + batch_size
            xb = x_epoch[:, start:end] if x_epoch is not None else x_rows[order[:, start:end]]
            logits = net(xb, train=True, generator=generator)  # (M, B, outputs)
            yb = y_epoch[:, start:end]
            full = end <= fewest  # every model has a whole batch: no masking
            if not full:
                mask = valid[:, start:end].to(x.dtype)
                weight = mask / mask.sum(1, keepdim=True).clamp(min=1)  # (M, B): each model's batch mean
                stepping = active_host & (counts > start)
            if closed_form:
                per_sample, d_logits = cross_entropy_with_grad(logits.detach(), yb, num_classes)
                net.backward(logits, d_logits.mul_(1.0 / yb.shape[1]) if full else d_logits.mul_(weight.unsqueeze(-1)))
            else:
                per_sample = per_sample_loss(loss, logits, yb, num_classes)
                net.backward(per_sample.mean(1).sum() if full else (per_sample * weight).sum())
            per_sample_losses.append(per_sample.detach())
            opt.step(stepping)
        with torch.no_grad():
            epoch_losses = torch.cat(per_sample_losses, 1)
            train_loss = (epoch_losses * valid).sum(1) / valid.sum(1).clamp(min=1)
        with torch.no_grad():
            logits = net(x_val)
            if closed_form:
                val_per_sample = cross_entropy_with_grad(logits, y_val, num_classes)[0]
            else:
                val_per_sample = per_sample_loss(loss, logits, y_val, num_classes)
            val_loss = _masked_mean(val_per_sample, val_mask)
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
        rows = zip(active.tolist(), train_loss.tolist(), val_loss.tolist(),
                   val_acc.tolist(), strict=True)
        for i, (was_active, train_value, loss_value, acc_value) in enumerate(rows):  # one host sync per epoch
            if was_active:
                history[i].append({"epoch": float(epoch), "train/loss": train_value, "val/loss": loss_value,
                                   "val/acc": acc_value})
        if patience is not None:
            active &= waited < patience
            active_host = active.cpu().numpy().copy()
        if not active_host.any():
            break
    return GroupResult(best_loss.tolist(), best_acc.tolist(), best_epoch.tolist(), epochs_run.tolist(), history)
