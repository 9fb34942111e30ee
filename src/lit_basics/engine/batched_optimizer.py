"""The optimizer step of the batched engine: LitFNN's penalties, clipping and optimizer, for M models at once."""

import numpy as np
import torch

from lit_basics.engine.batched import BatchedMLP
from lit_basics.engine.kernels import UpdateRows, optimizer_update
from lit_basics.models.optimizers import get_optimizer


class BatchedOptimizer:
    """An optimizer of models/optimizers.py over the (M, P) parameters, each hyperparameter one value per model.

    What LitFNN does around torch.optim's step happens here around the optimizer's batched update,
    in LitFNN's order: L1's subgradient is part of the loss's gradient, the gradient norm is clipped
    (`clip` > 0), then L2 enters the gradient of weight matrices only (parameter groups), or shrinks
    them directly for an optimizer with decoupled weight decay (AdamW). The update itself runs once
    per distinct (learning rate, hyperparameters) on the rows of the models that step. Models that
    do not step (stopped early, or summing a larger batch) keep their parameters, state and counts.
    """

    def __init__(self, name: str, model: BatchedMLP, specs: list) -> None:
        """`specs`: one ModelSpec per row of the stack, for its lr, weight_decay, momentum, l1,
        optimizer_kwargs and gradient_clip_val (models/hparams.py)."""
        self.declaration = get_optimizer(name)
        self.update = optimizer_update(name)
        self.model = model
        flat = model.flat

        def column(key: str) -> torch.Tensor:
            return torch.tensor([float(getattr(s, key)) for s in specs], dtype=flat.dtype, device=flat.device)

        lr, weight_decay, momentum, l1, clip = (column(k) for k in ("lr", "weight_decay", "momentum", "l1",
                                                                     "gradient_clip_val"))
        kwargs = [s.optimizer_kwargs or {} for s in specs]
        self.lr = lr.tolist()
        self.hp = [self.declaration.hyperparameters(mu, kw) for mu, kw in zip(momentum.tolist(), kwargs, strict=True)]
        self.decay = weight_decay.to(flat).view(-1, 1) * model.weight_mask if bool((weight_decay > 0).any()) else None
        self.l1 = l1.view(-1, 1) * model.weight_mask if bool((l1 > 0).any()) else None
        self.clip = clip if bool((clip > 0).any()) else None
        self.state = {key: torch.zeros_like(flat) for key in self.declaration.state}
        self.steps = torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
        self._index_rows()

    def _index_rows(self) -> None:
        """Per-model row views of every buffer, for the updates' tensor lists; plans start afresh."""
        self._plans: dict[bytes, tuple[list[UpdateRows], torch.Tensor]] = {}
        self._rows = {key: list(t.unbind(0)) for key, t in
                      (("p", self.model.flat), ("g", self.model.grad), ("s", self.steps), ("decay", self.decay),
                       ("l1", self.l1), *self.state.items()) if t is not None}
        flat = self.model.flat
        self._lr_column = torch.tensor(self.lr, dtype=flat.dtype, device=flat.device).view(-1, 1)

    def set_lr(self, lr: list[float]) -> None:
        """New learning rates, one per model in the stack (a scheduler's step)."""
        if lr != self.lr:
            self.lr = list(lr)
            self._index_rows()

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the state of models `rows` only; call after the model's own `keep`."""
        index = rows.tolist()
        self.lr, self.hp = [self.lr[i] for i in index], [self.hp[i] for i in index]
        self.decay = None if self.decay is None else self.decay[rows]
        self.l1 = None if self.l1 is None else self.l1[rows]
        self.clip = None if self.clip is None else self.clip[rows]
        self.state = {key: buffer[rows] for key, buffer in self.state.items()}
        self.steps = self.steps[rows]
        self._index_rows()

    def _plan(self, stepping: np.ndarray) -> tuple[list[UpdateRows], torch.Tensor]:
        """The updates of the stepping models, one per (lr, hyperparameters) over their row views, built once
        per pattern of `stepping` (a step reuses them: a few microseconds of Python each); `on`: 0/1 floats."""
        key = stepping.tobytes()
        if key not in self._plans:
            groups: dict[tuple[float, tuple], list[int]] = {}
            for i in np.flatnonzero(stepping).tolist():
                groups.setdefault((self.lr[i], tuple(self.hp[i].items())), []).append(i)
            if len(self._plans) > 256:
                self._plans.clear()
            rows = self._rows
            updates = [UpdateRows(params=[rows["p"][i] for i in idx], grads=[rows["g"][i] for i in idx],
                                  state={key: [rows[key][i] for i in idx] for key in self.state},
                                  steps=[rows["s"][i] for i in idx], lr=lr, hp=dict(hp))
                       for (lr, hp), idx in groups.items()]
            on = torch.as_tensor(stepping, device=self.steps.device).to(self.steps.dtype)
            self._plans[key] = (updates, on)
        return self._plans[key]

    def step(self, stepping: np.ndarray | torch.Tensor) -> None:
        """One update from `model.grad` for the models where `stepping` (bool per model) is true."""
        stepping = np.asarray(stepping.cpu() if isinstance(stepping, torch.Tensor) else stepping, dtype=bool)
        updates, on = self._plan(stepping)
        if not updates:  # no model steps
            return
        g, flat = self.model.grad, self.model.flat
        if self.model.param_mask is not None:
            g.mul_(self.model.param_mask)  # padding stays zero (a sigmoid's padded units have outputs)
        if self.l1 is not None:
            self._add_to_grad(flat.sign(), "l1", stepping)
        if self.clip is not None:
            self._clip(on)
        if self.decay is not None and self.declaration.decoupled_weight_decay:
            flat.mul_(1.0 - self._lr_column * self.decay * on.view(-1, 1))
        elif self.decay is not None:
            self._add_to_grad(flat, "decay", stepping)
        self.steps.add_(on)
        for update in updates:
            self.update(update)

    def _add_to_grad(self, values: torch.Tensor, coefficient: str, stepping: np.ndarray) -> None:
        """grad += values * the per-model coefficient rows, for the models that step (the others may be summing)."""
        if stepping.all():
            self.model.grad.addcmul_(values, getattr(self, coefficient))
            return
        index = np.flatnonzero(stepping).tolist()
        rows = self._rows
        torch._foreach_addcmul_([rows["g"][i] for i in index], [values[i] for i in index],
                                [rows[coefficient][i] for i in index])

    def _clip(self, on: torch.Tensor) -> None:
        """Scale each stepping model's gradient to norm <= its clip value, as torch's clip_grad_norm_."""
        g = self.model.grad
        factor = (self.clip / (torch.linalg.vector_norm(g, dim=1) + 1e-6)).clamp_(max=1.0)
        g.mul_(torch.where((self.clip > 0) & (on > 0), factor, 1.0).view(-1, 1))
