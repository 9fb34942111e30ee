"""The generic path's layer forms: stacked ones that run M models at once on (M, batch, features) tensors,
and per-model ones that vmap runs on one model's (batch, features).

A network made only of the containers and layers below (the built-in FNN with any norm, residual blocks and
activation; nn.Sequential of such layers) runs its own forward code on stacked inputs once each layer is
swapped for its stacked form here: a Linear becomes a batched matmul over (M, in, out) weights, a norm
normalises each model's rows, dropout multiplies by each model's masks. Autograd then differentiates the
stacked program (about half the time of vmap's per-op dispatch for networks this small). A module with any
other layer or forward code goes through vmap instead (engine/generic.py), which is correct for any forward.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lit_basics.errors import ConfigError
from lit_basics.models.activations import ACTIVATIONS
from lit_basics.models.fnn import FNN, HiddenBlock

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus,
               nn.Mish, nn.Hardtanh, nn.ReLU6, nn.Softsign, nn.Tanhshrink, nn.Hardswish, nn.Hardsigmoid,
               nn.LogSigmoid, nn.Identity)
CONTAINERS = (FNN, HiddenBlock, nn.Sequential)  # their forward code only chains layers and adds: shape-agnostic


def _activation_classes() -> tuple[type, ...]:
    return tuple({type(a.module(0.01)) for a in ACTIVATIONS.values()})


def leading_dim_safe(module: nn.Module) -> bool:
    """Whether every module of `module` is a known container or a layer with a stacked form here."""
    leaves = (nn.Linear, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout, *ELEMENTWISE, *_activation_classes())
    return all(type(m) in CONTAINERS or type(m) in leaves for m in module.modules())


class StackedLinear(nn.Module):
    """x (M, B, in) -> (M, B, out) with each model's weight (M, out, in) and bias (M, out)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.transpose(1, 2)
        return torch.bmm(x, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), x, w)


class StackedLayerNorm(nn.Module):
    def __init__(self, source: nn.LayerNorm) -> None:
        super().__init__()
        self.shape, self.eps = source.normalized_shape, source.eps
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x, self.shape, eps=self.eps)
        if self.weight is not None:
            out = out * self.weight.unsqueeze(1)
        return out if self.bias is None else out + self.bias.unsqueeze(1)


def masked_batch_norm(norm: nn.Module, x: torch.Tensor, rows: int) -> torch.Tensor:
    """BatchNorm1d over the rows where `norm.row_mask` is 1 (dimension `rows` of x: 1 for the stacked form, 0 for
    one model inside vmap), running statistics updated in place, eval mode from them; both forms use it."""
    if norm.training:
        mask = norm.row_mask.unsqueeze(-1)  # (..., B, 1): 0 on padding rows
        n = mask.sum(rows)
        mean = (x * mask).sum(rows) / n.clamp(min=1)
        var = (((x - mean.unsqueeze(rows)) ** 2) * mask).sum(rows) / n.clamp(min=1)  # biased, as BatchNorm normalises
        with torch.no_grad():
            keep = (n > 1).to(x.dtype) * norm.momentum  # a batch of one row leaves the statistics alone
            unbiased = var * n / (n - 1).clamp(min=1)
            norm.running_mean.mul_(1 - keep).add_(keep * mean.detach())
            norm.running_var.mul_(1 - keep).add_(keep * unbiased.detach())
            norm.num_batches_tracked.add_((n.squeeze(-1) > 1).to(norm.num_batches_tracked.dtype))
    else:
        mean, var = norm.running_mean, norm.running_var
    out = (x - mean.unsqueeze(rows)) * torch.rsqrt(var.unsqueeze(rows) + norm.eps)
    return out if norm.weight is None else out * norm.weight.unsqueeze(rows) + norm.bias.unsqueeze(rows)


class StackedBatchNorm(nn.Module):
    """BatchNorm1d per model over its real rows (`row_mask` (M, B)); running statistics (M, F) updated in place."""

    def __init__(self, source: nn.BatchNorm1d) -> None:
        super().__init__()
        self.eps, self.momentum = source.eps, source.momentum
        self.weight = self.bias = self.running_mean = self.running_var = self.num_batches_tracked = None
        self.row_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_batch_norm(self, x, 1)  # x (M, B, F), row_mask (M, B)


class StackedDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale: torch.Tensor | None = None  # (M, B, width) factors, set before each training forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale if self.training else x


def stacked_copy(module: nn.Module) -> tuple[nn.Module, dict[str, nn.Module]]:
    """A copy of `module` (on the meta device) with each layer swapped for its stacked form; the stacked layers
    by path, so that the caller can give them their (M, ...) tensors."""
    copy_ = copy.deepcopy(module).to("meta")
    layers: dict[str, nn.Module] = {}
    for path, child in list(copy_.named_modules()):
        if isinstance(child, nn.Linear):
            new: nn.Module = StackedLinear()
        elif isinstance(child, nn.BatchNorm1d):
            new = StackedBatchNorm(child)
        elif isinstance(child, nn.LayerNorm):
            new = StackedLayerNorm(child)
        elif isinstance(child, nn.Dropout):
            new = StackedDropout()
        else:
            continue
        parent, _, name = path.rpartition(".")
        setattr(copy_.get_submodule(parent) if parent else copy_, name, new)
        layers[path] = new
    return copy_, layers


class _MaskedDropout(nn.Module):
    """Inverted dropout whose factors are given per call (`scale`, (batch, width) for one model)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale if self.training else x


class _MaskedBatchNorm(nn.Module):
    """BatchNorm1d over the rows where `row_mask` (batch,) is 1, with its running statistics as buffers."""

    def __init__(self, source: nn.BatchNorm1d) -> None:
        super().__init__()
        self.eps, self.momentum = source.eps, source.momentum
        self.weight = self.bias = None
        if source.affine:
            self.weight, self.bias = nn.Parameter(source.weight.detach()), nn.Parameter(source.bias.detach())
        self.register_buffer("running_mean", source.running_mean.detach().clone())
        self.register_buffer("running_var", source.running_var.detach().clone())
        self.register_buffer("num_batches_tracked", source.num_batches_tracked.detach().clone())
        self.register_buffer("row_mask", torch.ones(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_batch_norm(self, x, 0)  # x (B, F) and row_mask (B,) of one model, inside vmap


def per_model_template(module: nn.Module) -> tuple[nn.Module, list[str], list[str]]:
    """For vmap: a copy of `module` with dropout and BatchNorm in the forms that read one model's tensors;
    the paths of its dropout and norm sites."""
    template = copy.deepcopy(module)
    dropouts, norms = [], []
    for name, child in list(template.named_modules()):
        if isinstance(child, nn.Dropout):
            _replace(template, name, _MaskedDropout())
            dropouts.append(name)
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            if not isinstance(child, nn.BatchNorm1d) or not isinstance(child.momentum, float) \
                    or not child.track_running_stats:
                raise ConfigError(f"the batched engine cannot train {type(child).__name__} {name!r} (only "
                                  "BatchNorm1d with running statistics and a float momentum); use --engine lightning")
            _replace(template, name, _MaskedBatchNorm(child))
            norms.append(name)
        elif isinstance(child, nn.modules.dropout._DropoutNd):
            raise ConfigError(f"the batched engine cannot train {type(child).__name__} {name!r}; "
                              "use nn.Dropout or --engine lightning")
    return template, dropouts, norms


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)
