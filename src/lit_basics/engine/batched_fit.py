"""The training loop of a batched group: epochs, per-model batch order, validation, early stopping."""

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from lit_basics.data.batching import epoch_permutation
from lit_basics.engine.batched import BatchedMLP, GroupResult, ModelSpec
from lit_basics.engine.batched_optimizer import BatchedOptimizer
from lit_basics.errors import check_choice
from lit_basics.models.fnn import FNN
from lit_basics.models.losses import LOSSES, Loss, output_dim, predict
from lit_basics.models.optimizers import SCHEDULERS, make_scheduler

EPOCH_GATHER_LIMIT = 2**25  # floats (128 MB): above it, rows are gathered per step instead of per epoch
COMPACT_BELOW = 0.75  # when at most this share of the stack is still training, drop the stopped models


def _padded(rows: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(M, n_max) row indices, -1 where a model has fewer rows."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out.to(device)


def _epoch_order(specs: list[ModelSpec], epoch: int) -> list[torch.Tensor]:
    """Each model's training rows in its own seeded order for this epoch, as TensorBatchLoader draws them."""
    return [spec.train_rows[epoch_permutation(len(spec.train_rows), spec.seed, epoch)] for spec in specs]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()  # backpropagation is BatchedMLP.backward's
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
    batch_size: int | list[int] = 32,
    max_epochs: int = 50,
    patience: int | None = None,
    min_delta: float = 0.0,
    init: str = "pytorch",
    scheduler: str = "none",
    scheduler_kwargs: dict[str, Any] | None = None,
    keep_best: bool = False,
) -> GroupResult:
    """Train len(specs) networks together; x is (folds, rows, features): one preprocessed copy per fold.

    `hidden_sizes` is one list for all models or one per model (same depth; narrower ones are padded).
    `batch_size` is one for all or one per model, each a multiple of the smallest: the group steps
    through the data in batches of the smallest size, and a model with a k times larger batch sums
    its gradient over k of them before it steps (the same gradient as one batch of its size).
    Early stopping per model on its validation loss (stop after `patience` epochs without an
    improvement by more than `min_delta`, as Lightning's EarlyStopping); a stopped model is frozen while
    the others go on, and the stopped models leave the stack once they are a quarter of it (COMPACT_BELOW). `scheduler`
    changes each model's learning rate after each epoch's validation, as LitFNN does. The result's
    `layers` are each model's parameters at the end, or at its best validation epoch with `keep_best`.
    """
    if max_epochs < 1:
        raise ValueError(f"max_epochs={max_epochs} must be >= 1")
    fit = _GroupFit(x, y, specs, hidden_sizes, num_classes, activation, alpha, loss, optimizer, batch_size,
                    max_epochs, init, scheduler, scheduler_kwargs, keep_best, min_delta)
    for epoch in range(max_epochs):
        val_loss, val_acc = fit.train_epoch(epoch)
        fit.end_epoch(epoch, val_loss, val_acc, patience)
        if not fit.active.any():
            break
        if fit.active.sum() <= COMPACT_BELOW * len(fit.index):
            fit.compact()
    return fit.result()


def fit_configurations(x: torch.Tensor, y: torch.Tensor, specs: list[ModelSpec], settings: list[dict[str, Any]],
                       num_classes: int, **options: Any) -> GroupResult:
    """fit_group for models given as LitFNN-named settings (engine/hyperparameters.py), one dict per model.

    The group's shared values come from the first; widths and batch sizes are per model. `options`:
    fit_group's stopping arguments (patience, min_delta, keep_best).
    """
    first = settings[0]
    return fit_group(x, y, specs, [list(s["hidden_sizes"]) for s in settings], num_classes,
                     activation=first["activation"], alpha=first["leaky_relu_alpha"], loss=first["loss"],
                     optimizer=first["optimizer"], batch_size=[int(s["batch_size"]) for s in settings],
                     max_epochs=int(first["max_epochs"]), init=first["init"], scheduler=first["scheduler"],
                     scheduler_kwargs=first["scheduler_kwargs"], **options)


@dataclass
class _Scores:
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
    def start(cls, m: int, device: torch.device, min_delta: float) -> "_Scores":
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

    def rows(self, rows: torch.Tensor) -> "_Scores":
        return _Scores(*(getattr(self, f.name)[rows] for f in fields(self) if f.name != "min_delta"),
                       min_delta=self.min_delta)


class _GroupFit:
    """The state of one group's training: the stacked net, its optimizer, the members, scores and schedules."""

    def __init__(self, x, y, specs, hidden_sizes, num_classes, activation, alpha, loss, optimizer, batch_size,
                 max_epochs, init, scheduler, scheduler_kwargs, keep_best, min_delta) -> None:
        device = x.device
        m = len(specs)
        sizes = hidden_sizes if isinstance(hidden_sizes[0], list | tuple) else [hidden_sizes] * m
        out_dim = output_dim("classification" if num_classes else "regression", num_classes)
        modules = []
        with torch.random.fork_rng(devices=[]):  # the caller's global generator is left as it was
            for spec, widths in zip(specs, sizes, strict=True):
                torch.manual_seed(spec.seed)  # each model starts as a separate FNN of its own sizes would
                modules.append(FNN(spec.input_dim or x.shape[-1], list(widths), out_dim, activation=activation,
                                   init=init))
        hp = {k: torch.tensor([getattr(s, k) for s in specs], dtype=x.dtype, device=device)
              for k in ("lr", "weight_decay", "l1", "dropout", "momentum", "grad_clip")}
        self.net = BatchedMLP.from_modules(modules, activation, alpha, hp["dropout"], x.shape[-1]).to(device)
        self.opt = BatchedOptimizer(optimizer, self.net, hp["lr"], hp["weight_decay"], hp["momentum"], hp["l1"],
                                    [s.optimizer_kwargs for s in specs], hp["grad_clip"])
        batch_sizes = list(batch_size) if isinstance(batch_size, list | tuple) else [batch_size] * m
        self.micro = min(batch_sizes)
        if any(b % self.micro for b in batch_sizes):
            raise ValueError(f"batch sizes {sorted(set(batch_sizes))} must be multiples of the smallest, {self.micro}")
        self.members = _Members(specs, x, y, batch_sizes, self.micro)
        self.loss, self.num_classes = LOSSES[loss], num_classes
        self.scores = _Scores.start(m, device, min_delta)
        self.active = np.ones(m, dtype=bool)  # scores.active on the host: which models step (no sync per step)
        self.index = np.arange(m)  # the original model of each row of the stack
        self.final: dict[str, list] = {k: [0] * m for k in ("best_loss", "best_acc", "best_epoch", "epochs_run",
                                                             "diverged")}
        self.history: list[list[dict[str, float]]] = [[] for _ in range(m)]
        self.layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(m)]
        self.best_flat = self.net.flat.clone() if keep_best else None  # (M, P): each model's best parameters
        self.schedules = _Schedules(scheduler, scheduler_kwargs, max_epochs, self.opt.lr)
        self.net.seed_dropout([spec.seed for spec in specs])
        self.x_rows, self.y_rows = x.reshape(-1, x.shape[-1]), y.repeat(x.shape[0])  # row r of fold f: f * n + r
        self.x_epoch = self.y_epoch = None

    def _gather(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's (M, most rows) order and validity; its rows gathered once when they fit in memory."""
        order = _padded(_epoch_order(self.members.specs, epoch), self.x_rows.device)  # -1 past a model's rows
        valid = order >= 0
        order = torch.where(valid, order, 0) + self.members.offset
        features = self.x_rows.shape[-1]
        if self.y_epoch is None or self.y_epoch.shape != order.shape:  # reused: a fresh one costs page faults
            gather = order.numel() * features <= EPOCH_GATHER_LIMIT
            self.x_epoch = self.x_rows.new_empty((*order.shape, features)) if gather else None
            self.y_epoch = self.y_rows.new_empty(order.shape)
        if self.x_epoch is not None:
            torch.index_select(self.x_rows, 0, order.view(-1), out=self.x_epoch.view(-1, features))
        torch.index_select(self.y_rows, 0, order.view(-1), out=self.y_epoch.view(-1))
        return order, valid

    def train_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of training steps for every active model; returns (M,) validation loss and accuracy."""
        net, members = self.net, self.members
        order, valid = self._gather(epoch)
        per_sample_losses = []  # (M, B) per step; the epoch's training loss is their mean over valid rows
        carried = False  # whether some model carries a partial gradient into this step
        stepping = members.steps_at & self.active  # (steps, M)
        inputs = self.x_epoch if self.x_epoch is not None else order
        batches = zip(inputs.split(self.micro, 1), self.y_epoch.split(self.micro, 1), members.row_weight, strict=True)
        for step, (xb, yb, row_weight) in enumerate(batches):
            if self.x_epoch is None:
                xb = self.x_rows[xb]  # this step's rows (order's slice), gathered now
            rows = members.real_rows[step] if net.dropping else None
            logits = net(xb, train=True, rows=rows)  # (M, B, outputs)
            per_sample, d_logits = self.loss.values_and_logit_grad(logits, yb, self.num_classes)
            net.backward(d_logits.mul_(row_weight), accumulate=carried)
            per_sample_losses.append(per_sample)
            self.opt.step(stepping[step])
            carried = members.carries[step]
            if carried:  # the models that stepped start their next batch from zero
                net.zero_grad(np.flatnonzero(members.steps_at[step]))
        self.train_loss = _masked_mean(torch.cat(per_sample_losses, 1), valid)
        return _validate(net, members, self.loss, self.num_classes)

    def end_epoch(self, epoch: int, val_loss: torch.Tensor, val_acc: torch.Tensor, patience: int | None) -> None:
        """Scores, history, best parameters, learning rates and early stopping after an epoch's validation."""
        scores = self.scores
        was_active = scores.active.tolist()
        improved = scores.update(val_loss, val_acc, epoch)
        if self.best_flat is not None:
            self.best_flat[improved] = self.net.flat[improved]
        rows = zip(self.index.tolist(), was_active, self.train_loss.tolist(), val_loss.tolist(), val_acc.tolist(),
                   strict=True)
        for i, active, train_value, loss_value, acc_value in rows:  # one host sync per epoch
            if active:
                self.history[i].append({"epoch": float(epoch), "train/loss": train_value, "val/loss": loss_value,
                                        "val/acc": acc_value})
        lrs = self.schedules.step(val_loss.tolist(), was_active)
        if lrs is not None:
            self.opt.set_lr(lrs)
        diverged = scores.active & ~torch.isfinite(self.train_loss)  # stops there, as LitFNN's fit does
        scores.diverged |= diverged
        scores.active &= ~diverged
        if patience is not None:
            scores.active &= scores.waited < patience
        self.active = scores.active.cpu().numpy().copy()

    def _record(self, rows: np.ndarray) -> None:
        """Copy the results of stack rows `rows` (a mask) to their original models' places."""
        picked_rows = torch.as_tensor(rows, device=self.scores.active.device)
        for key, values in self.final.items():
            picked = getattr(self.scores, key)[picked_rows]
            for i, value in zip(self.index[rows].tolist(), picked.tolist(), strict=True):
                values[i] = value
        flat = self.net.flat if self.best_flat is None else self.best_flat
        for row in np.flatnonzero(rows).tolist():
            self.layers[self.index[row]] = [(w.detach().clone(), b.detach().clone())
                                            for w, b in self.net.layers(row, flat)]

    def compact(self) -> None:
        """Stopped models leave the stack with their results; the others go on with less arithmetic."""
        self._record(~self.active)
        if not self.active.any():
            return
        keep = torch.as_tensor(np.flatnonzero(self.active), device=self.net.flat.device)
        self.net.keep(keep)
        self.opt.keep(keep)
        self.members = self.members.keep(keep)
        self.scores = self.scores.rows(keep)
        self.schedules.keep(keep.tolist())
        if self.best_flat is not None:
            self.best_flat = self.best_flat[keep]
        self.index, self.active = self.index[self.active], self.active[self.active]

    def result(self) -> GroupResult:
        if len(self.index):
            self._record(np.ones(len(self.index), dtype=bool))
        final = self.final
        return GroupResult(final["best_loss"], final["best_acc"], final["best_epoch"], final["epochs_run"],
                           self.history, self.layers, final["diverged"])


def _scheduler(name: str, kwargs: dict[str, Any] | None, max_epochs: int, lr: float) -> Any:
    """Scheduler `name` on a one-parameter optimizer that only carries a learning rate for it to change."""
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(name, stand_in, kwargs, max_epochs)
    stand_in.step()  # no gradient, no change: the optimizer counts as stepped before its scheduler steps
    return scheduler


class _Schedules:
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


class _Members:
    """What the loop needs of the models in the stack, row by row: their specs, fold offsets, validation data."""

    def __init__(self, specs: list[ModelSpec], x: torch.Tensor, y: torch.Tensor, batch_sizes: list[int],
                 micro: int) -> None:
        device = x.device
        self.specs, self.x, self.y, self.batch_sizes, self.micro = specs, x, y, batch_sizes, micro
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
        self.row_weight = torch.as_tensor(weight[..., None], dtype=x.dtype, device=device).split(micro, 1)  # per step
        start = np.arange(steps)[:, None] * micro  # (steps, 1): the first row of each step
        batch_start = start // sizes * sizes  # (steps, M): the first row of each model's current batch
        real = np.clip(counts - start, 0, micro)
        in_batch = np.clip(np.minimum(sizes, counts - batch_start), 0, None)
        # per step and model, for dropout: (offset in its batch, real rows now, real rows in its batch)
        self.real_rows = np.stack([start - batch_start, real, in_batch], -1).tolist()
        val_rows = _padded([s.val_rows for s in specs], device)
        self.val_mask = (val_rows >= 0).to(x.dtype)
        self.x_val, self.y_val = x[folds[:, None], val_rows.clamp(min=0)], y[val_rows.clamp(min=0)]

    def keep(self, rows: torch.Tensor) -> "_Members":
        index = rows.tolist()
        return _Members([self.specs[i] for i in index], self.x, self.y, [self.batch_sizes[i] for i in index],
                        self.micro)


def _validate(net: BatchedMLP, members: _Members, loss: Loss, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) validation loss and accuracy (0 for regression, and without validation rows) of every model."""
    if members.val_mask.shape[1] == 0:  # nothing to validate (an estimator that never stops early)
        zeros = members.val_mask.new_zeros(members.val_mask.shape[0])
        return zeros, zeros.clone()
    logits = net(members.x_val)
    per_sample = loss.values(logits, members.y_val, num_classes)
    if num_classes:
        correct = (predict(logits, "classification", num_classes) == members.y_val).to(logits.dtype)
    else:  # regression: no accuracy
        correct = torch.zeros_like(members.val_mask)
    return _masked_mean(per_sample, members.val_mask), _masked_mean(correct, members.val_mask)
