"""Process-level settings that decide the speed of small networks."""

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch


def avoid_per_step_nvml_probe() -> None:
    """Stop a CUDA build of torch from probing NVML at every Adam step on a machine without a GPU.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import (fork safety), which makes every
    `torch.cuda.is_available()` load libnvidia-ml again; Adam's step calls it each time. On a
    2-core CPU that was ~0.3 ms a step, more than the math of a small MLP. Where NVML finds no GPU
    there is no CUDA context a fork could poison, so the cached runtime check is safe.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


def skip_redundant_log_moves() -> None:
    """Make Lightning's per-`self.log` device move a no-op when the logged state is already on that device.

    `self.log` calls `_ResultMetric.to(value.device)`, which walks the metric module's whole
    `__dict__` with `apply_to_collection` on every call: ~0.2 ms a key, over 1 ms an epoch for five
    epoch metrics, as much as the training steps of a small epoch. The states (the running value
    and batch count) tell whether there is anything to move; when there is, Lightning's own `to` runs.
    """
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    move = _ResultMetric.to
    if getattr(move, "skips_redundant_moves", False):
        return

    def to(self: _ResultMetric, *args: Any, **kwargs: Any) -> _ResultMetric:
        if self.is_tensor and len(args) == 1 and not kwargs and isinstance(args[0], torch.device):
            states = [self.value, self.cumulated_batch_size] if self.meta.is_mean_reduction else [self.value]
            if all(state.device == args[0] for state in states):
                return self
        return move(self, *args, **kwargs)

    to.skips_redundant_moves = True  # type: ignore[attr-defined]
    _ResultMetric.to = to


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0 keeps torch's default); 1 is fastest for tiny MLPs on a CPU."""
    if threads < 0:
        from lit_basics.errors import ConfigError

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
