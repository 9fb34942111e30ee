"""An ensemble of trained networks as one injected `net`: what `tune.py --ensemble K` saves.

Each member is a network the architecture schema describes (models/hparams.py, built by
`build_network`), reading its own columns of the input and mapping its output to the ensemble's
target units. The k-fold search trained fold f's models on fold f's preprocessing, so the ensemble's
data module gives each row as every fold's preprocessing gives it, side by side (`fold_features`),
and a member reads the block of its fold. The ensemble's output is a logit again: for classification
the logit of the members' weighted mean probabilities (so softmax/sigmoid of it is that mean and
cross-entropy on it is the ensemble's log loss), for regression the weighted mean of the members'
outputs.

    net:
      class_path: lit_basics.models.ensemble.Ensemble
      init_args:
        task: classification
        members:
          - {architecture: {hidden_sizes: [64], activation: relu}, columns: [0, 64], weight: 1.0}
          - ...
"""

from typing import Any

import torch
from torch import nn

from lit_basics.errors import ConfigError
from lit_basics.models.fnn import build_network
from lit_basics.models.hparams import Architecture

MEMBER_KEYS = {"architecture", "columns", "weight", "output_scale", "output_shift"}


def _check_member(i: int, member: Any, input_dim: int) -> None:
    if not isinstance(member, dict) or not {"architecture", "columns"} <= set(member) or set(member) - MEMBER_KEYS:
        raise ConfigError(f"ensemble member {i} must be a mapping with architecture and columns "
                          f"(optional: weight, output_scale, output_shift); got {member!r}")
    columns = member["columns"]
    if (not isinstance(columns, list | tuple) or len(columns) != 2 or not all(isinstance(c, int) for c in columns)
            or not 0 <= columns[0] < columns[1] <= input_dim):
        raise ConfigError(f"ensemble member {i}: columns={columns!r} must be [start, stop] within the input's "
                          f"{input_dim} columns")
    if not float(member.get("weight", 1.0)) > 0:
        raise ConfigError(f"ensemble member {i}: weight={member.get('weight')!r} must be > 0")


def member_description(architecture: dict[str, Any]) -> dict[str, Any]:
    """A member's architecture as the config stores it: an injected net as {module, arguments}, since the config
    parser would read a nested {class_path, init_args} as a class to fill in with its constructor's defaults."""
    net = architecture.get("net")
    if net is None:
        return dict(architecture)
    return {**architecture, "net": {"module": net["class_path"], "arguments": dict(net.get("init_args") or {})}}


def member_architecture(description: dict[str, Any]) -> Architecture:
    """The Architecture of a member description (member_description's inverse)."""
    net = description.get("net")
    if isinstance(net, dict) and "module" in net:
        net = {"class_path": net["module"], "init_args": dict(net.get("arguments") or {})}
    return Architecture(**{**description, "net": net})


class Ensemble(nn.Module):
    """Members averaged: probabilities for classification, outputs (in the ensemble's units) for regression."""

    def __init__(self, input_dim: int, output_dim: int, members: list[dict[str, Any]],
                 task: str = "classification") -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ConfigError(f"ensemble task={task!r}; allowed: classification, regression")
        if not isinstance(members, list) or not members:
            raise ConfigError("an ensemble needs at least one member")
        for i, member in enumerate(members):
            _check_member(i, member, input_dim)
        self.task, self.columns = task, [tuple(m["columns"]) for m in members]
        self.members = nn.ModuleList(
            build_network(member_architecture(m["architecture"]), m["columns"][1] - m["columns"][0], output_dim)
            for m in members)
        weights = torch.tensor([float(m.get("weight", 1.0)) for m in members])
        self.register_buffer("weights", weights, persistent=False)
        self.register_buffer("output_scale", torch.tensor([float(m.get("output_scale", 1.0)) for m in members]),
                             persistent=False)
        self.register_buffer("output_shift", torch.tensor([float(m.get("output_shift", 0.0)) for m in members]),
                             persistent=False)

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """(members, batch, outputs): each member's logits, or for regression its output in the ensemble's units."""
        out = torch.stack([net(x[:, a:b]) for net, (a, b) in zip(self.members, self.columns, strict=True)])
        if self.task == "regression":
            return out * self.output_scale.view(-1, 1, 1) + self.output_shift.view(-1, 1, 1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine(self.member_outputs(x), self.weights, self.task)


def combine(outputs: torch.Tensor, weights: torch.Tensor, task: str) -> torch.Tensor:
    """Members' outputs (members, batch, outputs) and weights (members,) -> the ensemble's logits (batch, outputs)."""
    w = (weights / weights.sum()).to(outputs.dtype).view(-1, 1, 1)
    if task == "regression":
        return (w * outputs).sum(0)
    if outputs.shape[-1] == 1:  # binary: one logit per member -> the logit of the mean probability
        p = (w * torch.sigmoid(outputs)).sum(0)
        eps = torch.finfo(p.dtype).tiny
        return torch.log(p.clamp_min(eps)) - torch.log((1 - p).clamp_min(eps))
    return torch.logsumexp(torch.log_softmax(outputs, dim=-1) + torch.log(w), dim=0)

