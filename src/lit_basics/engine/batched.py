"""Train M feedforward networks of one architecture at once: stacked weights, batched matmuls.

Each model has its own training and validation rows (its fold), data order, seed, learning rate,
weight decay, L1, dropout, momentum and optimizer hyperparameters; the optimizers are written as
small functional updates over the stacked tensors (torch.optim takes one learning rate per group).
A k-fold search spends most of its time in Python overhead per step of tiny networks; here one
step advances every model, so that overhead is shared M ways.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lit_basics.errors import check_choice
from lit_basics.models.activations import make_activation
from lit_basics.models.fnn import FNN

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
# torch.optim's defaults, which LitFNN uses too
ADAM_BETAS, ADAM_EPS, RMSPROP_ALPHA, RMSPROP_EPS = (0.9, 0.999), 1e-8, 0.99, 1e-8


@dataclass
class ModelSpec:
    """One network of a batched group: its hyperparameters, fold rows and seed."""

    train_rows: torch.Tensor  # (n_train,) row indices into the group's data
    val_rows: torch.Tensor  # (n_val,)
    fold: int = 0  # which standardised copy of the data this model reads
    lr: float = 1e-3
    weight_decay: float = 0.0
    l1: float = 0.0
    dropout: float = 0.0
    momentum: float = 0.9
    seed: int = 0


@dataclass
class GroupResult:
    """Per-model outcome: the score a fold reports, and the history per epoch."""

    best_val_loss: list[float]
    best_val_acc: list[float]
    best_epoch: list[int]
    epochs: list[int]
    history: list[list[dict[str, float]]] = field(default_factory=list)


class BatchedMLP:
    """M stacked MLPs `[input_dim, *hidden_sizes, output_dim]`; weights (M, in, out), biases (M, 1, out)."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], activation: str, alpha: float,
                 dropout: torch.Tensor) -> None:
        self.weights = [w.detach().clone().requires_grad_(True) for w in weights]
        self.biases = [b.detach().clone().requires_grad_(True) for b in biases]
        self.activation = make_activation(activation, alpha=alpha)
        self.dropout = dropout  # (M,) drop probability per model

    @classmethod
    def from_modules(cls, modules: list[FNN], activation: str, alpha: float = 0.01,
                     dropout: torch.Tensor | None = None) -> "BatchedMLP":
        """Stack the parameters of M FNNs (same sizes) into one batched network."""
        linears = [[m for m in module.net if isinstance(m, torch.nn.Linear)] for module in modules]
        weights = [torch.stack([layers[i].weight.T for layers in linears]) for i in range(len(linears[0]))]
        biases = [torch.stack([layers[i].bias.unsqueeze(0) for layers in linears]) for i in range(len(linears[0]))]
        dropout = torch.zeros(len(modules)) if dropout is None else dropout
        return cls(weights, biases, activation, alpha, dropout.to(weights[0].device))

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def __call__(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        # x: (M, batch, input_dim) -> (M, batch, output_dim) logits
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.activation(x)
                if train and bool((self.dropout > 0).any()):
                    keep = 1.0 - self.dropout.view(-1, 1, 1)
                    mask = torch.rand(x.shape, device=x.device, generator=generator) < keep
                    x = x * mask / keep
        return x


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


def predictions(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    return (logits.squeeze(-1) > 0).long() if num_classes == 2 else logits.argmax(-1)


class BatchedOptimizer:
    """sgd, momentum, rmsprop or adam over stacked parameters, each hyperparameter one value per model.

    The updates follow torch.optim's (default arguments, L2 added to the gradient of weight
    matrices only, as LitFNN's parameter groups do); `active` freezes models that stopped early
    or had no rows in a step, including their step counts.
    """

    def __init__(self, name: str, model: BatchedMLP, lr: torch.Tensor, weight_decay: torch.Tensor,
                 momentum: torch.Tensor) -> None:
        check_choice("batched optimizer", name, OPTIMIZERS)
        self.name, self.model = name, model
        shape = (-1, 1, 1)
        self.lr, self.wd, self.mu = lr.view(shape), weight_decay.view(shape), momentum.view(shape)
        params = model.parameters
        self.state = [{"m": torch.zeros_like(p), "v": torch.zeros_like(p)} for p in params]
        self.steps = torch.zeros(len(lr), device=lr.device).view(shape)
        self.decay = [p.ndim == 3 and i % 2 == 0 for i, p in enumerate(params)]  # weights, not biases

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        on = active.view(-1, 1, 1).to(self.lr.dtype)
        self.steps += on
        for p, g, state, decay in zip(self.model.parameters, grads, self.state, self.decay, strict=True):
            if decay:
                g = g + self.wd * p
            p.sub_(on * self._update(g, state, on))

    def _update(self, g: torch.Tensor, state: dict, on: torch.Tensor) -> torch.Tensor:
        if self.name == "sgd":
            return self.lr * g
        if self.name == "momentum":  # torch: buf = g at the first step, then mu * buf + g
            first = (self.steps == 1).to(g.dtype)
            new = first * g + (1 - first) * (self.mu * state["m"] + g)
            state["m"] = torch.where(on.bool(), new, state["m"])
            return self.lr * state["m"]
        if self.name == "rmsprop":
            sq = RMSPROP_ALPHA * state["v"] + (1 - RMSPROP_ALPHA) * g * g
            state["v"] = torch.where(on.bool(), sq, state["v"])
            return self.lr * g / (state["v"].sqrt() + RMSPROP_EPS)
        beta1, beta2 = ADAM_BETAS
        state["m"] = torch.where(on.bool(), beta1 * state["m"] + (1 - beta1) * g, state["m"])
        state["v"] = torch.where(on.bool(), beta2 * state["v"] + (1 - beta2) * g * g, state["v"])
        t = self.steps.clamp(min=1)
        correction1, correction2 = 1 - beta1**t, 1 - beta2**t
        denom = state["v"].sqrt() / correction2.sqrt() + ADAM_EPS
        return self.lr / correction1 * state["m"] / denom
