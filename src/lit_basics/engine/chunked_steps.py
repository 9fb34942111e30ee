"""Chunked manual optimisation: the Lightning-side speed code LitFNN inherits, apart from the model.

A training batch may be a chunk `(x, y, batch_size)` of consecutive minibatches (data/batching.py's
TensorBatchLoader): one Lightning step then takes one optimizer step per minibatch, so Lightning's
per-step overhead, which outweighs the math of a small network, is paid once per chunk. With 32-bit
precision on one device, backward and the optimizer step are called directly (LightningOptimizer and
manual_backward add ~50 us a step with nothing to do there; engine/runtime.py) and the global step is
counted as Lightning would. The module supplies `optimizer_step_on(optimizer, x, y) -> loss` (one
minibatch's step, calling `self.backward_objective`) and `net`.
"""

from typing import Any

import torch

from lit_basics.engine.runtime import plain_fp32_single_device
from lit_basics.errors import TrainingDiverged
from lit_basics.models.fnn import skips_single_row


class ChunkedSteps:
    """Mixin for a LightningModule with `automatic_optimization = False`."""

    _direct_steps: bool | None = None  # decided at the first step

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor | None:
        x, y = batch[0], batch[1]  # (rows, features), (rows,)
        size = int(batch[2]) if len(batch) > 2 else len(y)
        if self._direct_steps is None:
            self._direct_steps = plain_fp32_single_device(self.trainer)
        optimizer = self.optimizers(use_pl_optimizer=not self._direct_steps)
        steps, loss = 0, None
        for start in range(0, len(y), size):
            if skips_single_row(self.net, len(y[start : start + size])):
                continue
            loss = self.optimizer_step_on(optimizer, x[start : start + size], y[start : start + size])
            steps += 1
        if self._direct_steps:  # the bookkeeping LightningOptimizer.step would have done: global_step
            self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.increment_by(steps)
        if loss is not None:  # the progress bar's running loss (read when it redraws)
            self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, logger=False)
        if loss is not None and not torch.isfinite(loss):  # one host sync per chunk, not per step
            cause = extreme_input(getattr(self.trainer, "datamodule", None))
            raise TrainingDiverged(
                f"training diverged at epoch {self.current_epoch} (loss {float(loss)}); "
                + (cause or f"lower the learning rate (lr={self.hparams.lr:g}) or normalise the data")
            )
        return loss

    def backward_objective(self, objective: torch.Tensor) -> None:
        if self._direct_steps:
            objective.backward()
        else:
            self.manual_backward(objective)

    def optimizer_step_on(self, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def share_rank_zero_buffers(self) -> None:
        """Give every DDP rank rank 0's buffers (BatchNorm's running statistics) before evaluating.

        DDP keeps parameters equal, but under manual optimisation Lightning turns off its buffer sync, and on
        the CPU there is no SyncBatchNorm: each rank's running statistics follow its own rows. Rank 0's are
        the ones its checkpoint saves, so evaluating with them scores the checkpoint on every rank.
        """
        if self._trainer is None or self.trainer.world_size <= 1:
            return
        for buffer in self.net.buffers():  # (features,) statistics and a step count: a few small broadcasts
            torch.distributed.broadcast(buffer, src=0)


EXTREME = 1e4  # standardised inputs this far from the mean (in training-split standard deviations) are suspect


def extreme_input(datamodule: Any, split: str = "train") -> str | None:
    """The input column to blame for a non-finite loss on `split`: one whose values are not finite or lie EXTREME
    or more training standard deviations out (a huge value in the file), by the DataModule's feature names."""
    tensors = getattr(datamodule, "tensors", None) or {}
    if split not in tensors:
        return None
    x = tensors[split][0]
    if x.ndim != 2 or x.numel() == 0:
        return None
    size = torch.where(torch.isfinite(x), x.abs(), torch.full_like(x, float("inf"))).amax(0)  # (features,)
    column = int(size.argmax())
    if not float(size[column]) >= EXTREME:
        return None
    names = datamodule.feature_names() if hasattr(datamodule, "feature_names") else None
    transformer = getattr(datamodule, "transformer", None)  # a CSV's ColumnTransformer: "num__price" -> price
    if not names and hasattr(transformer, "get_feature_names_out"):
        names = [str(n).split("__", 1)[-1] for n in transformer.get_feature_names_out()]
    name = repr(names[column]) if names and column < len(names) else f"#{column}"
    value = float(size[column])
    shown = "a value that is not finite after standardising" if value == float("inf") else (
        f"a value {value:.3g} standard deviations from its training mean")
    return f"input column {name} of the {split} rows holds {shown}; fix or drop that value, or mark it as missing"
