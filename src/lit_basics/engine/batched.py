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
    """M stacked MLPs `[input_dim, *hidden_sizes, output_dim]` whose parameters live in one (M, P) tensor.

    Weights are views (M, in, out) and biases (M, 1, out) of that tensor, so autograd yields one
    gradient and an optimizer step is a handful of operations whatever the depth.
    """

    def __init__(self, flat: torch.Tensor, sizes: list[int], activation: str, alpha: float,
                 dropout: torch.Tensor) -> None:
        self.flat = flat.detach().clone().requires_grad_(True)  # (M, P)
        self.sizes = sizes
        self.activation = make_activation(activation, alpha=alpha)
        self.dropout = dropout  # (M,) drop probability per model
        self.layout: list[tuple[int, int, int]] = []  # (offset, fan_in, fan_out) per layer
        offset = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.layout.append((offset, fan_in, fan_out))
            offset += fan_in * fan_out + fan_out
        self.param_mask = torch.ones_like(self.flat[:1])  # set per model by from_modules when padded
        self.weight_mask = torch.zeros(1, offset, dtype=flat.dtype, device=flat.device)
        for start, fan_in, fan_out in self.layout:
            self.weight_mask[:, start : start + fan_in * fan_out] = 1.0  # where L2 and L1 apply

    @classmethod
    def from_modules(cls, modules: list[FNN], activation: str, alpha: float = 0.01,
                     dropout: torch.Tensor | None = None) -> "BatchedMLP":
        """Stack M FNNs of one depth; narrower layers are zero-padded to the widest and stay zero.

        A padded unit has no incoming or outgoing weights, so it changes nothing: models of several
        widths train as one group (fewer, larger groups are what makes batching pay).
        """
        layers = [[m for m in module.net if isinstance(m, torch.nn.Linear)] for module in modules]
        sizes = [max(ls[0].in_features for ls in layers)]
        sizes += [max(ls[i].out_features for ls in layers) for i in range(len(layers[0]))]
        rows, masks = [], []
        for linears in layers:
            values, mask = [], []
            for layer, fan_in, fan_out in zip(linears, sizes[:-1], sizes[1:], strict=True):
                w, w_mask = torch.zeros(fan_in, fan_out), torch.zeros(fan_in, fan_out)
                w[: layer.in_features, : layer.out_features] = layer.weight.detach().T
                w_mask[: layer.in_features, : layer.out_features] = 1.0
                b, b_mask = torch.zeros(fan_out), torch.zeros(fan_out)
                b[: layer.out_features] = layer.bias.detach()
                b_mask[: layer.out_features] = 1.0
                values += [w.flatten(), b]
                mask += [w_mask.flatten(), b_mask]
            rows.append(torch.cat(values))
            masks.append(torch.cat(mask))
        dropout = torch.zeros(len(modules)) if dropout is None else dropout
        net = cls(torch.stack(rows), sizes, activation, alpha, dropout)
        net.param_mask = torch.stack(masks)  # (M, P): 1 on each model's own parameters
        return net

    def to(self, device: torch.device) -> "BatchedMLP":
        self.flat = self.flat.detach().to(device).requires_grad_(True)
        self.weight_mask, self.dropout = self.weight_mask.to(device), self.dropout.to(device)
        self.param_mask = self.param_mask.to(device)
        return self

    @property
    def weights(self) -> list[torch.Tensor]:
        m = self.flat.shape[0]
        return [self.flat[:, s : s + i * o].view(m, i, o) for s, i, o in self.layout]

    @property
    def biases(self) -> list[torch.Tensor]:
        m = self.flat.shape[0]
        return [self.flat[:, s + i * o : s + i * o + o].view(m, 1, o) for s, i, o in self.layout]

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [self.flat]

    def __call__(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        # x: (M, batch, input_dim) -> (M, batch, output_dim) logits
        last = len(self.layout) - 1
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


class BatchedOptimizer:
    """sgd, momentum, rmsprop or adam over the (M, P) parameters, each hyperparameter one value per model.

    The updates follow torch.optim's (default arguments, L2 added to the gradient of weight
    matrices only, as LitFNN's parameter groups do); `active` freezes models that stopped early
    or had no rows in a step, including their step counts.
    """

    def __init__(self, name: str, model: BatchedMLP, lr: torch.Tensor, weight_decay: torch.Tensor,
                 momentum: torch.Tensor) -> None:
        check_choice("batched optimizer", name, OPTIMIZERS)
        self.name, self.model = name, model
        self.lr, self.mu = lr.view(-1, 1), momentum.view(-1, 1)
        self.decay = weight_decay.view(-1, 1) * model.weight_mask  # (M, P): zero on biases
        self.m = torch.zeros_like(model.flat)
        self.v = torch.zeros_like(model.flat)
        self.steps = torch.zeros_like(self.lr)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        on = active.view(-1, 1).to(self.lr.dtype)
        self.steps += on
        g = (grads[0] + self.decay * self.model.flat) * self.model.param_mask  # padding gets no update
        self.model.flat.sub_(on * self._update(g, on))

    def _update(self, g: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        if self.name == "sgd":
            return self.lr * g
        if self.name == "momentum":  # torch: buf = g at the first step, then mu * buf + g
            first = (self.steps == 1).to(g.dtype)
            self.m += on * (first * g + (1 - first) * (self.mu * self.m + g) - self.m)
            return self.lr * self.m
        if self.name == "rmsprop":
            self.v += on * (1 - RMSPROP_ALPHA) * (g * g - self.v)
            return self.lr * g / (self.v.sqrt() + RMSPROP_EPS)
        beta1, beta2 = ADAM_BETAS
        self.m += on * (1 - beta1) * (g - self.m)
        self.v += on * (1 - beta2) * (g * g - self.v)
        t = self.steps.clamp(min=1)
        step_size = self.lr / (1 - beta1**t)
        denom = self.v.sqrt() / (1 - beta2**t).sqrt() + ADAM_EPS
        return step_size * self.m / denom
