"""The batched engine's generic path: M copies of any nn.Module trained as one program.

Every parameter of every model lives in one (M, P) tensor (the layout the batched optimizer steps); each
parameter is an (M, *shape) view of it and a leaf of autograd, which differentiates the stacked forward
(the loss's closed-form logit gradient starts the backward pass, as on the fast path). The forward is:
- for networks made of known layers (the built-in FNN with any norm, residual or activation), their own
  forward on (M, batch, features) with each layer in its stacked form (engine/stacked_layers.py);
- for any other module, torch's model-ensembling recipe: `vmap` over a functional call of one template
  module (its tensors swapped for the model's, as torch.func.functional_call does). Measured on the digits
  search's groups, vmap's per-op dispatch made a step 2-3x the fast path's; the stacked layers 1.3-1.5x.
In the template, two kinds of layer are swapped for versions that read per-model inputs:
- nn.Dropout: multiplies by the group's DropoutMasks (each model's masks from its own seed, as the fast path);
- BatchNorm1d: batch statistics over each model's real rows only (a group's models have different row
  counts, so a step's batch holds padding rows), per-model running statistics, eval mode as nn.BatchNorm1d.
A module vmap cannot batch (data-dependent control flow, random ops of its own) is refused by `check_batchable`
with one line naming it, before any training.
"""

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from lit_basics.engine.dropout import DropoutMasks, DropoutSites
from lit_basics.engine.stacked_layers import leading_dim_safe, per_model_template, stacked_copy
from lit_basics.errors import ConfigError


def _dropout_p(module: nn.Module, path: str) -> float:
    try:
        site = module.get_submodule(path)
    except AttributeError:
        return 0.0
    return float(site.p) if isinstance(site, nn.Dropout) else 0.0


def _pad_to(value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`value` zero-padded at the end of each dimension to `shape` (a wider input's extra columns)."""
    if value.shape == shape:
        return value
    out = value.new_zeros(shape)
    out[tuple(slice(0, s) for s in value.shape)] = value
    return out


class StackedModules(DropoutSites):
    """M modules of one structure as one program; the interface of the fast path's BatchedMLP.

    `modules[i]` is model i as built from its own seed (and its fold's input width); `template` is a module
    of the group's widest input that the others are zero-padded to (zero columns meet zero weights).
    """

    def __init__(self, modules: list[nn.Module], template: nn.Module) -> None:
        shapes = {k: v.shape for k, v in template.state_dict().items()}
        self.own_shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in modules]
        states = [{k: _pad_to(v.detach(), shapes[k]) for k, v in m.state_dict().items()} for m in modules]
        widths = self._dropout_widths(template, [n for n, c in template.named_modules() if isinstance(c, nn.Dropout)])
        self.stacked, self.stacked_layers = stacked_copy(template) if leading_dim_safe(template) else (None, {})
        self.template, self.dropout_sites, self.norm_sites = per_model_template(template)
        self.template = self.template.to("meta")
        m = len(modules)
        self.names = [name for name, _ in self.template.named_parameters()]
        self.shapes = [shapes[k] for k in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        flat = torch.cat([torch.stack([s[k] for s in states]).reshape(m, -1) for k in self.names], 1)
        persistent = [k for k in shapes if k not in self.names]  # running statistics and other buffers
        self.buffers = {k: torch.stack([s[k] for s in states]) for k in persistent}
        self.weight_mask = torch.cat([torch.full((1, n), float(len(s) > 1)) for n, s in zip(self.sizes, self.shapes,
                                                                                            strict=True)], 1)
        self.param_mask = None
        self.masks = DropoutMasks([[_dropout_p(mod, s) for s in self.dropout_sites] for mod in modules],
                                  [widths] * m, flat.device)
        self._mode: bool | None = None
        self._bind(flat)
        self._logits: torch.Tensor | None = None
        self._slots = self._slot_list()
        self._vmapped = vmap(self._call_template)

    def _slot_list(self) -> list[tuple[dict, str]]:
        """Where each tensor the forward reads lives in the template: (its module's _parameters or _buffers, name),
        parameters first in `names` order, then buffers, dropout factors and row masks."""
        def slot(path: str, kind: str) -> tuple[dict, str]:
            parent, _, name = path.rpartition(".")
            module = self.template.get_submodule(parent) if parent else self.template
            return getattr(module, kind), name

        names = [*((n, "_parameters") for n in self.names), *((n, "_buffers") for n in self.buffers),
                 *((f"{s}.scale", "_buffers") for s in self.dropout_sites),
                 *((f"{s}.row_mask", "_buffers") for s in self.norm_sites)]
        return [slot(n, kind) for n, kind in names]

    def _call_template(self, tensors: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        """The template's forward on one model's tensors (inside vmap): functional_call's swap, without its
        per-call bookkeeping (a step's overhead matters for networks this small)."""
        for (where, name), tensor in zip(self._slots, tensors, strict=False):
            where[name] = tensor
        return self.template(x)

    @staticmethod
    def _dropout_widths(module: nn.Module, sites: list[str]) -> list[int]:
        """The width of each dropout site's input, from one forward of a probe row."""
        widths: dict[str, int] = {}

        def record(name: str) -> Any:
            def hook(mod: nn.Module, args: tuple, out: Any) -> None:
                widths.setdefault(name, args[0].shape[-1])
            return hook

        hooks = [module.get_submodule(s).register_forward_hook(record(s)) for s in sites]
        if not sites:
            return []
        first = next(p for p in module.parameters())
        was = module.training
        module.eval()
        try:
            with torch.no_grad():
                module(torch.zeros(2, _input_width(module), dtype=first.dtype))
        finally:
            module.train(was)
            for hook in hooks:
                hook.remove()
        return [widths[s] for s in sites]

    def _bind(self, flat: torch.Tensor) -> None:
        """`flat` (M, P) holds every parameter; each is an (M, *shape) view of it, made a leaf of autograd (so
        the gradient of each comes out per parameter and is copied once into `grad`, instead of autograd summing
        one (M, P) gradient per parameter into flat's)."""
        self.flat = flat.detach()
        self.grad = torch.zeros_like(flat)
        self._views, self._grad_views, start, m = [], [], 0, self.flat.shape[0]
        with torch.no_grad():
            for size, shape in zip(self.sizes, self.shapes, strict=True):
                self._views.append(self.flat[:, start : start + size].view(m, *shape).requires_grad_(True))
                self._grad_views.append(self.grad[:, start : start + size].view(m, *shape))
                start += size
        for name, tensor in [*zip(self.names, self._views, strict=True), *self.buffers.items()]:
            path, _, attr = name.rpartition(".")
            if path in self.stacked_layers:
                setattr(self.stacked_layers[path], attr, tensor)

    def __call__(self, x: torch.Tensor, train: bool = False, rows: list[tuple[int, int, int]] | None = None,
                 row_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (M, batch, input_dim) -> (M, batch, output_dim) logits; `row_mask` (M, batch): real rows, for
        BatchNorm's statistics (all rows when None)."""
        if self._mode != train:  # train() walks every module: once per change of mode, not per step
            self.template.train(train)
            if self.stacked is not None:
                self.stacked.train(train)
            self._mode = train
        if self.stacked is not None:
            return self._stacked_call(x, train, rows, row_mask)
        tensors = [*self._views, *self.buffers.values()]
        if train:
            shape = (x.shape[0], x.shape[1])
            tensors += [self.masks.scale(i, torch.Size((*shape, width)), rows)
                        for i, width in enumerate(self.masks.widths[0] if self.dropout_sites else [])]
            mask = x.new_ones(shape) if row_mask is None else row_mask.to(x.dtype)
            tensors += [mask] * len(self.norm_sites)
            with torch.enable_grad():
                self._logits = self._vmapped(tuple(tensors), x)
            return self._logits
        self._logits = None
        tensors = [t.detach() for t in tensors]
        return self._vmapped(tuple(tensors), x)

    def _stacked_call(self, x: torch.Tensor, train: bool, rows: Any, row_mask: torch.Tensor | None) -> torch.Tensor:
        """The network's own forward on (M, batch, features), its layers in their stacked forms."""
        if not train:
            with torch.no_grad():
                self._logits = None
                return self.stacked(x)
        for i, site in enumerate(self.dropout_sites):
            width = self.masks.widths[0][i]
            self.stacked_layers[site].scale = self.masks.scale(i, torch.Size((x.shape[0], x.shape[1], width)), rows)
        mask = x.new_ones(x.shape[:2]) if row_mask is None else row_mask.to(x.dtype)
        for site in self.norm_sites:
            self.stacked_layers[site].row_mask = mask
        with torch.enable_grad():
            self._logits = self.stacked(x)
        return self._logits

    def backward(self, d_output: torch.Tensor, accumulate: bool = False) -> None:
        """`grad` = d loss / d parameters (`grad` += it, with `accumulate`) from d_output = d loss / d logits."""
        if self._logits is None:
            raise RuntimeError("backward needs a forward call with train=True first")
        logits, self._logits = self._logits, None
        grads = torch.autograd.grad(logits, self._views, d_output, allow_unused=True)
        for into, grad in zip(self._grad_views, grads, strict=True):
            if grad is None:  # a parameter the forward does not use
                if not accumulate:
                    into.zero_()
            elif accumulate:
                into.add_(grad)
            else:
                into.copy_(grad)

    def zero_grad(self, rows: Any) -> None:
        if len(rows):
            self.grad.index_fill_(0, torch.as_tensor(rows, device=self.grad.device), 0.0)

    def keep(self, rows: torch.Tensor) -> None:
        index = rows.tolist()
        self.masks.keep(index)
        self.own_shapes = [self.own_shapes[i] for i in index]
        self.buffers = {k: v[rows] for k, v in self.buffers.items()}
        self._bind(self.flat.detach()[rows])

    def to(self, device: torch.device) -> "StackedModules":
        self.weight_mask = self.weight_mask.to(device)
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        self.masks.device = device
        self._bind(self.flat.detach().to(device))
        return self

    def state_dict(self, i: int, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Model i's state_dict (parameters from `flat` when given, and its buffers), cut to its own shapes."""
        row, out, start = (self.flat if flat is None else flat)[i].detach(), {}, 0
        for name, size, shape in zip(self.names, self.sizes, self.shapes, strict=True):
            out[name] = row[start : start + size].view(shape)
            start += size
        out.update({k: v[i] for k, v in self.buffers.items()})
        own = self.own_shapes[i]
        return {k: v[tuple(slice(0, s) for s in own[k])].clone() for k, v in out.items() if k in own}


def _input_width(module: nn.Module) -> int:
    """The input width of a module: that of its first nn.Linear (the networks here take (batch, features))."""
    first = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ConfigError(f"the batched engine needs an nn.Linear in {type(module).__name__} to learn its input width")
    return first.in_features


def check_batchable(module: nn.Module, input_dim: int) -> None:
    """Refuse, in one line naming it, a module that vmap cannot run as M stacked copies (train and eval)."""
    try:
        stacked = StackedModules([module, copy.deepcopy(module)], module)
        x = torch.randn(2, 3, input_dim)
        out = stacked(x, train=True, row_mask=torch.ones(2, 3))
        stacked.backward(torch.ones_like(out))
        stacked(x, train=False)
    except ConfigError:
        raise
    except Exception as err:  # vmap's refusal of data-dependent control flow, randomness, in-place ops ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"the batched engine cannot train {type(module).__name__} as stacked copies "
                          f"({first[:200]}); use --engine lightning") from None
