"""Activation functions: each declared once; both engines build what they need from the declaration.

Adding one is one `Activation(...)` entry below (its parametrized tests read this registry): LitFNN
puts `module(alpha)` after each hidden layer, and the batched engine trains it on its generic path. A
hand-written kernel for the fast path is optional (engine/kernels.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lit_basics.errors import check_choice


@dataclass(frozen=True)
class Activation:
    """One activation. `alpha` is the one parameter an activation may take (leaky ReLU's negative slope).

    module: alpha -> the nn.Module the FNN puts after each hidden layer (elementwise).
    """

    name: str
    description: str
    module: Callable[[float], nn.Module]
    uses_alpha: bool = False


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("sigmoid", "1 / (1 + e^-x)", lambda alpha: nn.Sigmoid()),
    Activation("tanh", "tanh(x)", lambda alpha: nn.Tanh()),
    Activation("relu", "max(0, x)", lambda alpha: nn.ReLU()),
    Activation("leaky_relu", "max(alpha x, x), slope `leaky_relu_alpha` below zero",
               lambda alpha: nn.LeakyReLU(negative_slope=alpha), uses_alpha=True),
    Activation("gelu", "x P(X <= x), X ~ N(0, 1)", lambda alpha: nn.GELU()),
)}


def get_activation(name: str) -> Activation:
    """The declaration of activation `name`; an unknown name is a ConfigError listing the known ones."""
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]


def make_activation(name: str, alpha: float = 0.01) -> nn.Module:
    """Build the activation `name`; `alpha` is leaky ReLU's negative slope and ignored by the others."""
    return get_activation(name).module(alpha)
