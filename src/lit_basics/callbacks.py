"""Callbacks the configs name: writing predictions to CSV."""

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionCSVWriter(BasePredictionWriter):
    """Write `predict` outputs as one CSV: row, target, prediction and one probability column per class.

    Args:
        output_path: the CSV file; `<log_dir>/predictions.csv` when omitted.
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path
        self.written: Path | None = None

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        table = predictions_table(predictions, getattr(trainer.datamodule, "classes", None))
        path = Path(self.output_path or Path(trainer.log_dir or ".") / "predictions.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, path)  # never leave a half-written CSV under the final name
        self.written = path
        print(f"predictions: {len(table)} rows -> {path}")


def predictions_table(batches: list[dict[str, torch.Tensor]], classes: np.ndarray | None) -> pd.DataFrame:
    """Concatenate predict_step outputs; class indices are mapped back to the data set's labels."""
    merged = {key: torch.cat([b[key] for b in batches]).cpu().numpy() for key in batches[0]}
    columns: dict[str, Any] = {"row": np.arange(len(merged["prediction"]))}
    for key in ("target", "prediction"):
        if key in merged:
            values = merged[key]
            columns[key] = classes[values] if classes is not None and values.dtype.kind == "i" else values
    if "probabilities" in merged:
        names = classes if classes is not None else range(merged["probabilities"].shape[1])
        for i, name in enumerate(names):
            columns[f"p_{name}"] = merged["probabilities"][:, i]
    return pd.DataFrame(columns)
