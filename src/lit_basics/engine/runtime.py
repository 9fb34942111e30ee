"""Process-level settings that decide the speed of small networks."""

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from lit_basics.errors import ConfigError


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0 keeps torch's default); 1 is fastest for tiny MLPs on a CPU."""
    if threads < 0:
        raise ConfigError(f"torch_threads={threads} must be >= 0 (0 keeps torch's default)")
    if threads > 0:
        torch.set_num_threads(threads)


def machine_description() -> str:
    """CPU model and cores, torch version and threads, and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"{cpu} ({os.cpu_count()} cores), torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def plain_fp32_single_device(trainer: Any) -> bool:
    """Whether torch's backward and optimizer step can be called directly.

    LightningOptimizer.step and manual_backward add ~50 us a step for precision plugins, strategies
    and hooks; with 32-bit precision on one device they have nothing to do, and for a small network
    that is as much time as the math. Mixed precision and DDP keep Lightning's wrappers.
    """
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy

    strategy = trainer.strategy
    progress = getattr(trainer.fit_loop.epoch_loop, "manual_optimization", None)
    return (
        type(strategy.precision_plugin) is Precision
        and isinstance(strategy, SingleDeviceStrategy)
        and hasattr(progress, "optim_step_progress")
    )


def resolve_device(device: str) -> torch.device:
    """The device an estimator trains on: "auto" is the GPU when there is one, else the CPU; or a torch device name."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not a torch device; allowed: auto, cpu, cuda, cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no GPU is available; use device='auto' or 'cpu'")
    return resolved
