"""The feedforward network: any depth, sized by [input_dim, *hidden_sizes, output_dim]."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lit_basics.errors import ConfigError, check_choice
from lit_basics.models.activations import make_activation


def _glorot(layer: nn.Linear, activation: str) -> None:
    # scikit-learn's MLP initialisation: the bound's numerator is 2 for sigmoid, 6 otherwise
    bound = math.sqrt((2.0 if activation == "sigmoid" else 6.0) / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.uniform_(layer.bias, -bound, bound)


def _he(layer: nn.Linear, activation: str) -> None:
    nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
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


def validate_architecture(hidden_sizes: Sequence[int], dropout: float, leaky_relu_alpha: float) -> None:
    """Raise ConfigError for a layer list, dropout rate or leaky slope that cannot build a network."""
    if isinstance(hidden_sizes, int | str) or len(hidden_sizes) == 0:
        raise ConfigError(f"hidden_sizes={hidden_sizes!r} must be a non-empty list of positive integers")
    bad = [h for h in hidden_sizes if not isinstance(h, int) or isinstance(h, bool) or h <= 0]
    if bad:
        raise ConfigError(f"hidden_sizes={list(hidden_sizes)!r} has non-positive sizes {bad}; each must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout={dropout!r} is outside the allowed range [0, 1)")
    if leaky_relu_alpha < 0:
        raise ConfigError(f"leaky_relu_alpha={leaky_relu_alpha!r} must be >= 0")


class FNN(nn.Module):
    """Linear -> activation -> dropout for each hidden layer, then a linear output layer of logits."""

    def __init__(
        self,
        input_dim: int,
        hidden_sizes: Sequence[int],
        output_dim: int,
        activation: str = "relu",
        dropout: float = 0.0,
        leaky_relu_alpha: float = 0.01,
        init: str = "pytorch",
    ) -> None:
        super().__init__()
        validate_architecture(hidden_sizes, dropout, leaky_relu_alpha)
        initialise = INITS[check_choice("init", init, INITS)].apply
        if input_dim <= 0 or output_dim <= 0:
            raise ConfigError(f"input_dim={input_dim} and output_dim={output_dim} must be >= 1")
        sizes = [input_dim, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(nn.Linear(fan_in, fan_out))
            layers.append(make_activation(activation, alpha=leaky_relu_alpha))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], output_dim))
        for layer in layers:
            if isinstance(layer, nn.Linear):
                initialise(layer, activation)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, input_dim) -> (batch, output_dim) logits; no softmax here, the loss applies it.
        return self.net(x)

    def weights(self) -> list[torch.Tensor]:
        """The weight matrices (not biases): what L1 and L2 penalties act on."""
        return [m.weight for m in self.net if isinstance(m, nn.Linear)]
