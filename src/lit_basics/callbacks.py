"""Callbacks the configs name: predictions to CSV, checkpoints whose last.ckpt is the last epoch, a graceful stop."""

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from lit_basics.atomic_files import atomic_write_text
from lit_basics.checkpoints import ROWS_KEY


class PredictionCSVWriter(BasePredictionWriter):
    """Write `predict` outputs as one CSV: row, target, prediction and one probability column per class.

    Args:
        output_path: the CSV file; when omitted `predictions.csv` in the run folder of the checkpoint predicted
            with (`RUN` of `RUN/checkpoints/x.ckpt`, else the checkpoint's folder), or in the logger's folder.
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path
        self.written: Path | None = None

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        path = Path(self.output_path or self.default_folder(trainer) / "predictions.csv")
        if not trainer.is_global_zero:  # every rank predicts every row (unsharded); one writes them
            return
        datamodule = trainer.datamodule
        table = predictions_table(predictions, getattr(datamodule, "classes", None),
                                  getattr(datamodule, "prediction_rows", None),
                                  getattr(datamodule, "target_to_units", None))
        atomic_write_text(path, table.to_csv(index=False))  # never a half-written CSV under the final name
        self.written = path
        print(f"predictions: {len(table)} rows -> {path}")


    @staticmethod
    def default_folder(trainer: L.Trainer) -> Path:
        """The checkpoint's run folder, else the logger's (reading trainer.log_dir is a collective: on every rank)."""
        if trainer.ckpt_path:
            folder = Path(trainer.ckpt_path).parent
            return folder.parent if folder.name == "checkpoints" else folder
        return Path(trainer.log_dir or ".")


def predictions_table(batches: list[dict[str, torch.Tensor]], classes: np.ndarray | None,
                      rows: np.ndarray | None = None, to_units: Callable[[torch.Tensor], torch.Tensor] | None = None
                      ) -> pd.DataFrame:
    """Concatenate predict_step outputs; class indices are mapped back to the data set's labels.

    `rows`: each prediction's row number in the data's own file (a CSV's data rows); 0, 1, ... when None.
    `to_units`: the DataModule's `target_to_units`, so a regression's target and prediction are in the
    target's own units (not the standardised ones the model learns).
    """
    merged = {key: torch.cat([b[key] for b in batches]).cpu() for key in batches[0]}
    for key in ("target", "prediction"):
        if key in merged and to_units is not None and merged[key].is_floating_point():
            merged[key] = to_units(merged[key])
    merged = {key: value.numpy() for key, value in merged.items()}
    count = len(merged["prediction"])
    columns: dict[str, Any] = {"row": np.arange(count) if rows is None or len(rows) != count else rows}
    for key in ("target", "prediction"):
        if key in merged:
            values = merged[key]
            columns[key] = classes[values] if classes is not None and values.dtype.kind == "i" else values
    if "probabilities" in merged:
        names = classes if classes is not None else range(merged["probabilities"].shape[1])
        for i, name in enumerate(names):
            columns[f"p_{name}"] = merged["probabilities"][:, i]
    return pd.DataFrame(columns)


class LastEpochCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `last.ckpt` is written after every epoch, not only with a new best.

    Lightning 2.6 saves `last` only when it saved a top-k checkpoint at the same step, so after a
    plateau `last.ckpt` held the best epoch: a resume redid up to `patience` epochs and `test --ckpt_path
    last` scored the best epoch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_saved_at: int | None = None
        self._rows: tuple[int, dict[str, str]] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Every checkpoint also records the digest of its data's rows per split (test/validate check it)."""
        datamodule = trainer.datamodule
        if hasattr(datamodule, "content_digest"):
            if self._rows is None or self._rows[0] != id(datamodule):
                self._rows = (id(datamodule), datamodule.content_digest())  # the rows do not change during a fit
            checkpoint[ROWS_KEY] = self._rows[1]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING or self._last_saved_at == trainer.global_step):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_at = trainer.global_step


class FitInterrupted(SystemExit):
    """Raised at an epoch boundary after SIGINT/SIGTERM, once the resumable checkpoint is written."""

    def __init__(self, signum: int, epoch: int, checkpoint: str) -> None:
        super().__init__(128 + signum)
        self.signum, self.epoch, self.checkpoint = signum, epoch, checkpoint
        self.hint = (f"resumable checkpoint {checkpoint} "
                     "(continue with the same command and --ckpt_path last)")

    def __str__(self) -> str:
        return f"{signal.Signals(self.signum).name}: stopped before epoch {self.epoch}; {self.hint}"


class GracefulStop(Callback):
    """Ctrl-C or SIGTERM stops training at the next epoch boundary with a resumable `last.ckpt`.

    The checkpoint is written when every hook of the finished epoch has run, so `fit --ckpt_path
    last` continues exactly where an uninterrupted run would be (same seed -> same metrics). A
    second Ctrl-C stops at once, without a checkpoint.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():  # the next signal acts at once
            signal.signal(sig, handler)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning registered its own SIGTERM handler (which would stop mid-epoch): ours replaces it.
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signum = self._agreed_signal(trainer)
        if signum is None:
            return
        folder = getattr(trainer.checkpoint_callback, "dirpath", None) or os.path.join(trainer.default_root_dir,
                                                                                      "checkpoints")
        path = os.path.join(folder, "last.ckpt")
        # Lightning counted this epoch as "ready" just before this hook; the checkpoint must record the
        # state after the previous epoch, which Lightning resumes as a clean start of this one.
        progress = trainer.fit_loop.epoch_progress
        progress.total.ready -= 1
        progress.current.ready -= 1
        trainer.save_checkpoint(path)
        raise FitInterrupted(signum, trainer.current_epoch, path)

    def _agreed_signal(self, trainer: L.Trainer) -> int | None:
        """In DDP every rank must stop at the same epoch: a signal seen by any rank counts for all."""
        mine = torch.tensor([self.signum or 0])
        if trainer.world_size > 1:
            mine = trainer.strategy.reduce(mine.to(trainer.strategy.root_device), reduce_op="max").cpu()
        return int(mine.item()) or None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
