"""Activation functions by name: the one place to add a new one."""

from torch import nn

from lit_basics.errors import check_choice

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str, alpha: float = 0.01) -> nn.Module:
    """Build the activation `name`; `alpha` is leaky ReLU's negative slope and ignored by the others."""
    check_choice("activation", name, ACTIVATIONS)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=alpha)
    return ACTIVATIONS[name]()
