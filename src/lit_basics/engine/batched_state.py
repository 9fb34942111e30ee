"""The per-model state a batched group carries through training: rows and batches (Members), best values and
early stopping (Scores), learning-rate schedules (Schedules)."""

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from lit_basics.errors import check_choice
from lit_basics.models.optimizers import SCHEDULERS, make_scheduler


def padded(rows: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(M, n_max) row indices, -1 where a model has fewer rows."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out.to(device)


@dataclass
class Scores:
    """Per model in the stack: whether it still trains, its best validation values and epochs counted."""

    active: torch.Tensor  # (M,) bool
    best_loss: torch.Tensor
    best_acc: torch.Tensor
    best_epoch: torch.Tensor
    waited: torch.Tensor  # epochs since the last improvement
    epochs_run: torch.Tensor
    diverged: torch.Tensor  # (M,) bool: its training loss became NaN or infinite
    min_delta: float = 0.0  # an epoch improves when its loss is below the best by more than this

    @classmethod
    def start(cls, m: int, device: torch.device, min_delta: float) -> "Scores":
        def zeros():
            return torch.zeros(m, dtype=torch.long, device=device)

        return cls(torch.ones(m, dtype=torch.bool, device=device), torch.full((m,), math.inf, device=device),
                   torch.zeros(m, device=device), zeros(), zeros(), zeros(),
                   torch.zeros(m, dtype=torch.bool, device=device), min_delta)

    def update(self, val_loss: torch.Tensor, val_acc: torch.Tensor, epoch: int) -> torch.Tensor:
        """Best values, best epoch and epochs without improvement; returns which models improved."""
        active = self.active
        self.epochs_run += active
        improved = active & (val_loss < self.best_loss - self.min_delta)
        self.best_loss = torch.where(improved, val_loss, self.best_loss)
        self.best_epoch = torch.where(improved, torch.full_like(self.best_epoch, epoch + 1), self.best_epoch)
        self.best_acc = torch.where(improved, val_acc, self.best_acc)  # the best-loss epoch's, as LitFNN's
        self.waited = torch.where(improved, torch.zeros_like(self.waited), self.waited + active.long())
        return improved

    def rows(self, rows: torch.Tensor) -> "Scores":
        return Scores(*(getattr(self, f.name)[rows] for f in fields(self) if f.name != "min_delta"),
                       min_delta=self.min_delta)


def _scheduler(name: str, kwargs: dict[str, Any] | None, max_epochs: int, lr: float) -> Any:
    """Scheduler `name` on a one-parameter optimizer that only carries a learning rate for it to change."""
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(name, stand_in, kwargs, max_epochs)
    stand_in.step()  # no gradient, no change: the optimizer counts as stepped before its scheduler steps
    return scheduler


class Schedules:
    """Each model's learning rate through the epochs, from torch's own scheduler on a stand-in optimizer.

    LitFNN steps its scheduler once per epoch after validation (ReduceLROnPlateau with val/loss);
    here one scheduler per model does the same with that model's validation loss.
    """

    def __init__(self, name: str, kwargs: dict[str, Any] | None, max_epochs: int, lrs: list[float]) -> None:
        self.plateau = name == "plateau"
        self.schedulers = [] if SCHEDULERS[check_choice("scheduler", name, SCHEDULERS)] is None else [
            _scheduler(name, kwargs, max_epochs, lr) for lr in lrs]

    def step(self, val_losses: list[float], active: list[bool]) -> list[float] | None:
        """The learning rates after this epoch, or None without a scheduler."""
        if not self.schedulers:
            return None
        for scheduler, loss, stepping in zip(self.schedulers, val_losses, active, strict=True):
            if stepping:
                scheduler.step(loss) if self.plateau else scheduler.step()
        return [scheduler.optimizer.param_groups[0]["lr"] for scheduler in self.schedulers]

    def keep(self, rows: list[int]) -> None:
        self.schedulers = [self.schedulers[i] for i in rows] if self.schedulers else []


class Members:
    """What the loop needs of the models in the stack, row by row: their specs, fold offsets, validation data."""

    def __init__(self, specs: list, x: torch.Tensor, y: torch.Tensor, batch_sizes: list[int],
                 micro: int, skip_single: bool = False) -> None:
        """`skip_single`: a batch of one row is not trained on (BatchNorm, as LitFNN)."""
        device = x.device
        self.specs, self.x, self.y, self.batch_sizes, self.micro = specs, x, y, batch_sizes, micro
        self.skip_single = skip_single
        folds = torch.tensor([s.fold for s in specs], device=device)
        self.offset = folds[:, None] * x.shape[1]
        # Per step of `micro` rows: which models step after it (their batch ends there), whether any
        # model carries its gradient on to the next, and each row's weight 1 / (its batch's size).
        counts = np.array([len(s.train_rows) for s in specs])
        sizes = np.array(batch_sizes)
        steps = -(-int(counts.max()) // micro)
        ends = (np.arange(steps)[:, None] + 1) * micro  # (steps, M): rows done after each step
        self.steps_at = ((ends % sizes == 0) | (ends >= counts)) & (ends - micro < counts)
        self.carries = ((ends < counts) & (ends % sizes != 0)).any(1).tolist()
        position = np.arange(int(counts.max()))[None, :]
        batch_start = position // sizes[:, None] * sizes[:, None]
        batch_rows = np.minimum(sizes[:, None], counts[:, None] - batch_start)
        weight = np.where(position < counts[:, None], 1.0 / np.maximum(batch_rows, 1), 0.0)
        if skip_single:
            weight = np.where(batch_rows == 1, 0.0, weight)
        self.row_weight = torch.as_tensor(weight[..., None], dtype=x.dtype, device=device).split(micro, 1)  # per step
        start = np.arange(steps)[:, None] * micro  # (steps, 1): the first row of each step
        batch_start = start // sizes * sizes  # (steps, M): the first row of each model's current batch
        real = np.clip(counts - start, 0, micro)
        in_batch = np.clip(np.minimum(sizes, counts - batch_start), 0, None)
        if skip_single:
            self.steps_at &= in_batch != 1
            real = np.where(in_batch == 1, 0, real)
        # per step and model, for dropout: (offset in its batch, real rows now, real rows in its batch)
        self.real_rows = np.stack([start - batch_start, real, in_batch], -1).tolist()
        val_rows = padded([s.val_rows for s in specs], device)
        self.val_mask = (val_rows >= 0).to(x.dtype)
        self.x_val, self.y_val = x[folds[:, None], val_rows.clamp(min=0)], y[val_rows.clamp(min=0)]

    def keep(self, rows: torch.Tensor) -> "Members":
        index = rows.tolist()
        return Members([self.specs[i] for i in index], self.x, self.y, [self.batch_sizes[i] for i in index],
                       self.micro, self.skip_single)
