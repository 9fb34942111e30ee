"""Changes to Lightning's behaviour for the speed of small networks: applied explicitly, version-guarded.

Nothing here runs on import. `apply()` is called by the CLI (LitBasicsCLI, which compare.py and tune.py
use too) and by the benchmark before they build a Trainer; a Trainer built elsewhere (a notebook, the
tests) runs as Lightning ships it. Each change checks the Lightning version and the private names it
relies on, and leaves Lightning's own behaviour in place where they are not as expected.
"""

import os
from typing import Any

import torch

TESTED = ((2, 4), (2, 6))  # the Lightning minor versions these changes were checked against, inclusive


def version_tested(version: str | None = None) -> bool:
    """Whether `version` (Lightning's installed one by default) lies in TESTED."""
    if version is None:
        import lightning

        version = lightning.__version__
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return TESTED[0] <= major_minor <= TESTED[1]


def apply(version: str | None = None) -> dict[str, bool]:
    """Apply every change that fits this Lightning; returns which took effect."""
    return {"nvml_probe": avoid_per_step_nvml_probe(), "log_moves": skip_redundant_log_moves(version)}


def avoid_per_step_nvml_probe() -> bool:
    """Stop a CUDA build of torch from probing NVML at every Adam step on a machine without a GPU.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import (fork safety), which makes every
    `torch.cuda.is_available()` load libnvidia-ml again; Adam's step calls it each time. On a
    2-core CPU that was ~0.3 ms a step, more than the math of a small MLP. Where NVML finds no GPU
    there is no CUDA context a fork could poison, so the cached runtime check is safe.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
        return True
    return False


def skip_redundant_log_moves(version: str | None = None) -> bool:
    """Make Lightning's per-`self.log` device move a no-op when the logged state is already on that device.

    `self.log` calls `_ResultMetric.to(value.device)`, which walks the metric module's whole
    `__dict__` with `apply_to_collection` on every call: ~0.2 ms a key, over 1 ms an epoch for five
    epoch metrics, as much as the training steps of a small epoch. The states (the running value
    and batch count) tell whether there is anything to move; when there is, Lightning's own `to` runs.
    """
    if not version_tested(version):
        return False
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    move = _ResultMetric.to
    if getattr(move, "skips_redundant_moves", False):
        return True
    if not {"is_tensor", "meta", "value", "cumulated_batch_size"} <= set(dir(_ResultMetric(_metadata(), True))):
        return False

    def to(self: _ResultMetric, *args: Any, **kwargs: Any) -> _ResultMetric:
        if self.is_tensor and len(args) == 1 and not kwargs and isinstance(args[0], torch.device):
            states = [self.value, self.cumulated_batch_size] if self.meta.is_mean_reduction else [self.value]
            if all(state.device == args[0] for state in states):
                return self
        return move(self, *args, **kwargs)

    to.skips_redundant_moves = True  # type: ignore[attr-defined]
    to.lightning_to = move  # type: ignore[attr-defined]
    _ResultMetric.to = to
    return True


def undo_log_moves() -> None:
    """Lightning's own _ResultMetric.to again."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    _ResultMetric.to = getattr(_ResultMetric.to, "lightning_to", _ResultMetric.to)


def _metadata() -> Any:
    from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata

    return _Metadata(fx="probe", name="probe")
