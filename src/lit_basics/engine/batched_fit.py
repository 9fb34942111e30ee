"""The training loop of a batched group: epochs, per-model batch order, validation, early stopping."""

import math

import numpy as np
import torch

from lit_basics.data.batching import epoch_permutation
from lit_basics.engine.batched import BatchedMLP, BatchedOptimizer, GroupResult, ModelSpec
from lit_basics.engine.batched_loss import loss_values, loss_with_grad
from lit_basics.models.fnn import FNN
from lit_basics.models.losses import output_dim, predict

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
    init: str = "pytorch",
) -> GroupResult:
    """Train len(specs) networks together; x is (folds, rows, features): one standardised copy per fold.

    `hidden_sizes` is one list for all models or one per model (same depth; narrower ones are padded).
    `batch_size` is one for all or one per model, each a multiple of the smallest: the group steps
    through the data in batches of the smallest size, and a model with a k times larger batch sums
    its gradient over k of them before it steps (the same gradient as one batch of its size).
    Early stopping per model on its validation loss (stop after `patience` epochs without a strict
    improvement, as Lightning's EarlyStopping); a stopped model is frozen while the others go on, and
    the stopped models leave the stack once they are a quarter of it (COMPACT_BELOW).
    """
    device = x.device
    m = len(specs)
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
    batch_sizes = list(batch_size) if isinstance(batch_size, list | tuple) else [batch_size] * m
    micro = min(batch_sizes)
    if any(b % micro for b in batch_sizes):
        raise ValueError(f"batch sizes {sorted(set(batch_sizes))} must be multiples of the smallest, {micro}")
    members = _Members(specs, x, y, batch_sizes, micro)
    track = {"active": torch.ones(m, dtype=torch.bool, device=device),
             "best_loss": torch.full((m,), math.inf, device=device), "best_acc": torch.zeros(m, device=device),
             "best_epoch": torch.zeros(m, dtype=torch.long, device=device),
             "waited": torch.zeros(m, dtype=torch.long, device=device),
             "epochs_run": torch.zeros(m, dtype=torch.long, device=device)}
    active_host = np.ones(m, dtype=bool)  # track["active"] on the host: which models step (no sync per step)
    index = np.arange(m)  # the original model of each row of the stack
    final: dict[str, list] = {k: [0] * m for k in ("best_loss", "best_acc", "best_epoch", "epochs_run")}
    history: list[list[dict[str, float]]] = [[] for _ in range(m)]
    generator = torch.Generator(device=device).manual_seed(specs[0].seed)
    x_rows, y_rows = x.reshape(-1, x.shape[-1]), y.repeat(x.shape[0])  # row r of fold f: f * n + r
    x_epoch = y_epoch = None
    for epoch in range(max_epochs):
        order = _padded(_epoch_order(members.specs, epoch), device)  # (M, most rows), -1 past a model's rows
        valid = order >= 0
        order = torch.where(valid, order, 0) + members.offset
        # this epoch's rows in order, gathered once: each step then reads a slice (when it fits in memory)
        flat_order = order.view(-1)
        if y_epoch is None or y_epoch.shape != order.shape:  # buffers reused: a fresh one costs page faults
            gather = order.numel() * x.shape[-1] <= EPOCH_GATHER_LIMIT
            x_epoch = x_rows.new_empty((*order.shape, x.shape[-1])) if gather else None
            y_epoch = y_rows.new_empty(order.shape)
        if x_epoch is not None:
            torch.index_select(x_rows, 0, flat_order, out=x_epoch.view(-1, x.shape[-1]))
        torch.index_select(y_rows, 0, flat_order, out=y_epoch.view(-1))
        per_sample_losses = []  # (M, B) per step; the epoch's training loss is their mean over valid rows
        carried = False  # whether some model carries a partial gradient into this step
        stepping = members.steps_at & active_host  # (steps, M)
        batches = zip(x_epoch.split(micro, 1) if x_epoch is not None else order.split(micro, 1),
                      y_epoch.split(micro, 1), members.row_weight, strict=True)
        for step, (xb, yb, row_weight) in enumerate(batches):
            if x_epoch is None:
                xb = x_rows[xb]  # this step's rows (order's slice), gathered now
            logits = net(xb, train=True, generator=generator)  # (M, B, outputs)
            per_sample, d_logits = loss_with_grad(loss, logits, yb, num_classes)  # per sample
            net.backward(d_logits.mul_(row_weight), accumulate=carried)
            per_sample_losses.append(per_sample)
            opt.step(stepping[step])
            carried = members.carries[step]
            if carried:  # the models that stepped start their next batch from zero
                net.zero_grad(np.flatnonzero(members.steps_at[step]))
        epoch_losses = torch.cat(per_sample_losses, 1)
        train_loss = (epoch_losses * valid).sum(1) / valid.sum(1).clamp(min=1)
        val_loss, val_acc = _validate(net, members, loss, num_classes)
        _track_epoch(track, val_loss, val_acc, epoch)
        rows = zip(index.tolist(), track["active"].tolist(), train_loss.tolist(), val_loss.tolist(),
                   val_acc.tolist(), strict=True)
        for i, was_active, train_value, loss_value, acc_value in rows:  # one host sync per epoch
            if was_active:
                history[i].append({"epoch": float(epoch), "train/loss": train_value, "val/loss": loss_value,
                                   "val/acc": acc_value})
        if patience is not None:
            track["active"] &= track["waited"] < patience
            active_host = track["active"].cpu().numpy().copy()
        if active_host.sum() > COMPACT_BELOW * len(index):
            continue
        _record(final, track, index, ~active_host)  # stopped models leave the stack with their results
        if not active_host.any():
            break
        keep = torch.as_tensor(np.flatnonzero(active_host), device=device)
        net.keep(keep)
        opt.keep(keep)
        members = members.keep(keep)
        track = {k: v[keep] for k, v in track.items()}
        index, active_host = index[active_host], active_host[active_host]
    _record(final, track, index, np.ones(len(index), dtype=bool))
    return GroupResult(final["best_loss"], final["best_acc"], final["best_epoch"], final["epochs_run"], history)


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
        val_rows = _padded([s.val_rows for s in specs], device)
        self.val_mask = (val_rows >= 0).to(x.dtype)
        self.x_val, self.y_val = x[folds[:, None], val_rows.clamp(min=0)], y[val_rows.clamp(min=0)]

    def keep(self, rows: torch.Tensor) -> "_Members":
        index = rows.tolist()
        return _Members([self.specs[i] for i in index], self.x, self.y, [self.batch_sizes[i] for i in index],
                        self.micro)


def _validate(net: BatchedMLP, members: _Members, loss: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) validation loss and accuracy (0 for regression) of every model in the stack."""
    logits = net(members.x_val)
    per_sample = loss_values(loss, logits, members.y_val, num_classes)
    if num_classes:
        correct = (predict(logits, "classification", num_classes) == members.y_val).to(logits.dtype)
    else:  # regression: no accuracy
        correct = torch.zeros_like(members.val_mask)
    return _masked_mean(per_sample, members.val_mask), _masked_mean(correct, members.val_mask)


def _track_epoch(track: dict[str, torch.Tensor], val_loss: torch.Tensor, val_acc: torch.Tensor, epoch: int) -> None:
    """Best values, best epoch and epochs without improvement, for the models that trained this epoch."""
    active = track["active"]
    track["epochs_run"] += active
    improved = active & (val_loss < track["best_loss"])
    track["best_loss"] = torch.where(improved, val_loss, track["best_loss"])
    track["best_epoch"] = torch.where(improved, torch.full_like(track["best_epoch"], epoch + 1), track["best_epoch"])
    track["best_acc"] = torch.where(active, torch.maximum(track["best_acc"], val_acc), track["best_acc"])
    track["waited"] = torch.where(improved, torch.zeros_like(track["waited"]), track["waited"] + active.long())


def _record(final: dict[str, list], track: dict[str, torch.Tensor], index: np.ndarray, rows: np.ndarray) -> None:
    """Copy the results of stack rows `rows` (a mask) to their original models' places."""
    for key, values in final.items():
        picked = track[key][torch.as_tensor(rows, device=track[key].device)]
        for i, value in zip(index[rows].tolist(), picked.tolist(), strict=True):
            values[i] = value
