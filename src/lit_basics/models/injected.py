"""An example of a network injected with `model.net` instead of the built-in FNN: any nn.Module whose
constructor takes `input_dim` and `output_dim` (linked from the data) trains in train.py, tune.py (both
engines) and compare.py. Architecture fields its constructor also takes (here `dropout`) reach it from
the config and the search space, as `--model.dropout 0.2`.

    python scripts/train.py fit --config configs/digits.yaml --config configs/models/two_layer.yaml
"""

import torch
from torch import nn


class TwoLayerNet(nn.Module):
    """Linear -> SiLU -> dropout -> linear: two weight layers of width `width`."""

    def __init__(self, input_dim: int, output_dim: int, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(input_dim, width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, input_dim) -> (batch, output_dim) logits
        return self.out(self.dropout(nn.functional.silu(self.hidden(x))))
