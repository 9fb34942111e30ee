"""The training loop of a batched group: epochs, per-model batch order, validation, early stopping."""

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np
import torch

from lit_basics.data.batching import epoch_permutation
from lit_basics.engine.batched import BatchedMLP, GroupResult, fast_path
from lit_basics.engine.batched_optimizer import BatchedOptimizer
from lit_basics.engine.batched_state import Members, Schedules, Scores, padded
from lit_basics.engine.generic import StackedModules
from lit_basics.errors import ConfigError, check_choice
from lit_basics.models import hparams
from lit_basics.models.fnn import build_network, has_batch_norm
from lit_basics.models.losses import LOSSES, Loss, output_dim, predict

EPOCH_GATHER_LIMIT = 2**25  # floats (128 MB): above it, rows are gathered per step instead of per epoch
COMPACT_BELOW = 0.75  # when at most this share of the stack is still training, drop the stopped models


def _epoch_order(specs: list, epoch: int) -> list[torch.Tensor]:
    """Each model's training rows in its own seeded order for this epoch, as TensorBatchLoader draws them."""
    return [spec.train_rows[epoch_permutation(len(spec.train_rows), spec.seed, epoch)] for spec in specs]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


GROUP_OPTIONS = ("batch_size", "max_epochs", *hparams.names(hparams.SHARED))  # what fit_group's **shared takes


@dataclass
class Stopping:
    """When a model of a group stops and what it keeps (Lightning's EarlyStopping on val/loss)."""

    patience: int | None = None  # epochs without an improvement by more than min_delta; None: never stop early
    min_delta: float = 0.0
    keep_best: bool = False  # the result's states are the best epoch's, else the last's


@torch.no_grad()  # backpropagation is each path's own backward
def fit_group(x: torch.Tensor, y: torch.Tensor, specs: list, hidden_sizes: list[int] | list[list[int]],
              num_classes: int, *, stopping: Stopping | None = None, path: str = "auto", **shared: Any) -> GroupResult:
    """Train len(specs) networks together; x is (folds, rows, features): one preprocessed copy per fold.

    `hidden_sizes` is one list for all models or one per model (same depth; narrower ones are padded on the
    fast path). `shared`: the schema's fields a group shares (activation, norm, residual, net, loss,
    optimizer, scheduler, ..., models/hparams.py) and `batch_size` (one, or one per model, each a multiple
    of the smallest: a model with a k times larger batch sums its gradient over k steps of the smallest)
    and `max_epochs`. `path`: "auto" (the fast path when every layer has a kernel, else the generic one),
    "fast" or "generic". Early stopping per model on its validation loss (`stopping`); a stopped model is
    frozen while the others go on, and the stopped models leave the stack once they are a quarter of it
    (COMPACT_BELOW). `scheduler` changes each model's learning rate after each epoch's validation, as LitFNN.
    """
    unknown = sorted(set(shared) - set(GROUP_OPTIONS))
    if unknown:
        raise TypeError(f"fit_group got unknown settings {unknown}; allowed: {', '.join(GROUP_OPTIONS)}")
    stopping = stopping or Stopping()
    max_epochs = int(shared.pop("max_epochs", 50))
    if max_epochs < 1:
        raise ValueError(f"max_epochs={max_epochs} must be >= 1")
    sizes = hidden_sizes if isinstance(hidden_sizes[0], list | tuple) else [hidden_sizes] * len(specs)
    batch_size = shared.pop("batch_size", 32)
    batch_sizes = list(batch_size) if isinstance(batch_size, list | tuple) else [batch_size] * len(specs)
    arch_fields = {f.name for f in dataclass_fields(hparams.Architecture)}
    archs = [hparams.Architecture(hidden_sizes=list(widths), dropout=float(spec.dropout),
                                  **{k: v for k, v in shared.items() if k in arch_fields})
             for spec, widths in zip(specs, sizes, strict=True)]
    optimization = hparams.Optimization(**{k: v for k, v in shared.items() if k not in arch_fields})
    fit = _GroupFit(x, y, specs, GroupPlan(archs, optimization, num_classes, batch_sizes, max_epochs, path), stopping)
    for epoch in range(max_epochs):
        val_loss, val_acc = fit.train_epoch(epoch)
        fit.end_epoch(epoch, val_loss, val_acc, stopping.patience)
        if not fit.active.any():
            break
        if fit.active.sum() <= COMPACT_BELOW * len(fit.index):
            fit.compact()
    return fit.result()


def fit_configurations(x: torch.Tensor, y: torch.Tensor, specs: list, settings: list[dict[str, Any]],
                       num_classes: int, stopping: Stopping | None = None, path: str = "auto") -> GroupResult:
    """fit_group for models given as LitFNN-named settings (models/hparams.py), one dict per model.

    The group's shared values come from the first; widths and batch sizes are per model.
    """
    first = settings[0]
    shared = {k: first[k] for k in hparams.names(hparams.SHARED) if k in first}
    return fit_group(x, y, specs, [list(s["hidden_sizes"]) for s in settings], num_classes, stopping=stopping,
                     path=path, batch_size=[int(s["batch_size"]) for s in settings], **shared)


def choose_path(arch: hparams.Architecture, path: str = "auto") -> str:
    """"fast" when every layer of `arch` has a hand-written kernel (or when asked and possible), else "generic"."""
    check_choice("batched path", path, ("auto", "fast", "generic"))
    if path == "fast" and not fast_path(arch):
        raise ConfigError(f"the batched fast path has no kernel for this architecture (norm={arch.norm!r}, "
                          f"residual={arch.residual}, activation={arch.activation!r}, net={arch.net}); "
                          "use path auto or generic")
    return ("fast" if fast_path(arch) else "generic") if path == "auto" else path


def _build(arch: hparams.Architecture, input_dim: int, out_dim: int, seed: int | None) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):  # the caller's global generator is left as it was
        if seed is not None:
            torch.manual_seed(seed)  # each model starts as a separate network of its own sizes would
        return build_network(arch, input_dim, out_dim)


@dataclass
class GroupPlan:
    """What a group's models share or list one by one, besides their ModelSpecs."""

    archs: list[hparams.Architecture]  # one per model: its widths and dropout, the shared rest
    optimization: hparams.Optimization  # the shared fields (loss, optimizer, scheduler); per-model values in specs
    num_classes: int  # 0 for regression
    batch_sizes: list[int]
    max_epochs: int
    path: str = "auto"


class _GroupFit:
    """The state of one group's training: the stacked net, its optimizer, the members, scores and schedules."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, specs: list, plan: GroupPlan, stopping: Stopping) -> None:
        archs, optimization, num_classes = plan.archs, plan.optimization, plan.num_classes
        batch_sizes, max_epochs, path = plan.batch_sizes, plan.max_epochs, plan.path
        device = x.device
        m = len(specs)
        out_dim = output_dim("classification" if num_classes else "regression", num_classes)
        self.path = choose_path(archs[0], path)
        modules = [_build(arch, spec.input_dim or x.shape[-1], out_dim, spec.seed)
                   for spec, arch in zip(specs, archs, strict=True)]
        arch = archs[0]
        if self.path == "fast":
            dropout = torch.tensor([float(s.dropout) for s in specs])
            self.net = BatchedMLP.from_modules(modules, arch.activation, arch.leaky_relu_alpha, dropout,
                                               x.shape[-1]).to(device)
        else:
            widest = max(archs, key=lambda a: a.dropout)  # its dropout sites exist in the template
            self.net = StackedModules(modules, _build(widest, x.shape[-1], out_dim, None)).to(device)
        self.opt = BatchedOptimizer(optimization.optimizer, self.net, specs)
        self.micro = min(batch_sizes)
        if any(b % self.micro for b in batch_sizes):
            raise ValueError(f"batch sizes {sorted(set(batch_sizes))} must be multiples of the smallest, {self.micro}")
        self.skip_single = has_batch_norm(modules[0])  # as LitFNN: BatchNorm cannot train on one row
        if self.skip_single and len(set(batch_sizes)) > 1:
            raise ValueError(f"batch sizes {sorted(set(batch_sizes))} cannot share a group with BatchNorm: its "
                             "statistics are those of each forward, not of a batch summed over steps")
        self.members = Members(specs, x, y, batch_sizes, self.micro, self.skip_single)
        self.loss = LOSSES[optimization.loss_for("classification" if num_classes else "regression")]
        self.num_classes = num_classes
        self.scores = Scores.start(m, device, stopping.min_delta)
        self.active = np.ones(m, dtype=bool)  # scores.active on the host: which models step (no sync per step)
        self.index = np.arange(m)  # the original model of each row of the stack
        self.final: dict[str, list] = {k: [0] * m for k in ("best_loss", "best_acc", "best_epoch", "epochs_run",
                                                             "diverged")}
        self.history: list[list[dict[str, float]]] = [[] for _ in range(m)]
        self.states: list[dict[str, torch.Tensor]] = [{} for _ in range(m)]
        self.best = _BestStates(self.net) if stopping.keep_best else None
        self.schedules = Schedules(optimization.scheduler, optimization.scheduler_kwargs, max_epochs, self.opt.lr)
        self.net.seed_dropout([spec.seed for spec in specs])
        self.x_rows, self.y_rows = x.reshape(-1, x.shape[-1]), y.repeat(x.shape[0])  # row r of fold f: f * n + r
        self.x_epoch = self.y_epoch = None

    def _gather(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's (M, most rows) order and validity; its rows gathered once when they fit in memory."""
        order = padded(_epoch_order(self.members.specs, epoch), self.x_rows.device)  # -1 past a model's rows
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
            logits = net(xb, train=True, rows=rows, row_mask=row_weight[..., 0] > 0)  # (M, B, outputs)
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
        if self.best is not None:
            self.best.update(self.net, improved)
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
        for row in np.flatnonzero(rows).tolist():
            self.states[self.index[row]] = (self.net.state_dict(row) if self.best is None
                                            else self.best.state_dict(self.net, row))

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
        if self.best is not None:
            self.best.keep(keep)
        self.index, self.active = self.index[self.active], self.active[self.active]

    def result(self) -> GroupResult:
        if len(self.index):
            self._record(np.ones(len(self.index), dtype=bool))
        final = self.final
        return GroupResult(final["best_loss"], final["best_acc"], final["best_epoch"], final["epochs_run"],
                           self.history, self.states, final["diverged"])


class _BestStates:
    """Each model's parameters (and buffers, such as BatchNorm's running statistics) at its best epoch."""

    def __init__(self, net: Any) -> None:
        self.flat = net.flat.detach().clone()
        self.buffers = {k: v.clone() for k, v in getattr(net, "buffers", {}).items()}

    def update(self, net: Any, improved: torch.Tensor) -> None:
        self.flat[improved] = net.flat.detach()[improved]
        for k, v in self.buffers.items():
            v[improved] = net.buffers[k][improved]

    def keep(self, rows: torch.Tensor) -> None:
        self.flat = self.flat[rows]
        self.buffers = {k: v[rows] for k, v in self.buffers.items()}

    def state_dict(self, net: Any, row: int) -> dict[str, torch.Tensor]:
        state = net.state_dict(row, self.flat)
        state.update({k: v[row].clone() for k, v in self.buffers.items() if k in state})
        return state


def _validate(net: Any, members: Members, loss: Loss, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
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
