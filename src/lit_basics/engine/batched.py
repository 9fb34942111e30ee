"""The batched engine's fast path: M plain MLPs (no norm, no residual, an activation with a derivative from
its output) stacked in one (M, P) tensor, with backpropagation written out. engine/generic.py trains every
other network; `fast_path(architecture)` says which one a group takes.

Each model has its own training and validation rows (its fold), data order, seed, learning rate,
weight decay, L1, dropout, momentum, clipping and optimizer hyperparameters. A k-fold search spends
most of its time in Python overhead per step of tiny networks; here one step advances every model,
so that overhead is shared M ways. What is left per step is kept to a few passes over memory: every
parameter of every model lives in one (M, P) tensor and every gradient in another, and each
optimizer's batched update (models/optimizers.py: torch's fused kernels where torch has them) runs
once per distinct learning rate and hyperparameters.
Backpropagation through the stack is written out (two batched matmuls and a bias sum per layer,
their gradients copied into the buffer): for networks this small, autograd's graph, its nodes and
its gradient accumulation cost as much as the arithmetic.
"""

from dataclasses import dataclass, field, fields, make_dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lit_basics.engine.dropout import DropoutMasks, DropoutSites
from lit_basics.engine.kernels import ACTIVATION_KERNELS, activation_kernel
from lit_basics.models import hparams
from lit_basics.models.fnn import FNN

ALIGN = 16  # layer widths are padded to a multiple of this: 16 float32 = one AVX-512 register


def _aligned(width: int) -> int:
    return -(-width // ALIGN) * ALIGN


def _spec_fields() -> list[tuple]:
    """ModelSpec's fields: the model's rows, fold and seed, then every per-model hyperparameter of the schema."""
    own = [("train_rows", torch.Tensor), ("val_rows", torch.Tensor), ("fold", int, field(default=0)),
           ("seed", int, field(default=0)),
           # its fold's real feature count when the data is zero-padded wider (0: the data's width)
           ("input_dim", int, field(default=0))]
    schema = {f.name: f for cls in hparams.SCHEMA for f in fields(cls)}
    per_model = [(name, schema[name].type, field(default=hparams.defaults()[name]))
                 for name in hparams.names(hparams.PER_MODEL)]
    return own + per_model


# One network of a batched group: its training and validation rows (indices into the group's data), the
# standardised copy of the data it reads (`fold`), its seed, and its per-model hyperparameters by their
# LitFNN names (lr, weight_decay, l1, dropout, momentum, gradient_clip_val, optimizer_kwargs).
ModelSpec = make_dataclass("ModelSpec", _spec_fields())


def fast_path(arch: hparams.Architecture) -> bool:
    """Whether every layer of the architecture has a hand-written kernel here (else engine/generic.py trains it)."""
    return arch.net is None and arch.norm == "none" and not arch.residual and arch.activation in ACTIVATION_KERNELS


@dataclass
class GroupResult:
    """Per-model outcome: the score a fold reports, and the history per epoch."""

    best_val_loss: list[float]
    best_val_acc: list[float]  # the validation accuracy of the best (lowest-loss) epoch
    best_epoch: list[int]
    epochs: list[int]
    history: list[list[dict[str, float]]] = field(default_factory=list)
    # each model's state_dict (its network's own keys) at the end, or at its best epoch with keep_best
    states: list[dict[str, torch.Tensor]] = field(default_factory=list)
    diverged: list[bool] = field(default_factory=list)  # its training loss became NaN or infinite: it stopped there


class BatchedMLP(DropoutSites):
    """M stacked MLPs `[input_dim, *hidden_sizes, output_dim]` whose parameters live in one (M, P) tensor.

    The layers' weights (M, in, out) and biases (M, 1, out) are views of `flat`, and their gradients
    views of one (M, P) `grad` buffer that `backward` writes: an optimizer step is then a few passes
    over two tensors, whatever the depth. None of them requires grad: no autograd graph is built,
    with or without torch.no_grad (whose context costs a few microseconds a call, per step).
    """

    def __init__(self, flat: torch.Tensor, sizes: list[int], activation: str, alpha: float,
                 dropout: torch.Tensor) -> None:
        declaration = activation_kernel(activation)
        self.activation = lambda z: declaration.forward_(z, alpha)  # in place
        self.activation_backward = lambda d, out: declaration.derivative_from_output(d, out, alpha)
        self.layout: list[tuple[int, int, int]] = []  # (offset, fan_in, fan_out) per layer
        offset = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.layout.append((offset, fan_in, fan_out))
            offset += fan_in * fan_out + fan_out
        self.weight_mask = torch.zeros(1, offset, dtype=flat.dtype)
        for start, fan_in, fan_out in self.layout:
            self.weight_mask[:, start : start + fan_in * fan_out] = 1.0  # where L2 and L1 apply
        self.param_mask: torch.Tensor | None = None  # (M, P) when widths are padded: 1 on real parameters
        self.out_features = sizes[-1]  # the output width before padding (set by from_modules)
        self.model_sizes = [list(sizes)] * flat.shape[0]  # each model's own layer sizes
        self.masks = DropoutMasks([[p] * (len(sizes) - 2) for p in dropout.tolist()],
                                  [list(sizes[1:-1])] * flat.shape[0], flat.device)
        self._saved: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] | None = None
        self._bind(flat.detach().clone())

    def _bind(self, flat: torch.Tensor) -> None:
        self.flat, self.grad = flat, torch.zeros_like(flat)
        m = flat.shape[0]
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        for s, i, o in self.layout:
            for out, grads, start, shape in ((self.weights, self.weight_grads, s, (m, i, o)),
                                             (self.biases, self.bias_grads, s + i * o, (m, 1, o))):
                size = shape[1] * shape[2]
                out.append(flat[:, start : start + size].view(shape))
                grads.append(self.grad[:, start : start + size].view(shape))
        self.weights_t = [w.transpose(1, 2) for w in self.weights]  # (M, out, in) views, for backward

    @classmethod
    def from_modules(cls, modules: list[FNN], activation: str, alpha: float = 0.01,
                     dropout: torch.Tensor | None = None, input_dim: int = 0) -> "BatchedMLP":
        """Stack M FNNs of one depth; every layer is zero-padded to the widest, rounded up to ALIGN units
        (the input to `input_dim` when that is wider: zero-padded data columns meet zero weights).

        A padded unit has no incoming or outgoing weights, so it changes nothing: models of several
        widths train as one group, and round sizes keep the matmuls fast (a 10-wide output layer
        took 3x the time of a 16-wide one on an AVX-512 CPU). The output is cut back to its width.
        """
        layers = [module.linears() for module in modules]
        sizes = [max(input_dim, *(ls[0].in_features for ls in layers))]
        sizes += [_aligned(max(ls[i].out_features for ls in layers)) for i in range(len(layers[0]))]
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
        net.out_features = layers[0][-1].out_features
        net.model_sizes = [[ls[0].in_features, *(layer.out_features for layer in ls)] for ls in layers]
        net.masks.widths = [sizes[1:-1] for sizes in net.model_sizes]
        # A padded hidden unit outputs activation(0): zero for relu, tanh and leaky relu, so no gradient
        # reaches the padding; sigmoid's 0.5 would, and the mask keeps those weights at zero.
        hidden_padded = any(s[1:-1] != sizes[1:-1] for s in net.model_sizes)
        if hidden_padded and float(net.activation(torch.zeros(1))) != 0.0:
            net.param_mask = torch.stack(masks)
        return net

    def layers(self, i: int, flat: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Model i's (weight, bias) per layer without padding, shaped as nn.Linear's; from `flat` when given
        (a tensor of the same (M, P) layout, such as a copy of the parameters at a best epoch)."""
        row, sizes = (self.flat if flat is None else flat)[i], self.model_sizes[i]
        out = []
        for (start, fan_in, fan_out), real_in, real_out in zip(self.layout, sizes[:-1], sizes[1:], strict=True):
            w = row[start : start + fan_in * fan_out].view(fan_in, fan_out)
            b = row[start + fan_in * fan_out : start + fan_in * fan_out + fan_out]
            out.append((w[:real_in, :real_out].T, b[:real_out]))
        return out

    def state_dict(self, i: int, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Model i's parameters under the FNN's own keys (models/fnn.py), detached copies."""
        layers = self.layers(i, flat)
        names = [f"blocks.{k}.linear" for k in range(len(layers) - 1)] + ["head"]
        return {f"{name}.{part}": value.detach().clone() for name, (w, b) in zip(names, layers, strict=True)
                for part, value in (("weight", w), ("bias", b))}

    def to(self, device: torch.device) -> "BatchedMLP":
        self.weight_mask = self.weight_mask.to(device)
        if self.param_mask is not None:
            self.param_mask = self.param_mask.to(device)
        self.masks.device = device
        self._bind(self.flat.to(device))
        return self

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the models `rows` in the stack: those that stopped early cost no more arithmetic."""
        self.masks.keep(rows.tolist())
        if self.param_mask is not None:
            self.param_mask = self.param_mask[rows]
        self.model_sizes = [self.model_sizes[i] for i in rows.tolist()]
        self._bind(self.flat[rows])

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]

    def __call__(self, x: torch.Tensor, train: bool = False, rows: list[tuple[int, int, int]] | None = None,
                 row_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (M, batch, input_dim) -> (M, batch, output_dim) logits.

        With `train`, dropout applies and what `backward` needs is kept: each layer's input, and each
        hidden layer's activation output and dropout scale. `rows`: where this step lies in each
        model's batch, for dropout (see DropoutMasks.scale).
        """
        last = len(self.layout) - 1
        dropping = train and self.dropping
        saved = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            layer_input = x
            x = torch.baddbmm(b, x, w)
            out = scale = None
            if i < last:
                x = out = self.activation(x)
                if dropping:
                    scale = self.masks.scale(i, x.shape, rows)
                    x = x * scale
            saved.append((layer_input, out, scale))
        self._saved = saved if train else None
        return x[..., : self.out_features]

    def zero_grad(self, rows: np.ndarray) -> None:
        """Zero the gradient of the models `rows`."""
        if len(rows):
            self.grad.index_fill_(0, torch.as_tensor(rows, device=self.grad.device), 0.0)

    def backward(self, d_output: torch.Tensor, accumulate: bool = False) -> None:
        """`grad` = the gradient of the parameters (`grad` += it, with `accumulate`), from d_output = d loss /
        d logits of the last training call."""
        if self._saved is None:
            raise RuntimeError("backward needs a forward call with train=True first")
        saved, self._saved = self._saved, None
        padding = self.layout[-1][2] - d_output.shape[-1]
        d = F.pad(d_output, (0, padding)) if padding else d_output
        for i in range(len(self.layout) - 1, -1, -1):
            layer_input = saved[i][0]
            # into a fresh tensor, then copied: MKL's batched gemm needs a contiguous result, and for
            # a strided one torch calls gemm model by model (~1 us each, more than the copy)
            weight_grad = torch.bmm(layer_input.transpose(1, 2), d)
            if accumulate:
                self.weight_grads[i].add_(weight_grad)
                self.bias_grads[i].add_(d.sum(1, keepdim=True))
            else:
                self.weight_grads[i].copy_(weight_grad)
                torch.sum(d, 1, keepdim=True, out=self.bias_grads[i])
            if i:
                d = torch.bmm(d, self.weights_t[i])
                _, out, scale = saved[i - 1]
                if scale is not None:
                    d.mul_(scale)
                d = self.activation_backward(d, out)
