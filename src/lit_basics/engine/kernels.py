"""The batched engine's hand-written kernels, by component name: the fast path's activations and every
optimizer's batched update.

An activation with an entry in ACTIVATION_KERNELS runs on the fast path (engine/batched.py): `forward_`
in place, and a derivative that is a function of the activation's output alone, as in scikit-learn's
`neural_network/_base.py` (the fast path keeps only outputs). An activation without one (GELU, whose
derivative needs the input) still trains in the batched engine, on the generic path.
OPTIMIZER_UPDATES advance many models' rows of the (models, parameters) tensors with one learning rate and
hyperparameters, as torch.optim's update does for one model (the batched optimizer adds L2 and L1 to the
gradients first, as LitFNN's parameter groups and loss do; tests hold each to torch.optim). An optimizer
without one is refused by the batched engine: there is no generic optimizer path.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lit_basics.errors import ConfigError, check_choice

Tensor = torch.Tensor
_aten = torch.ops.aten


@dataclass(frozen=True)
class ActivationKernel:
    """forward_: (z, alpha) -> activation(z) in place; derivative_from_output: (d, output, alpha) -> d * f'(input)."""

    forward_: Callable[[Tensor, float], Tensor]
    derivative_from_output: Callable[[Tensor, Tensor, float], Tensor]


ACTIVATION_KERNELS: dict[str, ActivationKernel] = {
    "sigmoid": ActivationKernel(lambda z, alpha: torch.sigmoid_(z),
                                lambda d, out, alpha: _aten.sigmoid_backward(d, out)),
    "tanh": ActivationKernel(lambda z, alpha: torch.tanh_(z), lambda d, out, alpha: _aten.tanh_backward(d, out)),
    "relu": ActivationKernel(lambda z, alpha: torch.relu_(z),
                             lambda d, out, alpha: _aten.threshold_backward(d, out, 0.0)),
    # its slope is >= 0, so the sign of the output tells the side of zero: a function of the output
    "leaky_relu": ActivationKernel(lambda z, alpha: F.leaky_relu_(z, alpha),
                                   lambda d, out, alpha: _aten.leaky_relu_backward(d, out, alpha, True)),
}


@dataclass
class UpdateRows:
    """The rows of the batched engine's tensors that one update call advances (one per model, each (P,)).

    state: the optimizer's buffers by name (`Optimizer.state`), zero before a model's first step.
    steps: each model's step count as a 0-d tensor, already counting this step.
    """

    params: list[Tensor]
    grads: list[Tensor]
    state: dict[str, list[Tensor]]
    steps: list[Tensor]
    lr: float
    hp: dict[str, float]


def _sgd_update(rows: UpdateRows) -> None:
    momentum = rows.hp.get("momentum", 0.0)
    buffers = rows.state["momentum"] if momentum > 0 else []  # a zero buffer makes the first step buf = g
    torch._fused_sgd_(rows.params, rows.grads, buffers, weight_decay=0.0, momentum=momentum if buffers else 0.0,
                      lr=rows.lr, dampening=0.0, nesterov=False, maximize=False, is_first_step=False)


def _adam_update(rows: UpdateRows) -> None:
    torch._fused_adam_(rows.params, rows.grads, rows.state["exp_avg"], rows.state["exp_avg_sq"], [], rows.steps,
                       lr=rows.lr, beta1=rows.hp["beta1"], beta2=rows.hp["beta2"], weight_decay=0.0,
                       eps=rows.hp["eps"], amsgrad=False, maximize=False)


def _rmsprop_update(rows: UpdateRows) -> None:
    # torch.optim.RMSprop's multi-tensor algorithm without its centring and momentum (off by default)
    alpha, square_avg = rows.hp["alpha"], rows.state["square_avg"]
    torch._foreach_mul_(square_avg, alpha)
    torch._foreach_addcmul_(square_avg, rows.grads, rows.grads, value=1.0 - alpha)
    root = torch._foreach_sqrt(square_avg)
    torch._foreach_add_(root, rows.hp["eps"])
    torch._foreach_addcdiv_(rows.params, rows.grads, root, value=-rows.lr)


OPTIMIZER_UPDATES: dict[str, Callable[[UpdateRows], None]] = {
    "sgd": _sgd_update, "momentum": _sgd_update, "rmsprop": _rmsprop_update, "adam": _adam_update,
    "adamw": _adam_update,  # AdamW's decoupled decay is applied before the update (BatchedOptimizer)
}


def activation_kernel(name: str) -> ActivationKernel:
    """The fast path's kernel of activation `name`, or a one-line ConfigError (an unknown name lists the known)."""
    from lit_basics.models.activations import ACTIVATIONS

    check_choice("activation", name, ACTIVATIONS)
    if name not in ACTIVATION_KERNELS:
        raise ConfigError(f"the batched engine cannot train activation {name!r} on its fast path (its derivative "
                          f"is not a function of its output); fast path: {', '.join(sorted(ACTIVATION_KERNELS))}; "
                          "the generic path trains it")
    return ACTIVATION_KERNELS[name]


def optimizer_update(name: str) -> Callable[[UpdateRows], None]:
    """The batched update of optimizer `name`, or a one-line ConfigError."""
    from lit_basics.models.optimizers import OPTIMIZERS

    check_choice("optimizer", name, OPTIMIZERS)
    if name not in OPTIMIZER_UPDATES:
        raise ConfigError(f"the batched engine cannot train optimizer {name!r} (it has no batched update); "
                          f"batched: {', '.join(sorted(OPTIMIZER_UPDATES))}; use --engine lightning")
    return OPTIMIZER_UPDATES[name]
