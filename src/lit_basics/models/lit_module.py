"""LitFNN: the LightningModule that owns loss, metrics and optimizer for one FNN."""

import math
import pickle
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lit_basics.engine.chunked_steps import ChunkedSteps, extreme_input
from lit_basics.errors import TrainingDiverged, check_choice
from lit_basics.hparams_tab import write_session
from lit_basics.models import hparams
from lit_basics.models.fnn import build_network, weight_matrices
from lit_basics.models.losses import TASKS, make_loss, output_dim, predict, probabilities
from lit_basics.models.metrics import make_metrics
from lit_basics.models.optimizers import make_optimizer, make_scheduler


class LitFNN(ChunkedSteps, L.LightningModule):
    """A network for binary or multi-class classification or regression, and how it trains.

    The model is `self.net`, built from the architecture fields (models/hparams.py, the schema every
    engine reads) by `build_network`: the built-in FNN, or any nn.Module given as `net`. This class owns
    the loss, metrics, optimizer and the loop's bookkeeping; the speed code it calls lives in
    engine/runtime.py and engine/lightning_patches.py.

    Args:
        input_dim, num_classes, task: linked from the DataModule by the CLI. num_classes 2 -> one logit
            with a binary loss, > 2 -> one logit per class; ignored for regression.
        hidden_sizes: width of each hidden layer; its length is the depth.
        activation: a name from models/activations.py; `leaky_relu_alpha` is leaky ReLU's negative slope.
        dropout: drop probability after each hidden activation, in [0, 1).
        norm: none, batch (BatchNorm1d) or layer (LayerNorm) after each hidden linear layer.
        residual: a skip around each hidden block (a projection where the widths differ).
        init: starting weights: pytorch (nn.Linear's default), glorot (as scikit-learn's MLP) or he.
        net: `{class_path, init_args}` of any nn.Module taking input_dim and output_dim, used instead of
            the FNN; the architecture fields its constructor takes are passed to it.
        loss: auto (cross_entropy for classification, mse for regression), cross_entropy (BCE-with-logits
            when binary), hinge or mse.
        optimizer: sgd, momentum, rmsprop, adam or adamw (models/optimizers.py); `optimizer_kwargs` its own
            hyperparameters beyond lr (e.g. adam: beta1, beta2, eps).
        weight_decay: L2 penalty on weight matrices, applied by the optimizer. l1: L1 penalty, in the loss.
        scheduler: none, step, exponential, cosine or plateau (stepped once per epoch), with `scheduler_kwargs`.
        gradient_clip_val: clip the gradient norm to this value before each step (0: no clipping).

    Optimization is manual, in chunks of minibatches: engine/chunked_steps.py (ChunkedSteps) owns the
    training step; `optimizer_step_on` here is one minibatch's step.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int = 2,
        task: str = "classification",
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "relu",
        leaky_relu_alpha: float = 0.01,
        dropout: float = 0.0,
        norm: str = "none",
        residual: bool = False,
        init: str = "pytorch",
        net: dict[str, Any] | None = None,
        loss: str = "auto",
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        optimizer_kwargs: dict[str, float] | None = None,
        scheduler: str = "none",
        scheduler_kwargs: dict[str, Any] | None = None,
        gradient_clip_val: float = 0.0,
        weight_decay: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        check_choice("task", task, TASKS)
        self.save_hyperparameters()
        self.hparams["hidden_sizes"] = list(hidden_sizes)
        self.architecture, self.optimization, self.regularization = hparams.split(dict(self.hparams))
        self.loss_fn = make_loss(self.optimization.loss_for(task), task, num_classes)
        self.net = build_network(self.architecture, input_dim, output_dim(task, num_classes))
        self.val_metrics = make_metrics(task, num_classes, prefix="val/")
        self.test_metrics = make_metrics(task, num_classes, prefix="test/")
        self._sums: dict[str, torch.Tensor] = {}
        self._train_record: dict[str, list] = {"loss": [], "outputs": [], "n": []}  # per minibatch
        self.best = {"hp/best_val_loss": math.inf, **({"hp/best_val_acc": 0.0} if task == "classification" else {})}
        self.history: list[dict[str, float]] = []  # one row of epoch metrics per training epoch
        self._fit_started = 0.0

    @property
    def is_classifier(self) -> bool:
        return self.hparams.task == "classification"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def l1_penalty(self) -> torch.Tensor:
        return sum(w.abs().sum() for w in weight_matrices(self.net))

    # Sums of loss and sample counts stay on the device during an epoch and are read once at its
    # end: no host sync per step, which dominates the time of small networks. Evaluation accuracy
    # and F1 come from the metrics; training accuracy from the logits kept by _record_train_step.
    def _accumulate(self, stage: str, loss: torch.Tensor, n: int) -> None:
        step = torch.stack([loss.detach() * n, loss.new_tensor(float(n))])  # (loss * n, n)
        self._sums[stage] = self._sums[stage] + step if stage in self._sums else step

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch  # (batch, features), (batch,)
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self._accumulate(stage, loss, y.shape[0])
        if stage == "val":
            self.val_metrics.update(self._metric_input(logits), y)
        elif stage == "test":
            self.test_metrics.update(self._metric_input(logits), y)
        return loss

    def _metric_input(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.is_classifier:
            return logits.squeeze(-1)
        return predict(logits, "classification", self.hparams.num_classes)

    def optimizer_step_on(self, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One minibatch's step: loss (+ L1), backward, clipping, the optimizer's step (L2 is its weight decay)."""
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        objective = loss + self.hparams.l1 * self.l1_penalty() if self.hparams.l1 > 0 else loss
        optimizer.zero_grad(set_to_none=True)
        self.backward_objective(objective)
        if self.hparams.gradient_clip_val > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.hparams.gradient_clip_val)
        optimizer.step()
        self._record_train_step(loss, logits, y)
        return loss.detach()

    def _record_train_step(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Keep this minibatch's loss (and logits, for accuracy) on the device; reduced once at epoch end."""
        self._train_record["loss"].append(loss.detach())
        self._train_record["n"].append(y.shape[0])
        if self.is_classifier:
            self._train_record["outputs"].append((logits.detach(), y))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        batch = tuple(batch) if isinstance(batch, list | tuple) else (batch,)
        x, y = batch[0], batch[1] if len(batch) > 1 else None
        logits = self(x)
        out = {"prediction": predict(logits, self.hparams.task, self.hparams.num_classes)}
        if self.is_classifier:
            out["probabilities"] = probabilities(logits, self.hparams.num_classes)
        if y is not None:
            out["target"] = y
        return out

    def _epoch_means(self, stage: str) -> dict[str, torch.Tensor]:
        """The epoch's mean loss. Validation and test add (loss * rows, rows) over the DDP ranks before dividing:
        their shards are unpadded and may differ by a row, so a mean of the ranks' means would be off (training
        shards are padded to equal sizes, where the synced mean of means is the same)."""
        sums = self._sums.pop(stage, None)
        if sums is None:
            return {}
        if stage != "train" and self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        loss_sum, count = sums
        return {f"{stage}/loss": loss_sum / count}

    def on_train_epoch_start(self) -> None:
        for values in self._train_record.values():
            values.clear()

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("val", None)
        self.share_rank_zero_buffers()

    def on_test_epoch_start(self) -> None:
        self.share_rank_zero_buffers()

    def on_train_epoch_end(self) -> None:
        record = self._train_record
        if record["n"]:
            sizes = torch.tensor(record["n"], dtype=record["loss"][0].dtype, device=record["loss"][0].device)
            self._sums["train"] = torch.stack([torch.stack(record["loss"]) @ sizes, sizes.sum()])
        values = self._epoch_means("train")
        if record["outputs"]:
            logits, y = (torch.cat(parts) for parts in zip(*record["outputs"], strict=True))
            correct = predict(logits, "classification", self.hparams.num_classes) == y
            values["train/acc"] = correct.to(logits.dtype).mean()
        self.log_dict(values, on_epoch=True, sync_dist=True)
        if self.hparams.l1 > 0:
            self.log("train/l1_penalty", self.l1_penalty().detach(), on_epoch=True)
        self._step_scheduler()
        self._record_history()

    def _record_history(self) -> None:
        """Epoch metrics with the wall time since fit started (validation has run by now)."""
        row = {"epoch": float(self.current_epoch), "seconds": time.perf_counter() - self._fit_started}
        row.update({k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(("train/", "val/"))})
        self.history.append(row)

    def _step_scheduler(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        if self.hparams.scheduler == "plateau":
            val_loss = self.trainer.callback_metrics.get("val/loss")
            if val_loss is not None:
                scheduler.step(val_loss)
            return
        scheduler.step()

    def _in_units(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """RMSE in the target's own units (the DataModule standardises a regression target: its std is
        `target_scale`); the standardised one stays as `<stage>/rmse_standardised`. The loss is the objective's."""
        scale = getattr(self.trainer.datamodule, "target_scale", None) if self._trainer is not None else None
        key = f"{stage}/rmse"
        if self.is_classifier or key not in values or scale is None:
            return values
        return {**values, key: values[key] * float(scale), f"{stage}/rmse_standardised": values[key]}

    def on_validation_epoch_end(self) -> None:
        values = self._in_units("val", {**self._epoch_means("val"), **self.val_metrics.compute()})
        self.val_metrics.reset()
        if "val/loss" in values and not torch.isfinite(values["val/loss"]):  # never a silent inf best loss
            cause = extreme_input(self.trainer.datamodule, "val") or "the validation rows give no finite loss"
            raise TrainingDiverged(f"validation loss is {float(values['val/loss'])} at epoch {self.current_epoch}; "
                                   f"{cause}")
        self.log_dict(values, on_epoch=True, sync_dist=True)
        if not self.trainer.sanity_checking:
            self._log_best(values)

    def on_test_epoch_end(self) -> None:
        values = self._in_units("test", {**self._epoch_means("test"), **self.test_metrics.compute()})
        self.test_metrics.reset()
        self.log_dict(values, on_epoch=True, sync_dist=True)

    def _log_best(self, values: dict[str, torch.Tensor]) -> None:
        """Track the best epoch's values (lowest validation loss: the epoch the checkpoint keeps, and
        its accuracy, not the highest accuracy of any epoch); they reach TensorBoard's HPARAMS tab at
        the end of fit."""
        loss = float(values["val/loss"])
        if loss < self.best["hp/best_val_loss"]:
            self.best["hp/best_val_loss"] = loss
            if "val/acc" in values:
                self.best["hp/best_val_acc"] = float(values["val/acc"])

    def on_fit_end(self) -> None:
        for logger in self.loggers:
            logger.log_metrics(dict(self.best), step=self.global_step)

    def on_fit_start(self) -> None:
        """Record hyperparameters (model and data) with placeholder metrics so TensorBoard's HPARAMS tab lists the
        run, as a session only (lit_basics.hparams_tab: then every run's data options get their columns)."""
        self._fit_started = time.perf_counter()
        hparams = dict(self.hparams)
        if self.trainer.datamodule is not None:
            hparams.update({f"data/{k}": v for k, v in dict(self.trainer.datamodule.hparams).items()})
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(hparams, {})  # hparams.yaml; with no metrics it writes no summary
                if self.trainer.is_global_zero:
                    write_session(logger.experiment, hparams, self.best)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep what a resumed fit needs to continue exactly: best values, history, the RNG (dropout)."""
        checkpoint["lit_basics"] = {"best": dict(self.best), "history": list(self.history),
                                    "torch_rng": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lit_basics")
        if state and self._trainer is not None and self.trainer.state.fn == "fit":  # resuming, not loading
            self.best.update(state["best"])
            self.history = list(state["history"])
            torch.set_rng_state(state["torch_rng"])

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = make_optimizer(hp.optimizer, self.net, hp.lr, hp.momentum, hp.weight_decay, hp.optimizer_kwargs)
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        scheduler = make_scheduler(hp.scheduler, optimizer, hp.scheduler_kwargs, max_epochs)
        if scheduler is None:
            return optimizer
        config = {"scheduler": scheduler, "interval": "epoch"}
        if hp.scheduler == "plateau":
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


def load_model(checkpoint_path: str) -> LitFNN:
    """Load a LitFNN checkpoint on the CPU (weights only, its digest verified), with a one-line error for a missing,
    corrupt or altered file."""
    from lit_basics.checkpoints import describe_checkpoint_error, read_checkpoint

    read_checkpoint(checkpoint_path)  # the digest: flipped bytes are refused before the weights are used
    try:
        return LitFNN.load_from_checkpoint(checkpoint_path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, OSError, pickle.UnpicklingError) as err:
        raise describe_checkpoint_error(checkpoint_path, err) from None
