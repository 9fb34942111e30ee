"""Activation functions: each declared once, with what LitFNN and the batched engine need of it.

Adding one is one `Activation(...)` entry below plus its row in the tests' parametrization (which
reads this registry): LitFNN builds `module(alpha)`; the batched engine applies `forward_` in place
and backpropagates with `derivative_from_output`, a function of the activation's output as in
scikit-learn's `neural_network/_base.py`. An activation whose derivative is not a function of its
output (GELU) has `derivative_from_output=None`: LitFNN trains it, the batched engine refuses it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lit_basics.errors import check_batched_choice, check_choice

_aten = torch.ops.aten


@dataclass(frozen=True)
class Activation:
    """One activation. `alpha` is the one parameter an activation may take (leaky ReLU's negative slope).

    module: alpha -> the nn.Module LitFNN's FNN puts after each hidden layer.
    forward_: (z, alpha) -> activation(z), computed in place (the batched engine keeps only outputs).
    derivative_from_output: (d, output, alpha) -> d * f'(input), from f's output alone; None when
        the derivative needs the input, which the batched engine does not keep.
    """

    name: str
    description: str
    module: Callable[[float], nn.Module]
    forward_: Callable[[torch.Tensor, float], torch.Tensor] | None = None
    derivative_from_output: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None
    uses_alpha: bool = False

    @property
    def batched(self) -> bool:
        """Whether the batched engine can train it."""
        return self.forward_ is not None and self.derivative_from_output is not None


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("sigmoid", "1 / (1 + e^-x)", lambda alpha: nn.Sigmoid(),
               lambda z, alpha: torch.sigmoid_(z), lambda d, out, alpha: _aten.sigmoid_backward(d, out)),
    Activation("tanh", "tanh(x)", lambda alpha: nn.Tanh(),
               lambda z, alpha: torch.tanh_(z), lambda d, out, alpha: _aten.tanh_backward(d, out)),
    Activation("relu", "max(0, x)", lambda alpha: nn.ReLU(),
               lambda z, alpha: torch.relu_(z), lambda d, out, alpha: _aten.threshold_backward(d, out, 0.0)),
    # its slope is >= 0, so the sign of the output tells the side of zero: a function of the output
    Activation("leaky_relu", "max(alpha x, x), slope `leaky_relu_alpha` below zero",
               lambda alpha: nn.LeakyReLU(negative_slope=alpha),
               lambda z, alpha: F.leaky_relu_(z, alpha),
               lambda d, out, alpha: _aten.leaky_relu_backward(d, out, alpha, True), uses_alpha=True),
    Activation("gelu", "x P(X <= x), X ~ N(0, 1) (LitFNN only: its derivative needs the input)",
               lambda alpha: nn.GELU()),
)}


def get_activation(name: str) -> Activation:
    """The declaration of activation `name`; an unknown name is a ConfigError listing the known ones."""
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]


def batched_activation(name: str) -> Activation:
    """The declaration of `name` if the batched engine can train it, else a one-line ConfigError."""
    return check_batched_choice("activation", name, ACTIVATIONS, "its derivative is not a function of its output")


def make_activation(name: str, alpha: float = 0.01) -> nn.Module:
    """Build the activation `name`; `alpha` is leaky ReLU's negative slope and ignored by the others."""
    return get_activation(name).module(alpha)
