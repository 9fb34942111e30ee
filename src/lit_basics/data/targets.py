"""A regression target in standard units for training and in its own units for everything a user reads.

ArrayDataModule fits the scaler on the training rows; a checkpoint carries it (`target_scaler` in the
DataModule's state_dict), so predictions from a checkpoint come back in the units it was trained in.
"""

from typing import Any

import numpy as np
import torch


def target_scaler_of(y_train: np.ndarray) -> tuple[float, float]:
    """(mean, std) of training targets; std 1.0 for a constant target."""
    y_train = np.asarray(y_train, dtype=np.float64)
    return float(y_train.mean()), float(y_train.std()) or 1.0


class TargetScaling:
    """Mixin of ArrayDataModule: `target_scaler` (mean, std) or None, `task`, and `target_restored`."""

    target_scaler: tuple[float, float] | None
    target_restored: bool
    task: str

    def fit_target_scaler(self, y_train: np.ndarray) -> None:
        """Mean and std of the training targets, unless a checkpoint's were restored."""
        if not self.target_restored:
            self.target_scaler = target_scaler_of(y_train)

    def restore_target_scaler(self, state: dict[str, Any]) -> bool:
        """Take a checkpoint's scaler (its state_dict); True when there was one to take."""
        saved = state.get("target_scaler")
        if saved is None or self.task != "regression":
            return False
        self.target_scaler, self.target_restored = (float(saved[0]), float(saved[1])), True
        return True

    @property
    def target_scale(self) -> float:
        """The std the regression target was divided by (1.0 when not standardised): RMSE in units = RMSE * this."""
        return 1.0 if self.target_scaler is None else float(self.target_scaler[1])

    def target_to_units(self, t: torch.Tensor) -> torch.Tensor:
        """Model outputs or targets (standardised for a regression) in the target's own units; identity otherwise."""
        if self.target_scaler is None or self.task != "regression":
            return t
        mean, std = self.target_scaler
        return t.double() * std + mean
