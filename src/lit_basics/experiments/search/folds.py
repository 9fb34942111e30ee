"""Fit one configuration on each of k folds: the loop a k-fold search repeats for every trial.

`LightningFolds` runs each fold as a normal Lightning fit on the in-memory fast path, without
loggers, checkpoints or progress bars. `BatchedFolds` (batched_folds.py) trains many folds and
configurations as one batched program; `tune.py` only calls `fit_folds(args, on_fold, params)`
and, for a grid on the batched engine, `fit_many(configs)`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L

from lit_basics.cli import LitBasicsCLI
from lit_basics.errors import TrainingDiverged
from lit_basics.experiments.runs import QUIET, quiet_lightning
from lit_basics.models import LitFNN


@dataclass
class FoldResult:
    fold: int
    score: float  # validation accuracy at the fold's best (lowest-loss) epoch; that loss, negated, for regression
    val_loss: float
    best_epoch: int
    epochs: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch: train/loss, val/loss, val/acc
    diverged: bool = False  # its training loss became NaN or infinite (both engines stop the fold there)
    state: dict[str, Any] | None = None  # the network's state_dict at the best epoch, when the runner keeps them


class TrialDiverged(Exception):
    """A fold of the trial diverged: the trial fails (recorded as such) and the search goes on."""


class FoldRunner(Protocol):
    def fit_folds(self, args: list[str], on_fold: Callable[[FoldResult], None],
                  params: dict | None = None) -> list[FoldResult]: ...


def fold_seed(seed: int, fold: int) -> int:
    """The seed of fold `fold` in a search seeded `seed`, the same in both engines: it draws the fold
    model's initial weights (torch's global seed before the network is built) and its batch order
    (the data's shuffle seed); the batched engine also draws each model's dropout masks from it
    (LitFNN draws them from torch's global generator, seeded with it too)."""
    return seed + fold


def fold_args(folds: int, fold: int, seed: int, patience: int) -> list[str]:
    """Arguments that turn a training config into fold `fold` of a quiet, checkpoint-free search fit."""
    early_stopping = (
        "[{class_path: lightning.pytorch.callbacks.EarlyStopping, "
        f"init_args: {{monitor: val/loss, mode: min, patience: {patience}}}}}]"
    )
    return [
        f"--data.init_args.folds={folds}",
        f"--data.init_args.fold={fold}",
        f"--data.init_args.seed={seed}",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        f"--trainer.callbacks={early_stopping}",
        *QUIET,
    ]


class LightningFolds:
    """One Lightning fit per fold; the config is parsed once per trial and re-instantiated per fold."""

    def __init__(self, folds: int, seed: int = 0, patience: int = 10, keep_states: bool = False) -> None:
        self.folds, self.seed, self.patience = folds, seed, patience
        self.keep_states = keep_states  # FoldResult.state: the net at its best epoch (tune.py --ensemble)

    def fit_folds(self, args: list[str], on_fold: Callable[[FoldResult], None],
                  params: dict | None = None) -> list[FoldResult]:
        results = []
        with quiet_lightning():
            cli = LitBasicsCLI(args=[*args, *fold_args(self.folds, 0, self.seed, self.patience)], run=False,
                               save_config_callback=None)  # a fold fit writes nothing (no config.yaml in the cwd)
            for fold in range(self.folds):
                seed = fold_seed(self.seed, fold)
                cli.config.data.init_args.fold = fold
                cli.config.data.init_args.shuffle_seed = seed
                L.seed_everything(seed, verbose=False)
                cli.instantiate_classes()  # after seeding: the fold's initial weights come from its seed
                best = BestNetState()
                if self.keep_states:
                    cli.trainer.callbacks.append(best)
                started = time.perf_counter()
                try:
                    cli.trainer.fit(cli.model, cli.datamodule)
                    diverged = False
                except TrainingDiverged:
                    diverged = True
                result = fold_result(fold, cli.model, time.perf_counter() - started, diverged)
                result.state = best.state
                results.append(result)
                on_fold(result)
                if diverged:
                    break
        return results


class BestNetState(L.Callback):
    """Keeps a copy of the net at its lowest validation loss (the epoch a fold's score is read at)."""

    def __init__(self) -> None:
        self.loss, self.state = float("inf"), None

    def on_validation_end(self, trainer: L.Trainer, pl_module: LitFNN) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if trainer.sanity_checking or loss is None or not float(loss) < self.loss:
            return
        self.loss = float(loss)
        self.state = {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}


def fold_result(fold: int, model: LitFNN, seconds: float, diverged: bool = False) -> FoldResult:
    history = model.history
    best_row = min(history, key=lambda row: row.get("val/loss", float("inf"))) if history else {}
    score = model.best["hp/best_val_acc"] if model.is_classifier else -model.best["hp/best_val_loss"]
    return FoldResult(
        fold=fold,
        score=float(score),
        val_loss=float(model.best["hp/best_val_loss"]),
        best_epoch=int(best_row.get("epoch", 0)) + 1,
        epochs=len(history),
        seconds=seconds,
        history=list(history),
        diverged=diverged,
    )


def write_fold_runs(log_dir: Path, trial: int, params: dict[str, Any], results: list[FoldResult]) -> None:
    """One TensorBoard run per fold fit, `<log_dir>/trial_<n>/fold_<k>`: its curves, and its hparams and score."""
    from torch.utils.tensorboard import SummaryWriter

    from lit_basics.hparams_tab import write_session

    hparams = {k.rsplit(".", 1)[-1]: v for k, v in params.items()}
    for result in results:
        with SummaryWriter(str(log_dir / f"trial_{trial:04d}" / f"fold_{result.fold}")) as writer:
            for row in result.history:
                for key, value in row.items():
                    if key not in ("epoch", "seconds"):
                        writer.add_scalar(key, value, int(row["epoch"]))
            write_session(writer, {**hparams, "fold": result.fold},  # a session only, as LitFNN's runs
                          {"hp/score": result.score, "hp/best_val_loss": result.val_loss})
