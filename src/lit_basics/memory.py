"""How much memory a network will need, checked against the device before it is built."""

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from lit_basics.errors import ConfigError

FLOAT_BYTES = 4
TRAINING_COPIES = 4  # weights, gradients and two optimizer moments (Adam's; SGD keeps fewer)


def estimate_bytes(input_dim: int, hidden_sizes: Sequence[int], output_dim: int, batch_size: int,
                   eval_batch_size: int, training: bool) -> tuple[int, int]:
    """(parameters, bytes) of float32 training or evaluation of an FNN of these sizes (a lower bound)."""
    sizes = [input_dim, *hidden_sizes, output_dim]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    evaluation = eval_batch_size * max(sizes) * 2  # one layer's input and output at a time
    if not training:
        return params, FLOAT_BYTES * (params + evaluation)
    kept = batch_size * sum(hidden_sizes) * 3  # pre-activation, activation and its gradient per layer
    return params, FLOAT_BYTES * (params * TRAINING_COPIES + max(kept, evaluation))


def device_bytes(accelerator: str | None) -> tuple[int, str]:
    """(bytes, name) of the memory the run will use: the GPU's, or the RAM (or the cgroup's limit)."""
    if accelerator in (None, "auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.mem_get_info()[1], "the GPU has"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = Path("/sys/fs/cgroup/memory.max")
    if limit.is_file() and limit.read_text().strip().isdigit():
        total = min(total, int(limit.read_text().strip()))
    return total, "this machine has"


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_fits(hidden_sizes: Sequence[int], batch_size: int, eval_batch_size: int, accelerator: str | None,
               training: bool, input_dim: int = 1, output_dim: int = 1) -> None:
    """Refuse, in one line, a network whose estimated memory exceeds what the device has."""
    params, needed = estimate_bytes(input_dim, hidden_sizes, output_dim, batch_size, eval_batch_size, training)
    available, where = device_bytes(accelerator)
    if needed > available:
        raise ConfigError(
            f"hidden_sizes={list(hidden_sizes)} needs at least {human(needed)} ({params:.3g} parameters, "
            f"batch {batch_size}/{eval_batch_size}); {where} {human(available)}: use smaller layers or batches"
        )
