"""The feedforward network, sized by [input_dim, *hidden_sizes, output_dim], and the one place that builds a
network from an `Architecture`: the built-in FNN or an injected nn.Module (`model.net`)."""

import importlib
import inspect
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from lit_basics.errors import ConfigError
from lit_basics.models.activations import make_activation
from lit_basics.models.hparams import NORMS, Architecture


def _glorot(layer: nn.Linear, activation: str) -> None:
    # scikit-learn's MLP initialisation: the bound's numerator is 2 for sigmoid, 6 otherwise
    bound = math.sqrt((2.0 if activation == "sigmoid" else 6.0) / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -bound, bound)
    if layer.bias is not None:
        nn.init.uniform_(layer.bias, -bound, bound)


def _he(layer: nn.Linear, activation: str) -> None:
    nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


@dataclass(frozen=True)
class Init:
    """A way to draw a layer's starting weights; both engines start from an FNN built with it."""

    name: str
    description: str
    apply: Callable[[nn.Linear, str], None]  # (layer, activation name), in place


INITS: dict[str, Init] = {i.name: i for i in (
    Init("pytorch", "nn.Linear's own U(+-1/sqrt(fan_in)) for weights and biases", lambda layer, activation: None),
    Init("glorot", "U(+-sqrt(6 / (fan_in + fan_out))), 2 instead of 6 for sigmoid: scikit-learn's MLP", _glorot),
    Init("he", "weights U(+-sqrt(6 / fan_in)) (Kaiming, made for ReLU), biases zero", _he),
)}

NORM_LAYERS: dict[str, Callable[[int], nn.Module] | None] = {
    "none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
assert set(NORM_LAYERS) == set(NORMS)


class HiddenBlock(nn.Module):
    """Linear (no bias before BatchNorm) -> norm -> activation -> dropout; with `residual`, plus a skip
    (identity, or a bias-free projection where the widths differ). Absent parts are None, not Identity
    modules: each module call costs microseconds, a measurable share of a small network's step."""

    def __init__(self, fan_in: int, fan_out: int, arch: Architecture) -> None:
        super().__init__()
        # a bias before BatchNorm is removed by its mean: without a gradient, Adam would move it by noise
        self.linear = nn.Linear(fan_in, fan_out, bias=arch.norm != "batch")
        norm = NORM_LAYERS[arch.norm]
        self.norm = norm(fan_out) if norm is not None else None
        self.activation = make_activation(arch.activation, alpha=arch.leaky_relu_alpha)
        self.dropout = nn.Dropout(arch.dropout) if arch.dropout > 0 else None
        self.skip = None
        if arch.residual:
            self.skip = nn.Identity() if fan_in == fan_out else nn.Linear(fan_in, fan_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, fan_in) -> (batch, fan_out)
        out = self.linear(x)
        if self.norm is not None:
            out = self.norm(out)
        out = self.activation(out)
        if self.dropout is not None:
            out = self.dropout(out)
        return out if self.skip is None else out + self.skip(x)


class FNN(nn.Module):
    """Hidden blocks (Linear -> norm -> activation -> dropout, optionally residual), then a linear layer of logits."""

    def __init__(
        self,
        input_dim: int,
        hidden_sizes: Sequence[int],
        output_dim: int,
        activation: str = "relu",
        dropout: float = 0.0,
        leaky_relu_alpha: float = 0.01,
        init: str = "pytorch",
        norm: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        arch = Architecture(hidden_sizes=list(hidden_sizes), activation=activation, dropout=dropout,
                            leaky_relu_alpha=leaky_relu_alpha, init=init, norm=norm, residual=residual)
        if input_dim <= 0 or output_dim <= 0:
            raise ConfigError(f"input_dim={input_dim} and output_dim={output_dim} must be >= 1")
        self.architecture = arch
        sizes = [input_dim, *arch.hidden_sizes]
        self.blocks = nn.Sequential(*(HiddenBlock(a, b, arch) for a, b in zip(sizes[:-1], sizes[1:], strict=True)))
        self.head = nn.Linear(sizes[-1], output_dim)
        initialise = INITS[arch.init].apply
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                initialise(layer, arch.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, input_dim) -> (batch, output_dim) logits; no softmax here, the loss applies it.
        return self.head(self.blocks(x))

    def linears(self) -> list[nn.Linear]:
        """The layers of the main path in order (hidden linears, then the head); no skip projections."""
        return [*(block.linear for block in self.blocks), self.head]


def weight_matrices(net: nn.Module) -> list[torch.Tensor]:
    """What L1 and L2 act on in any network: its parameters of two or more dimensions (not biases or norms)."""
    return [p for p in net.parameters() if p.ndim > 1]


def import_network(class_path: str) -> type[nn.Module]:
    """The nn.Module class at `class_path` (package.module.Class), or a one-line ConfigError."""
    module_name, _, name = class_path.rpartition(".")
    if os.getcwd() not in sys.path:  # a user's own module in the directory the command runs in, as `python -m`
        sys.path.append(os.getcwd())
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"net class_path {class_path!r} cannot be imported ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"net class_path {class_path!r} is not an nn.Module class")
    return cls


def injected_arguments(arch: Architecture) -> tuple[type[nn.Module], dict]:
    """The injected class and its constructor arguments besides input_dim and output_dim.

    An architecture field reaches the net when its constructor takes a parameter of that name (as skorch
    routes `module__*`); a field set to other than its default that the net does not take is refused,
    never ignored.
    """
    cls = import_network(arch.net["class_path"])
    init_args = dict(arch.net.get("init_args") or {})
    accepted = inspect.signature(cls.__init__).parameters
    missing = [p for p in ("input_dim", "output_dim") if p not in accepted]
    if missing:
        raise ConfigError(f"net {arch.net['class_path']} must take input_dim and output_dim; it lacks {missing}")
    default = Architecture()
    for f in fields(Architecture):
        value = getattr(arch, f.name)
        if f.name == "net" or f.name in init_args:
            continue
        if f.name in accepted:
            init_args[f.name] = value
        elif value != getattr(default, f.name):
            raise ConfigError(f"model.{f.name}={value!r} has no effect on net {arch.net['class_path']} "
                              f"(its constructor takes no {f.name}); remove it or reset it to "
                              f"{getattr(default, f.name)!r}")
    return cls, init_args


def build_network(arch: Architecture, input_dim: int, output_dim: int) -> nn.Module:
    """The network an architecture describes: the built-in FNN, or the injected `arch.net`."""
    if arch.net is None:
        return FNN(input_dim, arch.hidden_sizes, output_dim, activation=arch.activation, dropout=arch.dropout,
                   leaky_relu_alpha=arch.leaky_relu_alpha, init=arch.init, norm=arch.norm, residual=arch.residual)
    cls, init_args = injected_arguments(arch)
    try:
        return cls(input_dim=input_dim, output_dim=output_dim, **init_args)
    except TypeError as err:
        raise ConfigError(f"net {arch.net['class_path']} with init_args {init_args}: {err}") from None


_SINGLE_ROW_NOTED: set[int] = set()


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def skips_single_row(net: nn.Module, rows: int) -> bool:
    """Whether a training batch of `rows` is skipped: BatchNorm cannot normalise one row (its variance is
    undefined), so a last batch of one row is not trained on, in both engines; said once per network."""
    if rows != 1 or not net.training or not has_batch_norm(net):
        return False
    if id(net) not in _SINGLE_ROW_NOTED:
        _SINGLE_ROW_NOTED.add(id(net))
        warnings.warn("norm=batch: a training batch of one row is skipped (BatchNorm needs two rows to "
                      "normalise); choose a batch_size that does not leave one row over to train on every row",
                      stacklevel=2)
    return True
