"""Run CLI fits in-process, quietly, and turn their metric dicts into table rows."""

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lit_basics.cli import LitBasicsCLI, cli_main, find_config_error, import_class
from lit_basics.errors import ConfigError

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
HPARAM_COLUMNS = ("hidden_sizes", "activation", "dropout", "loss", "optimizer", "lr", "momentum", "weight_decay", "l1")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-run banners and the CLI's printed table while many runs go by."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_args(label: str, args: list[str]) -> LitBasicsCLI:
    """Parse and instantiate (without running) to fail before any run on a bad key or value."""
    try:
        with quiet_lightning():
            return LitBasicsCLI(args=[*args, *QUIET], run=False)
    except Exception as err:
        cause = find_config_error(err) or err
        message = " ".join(line.strip() for line in str(cause).splitlines()[:2])
        raise ConfigError(f"{label}: {message}") from None


def fit(args: list[str], save_dir: str, name: str, version: str, seed: int,
        resume_hint: str | None = None) -> dict[str, Any]:
    """One `fit` with its TensorBoard run at save_dir/name/version; returns the CLI's metrics.

    A run folder left by an earlier run of the same experiment is replaced, so TensorBoard never
    overlays stale curves on new ones. `resume_hint`: how the calling command continues after Ctrl-C/SIGTERM.
    """
    shutil.rmtree(Path(save_dir) / name / version, ignore_errors=True)
    run_args = [
        "fit",
        *args,
        f"--seed_everything={seed}",
        f"--data.init_args.shuffle_seed={seed}",
        f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--trainer.logger.init_args.name={name}",
        f"--trainer.logger.init_args.version={version}",
        *QUIET,
    ]
    with quiet_lightning():
        return cli_main(run_args, resume_hint=resume_hint)


def result_row(metrics: dict[str, Any], target_accuracy: float | None = None) -> dict[str, Any]:
    """One table row: hyperparameters, best/test metrics, gaps, epochs, times."""
    hp = metrics.get("hparams", {})
    history = metrics.get("history", [])
    last = history[-1] if history else {}
    row: dict[str, Any] = {k: hp.get(k) for k in HPARAM_COLUMNS}
    row["hidden_sizes"] = str(list(hp.get("hidden_sizes", [])))
    row["batch_size"] = metrics.get("data_hparams", {}).get("batch_size")
    row["best_val_loss"] = metrics.get("hp/best_val_loss")
    row["best_val_acc"] = metrics.get("hp/best_val_acc") if "val/acc" in last else None
    for key in ("test/acc", "test/f1", "test/loss", "test/rmse", "test/r2"):
        if key in metrics:
            row[key.replace("/", "_")] = metrics[key]
    row["final_train_loss"] = last.get("train/loss")
    row["final_val_loss"] = last.get("val/loss")
    row["loss_gap"] = _diff(last.get("val/loss"), last.get("train/loss"))
    row["train_val_gap"] = _diff(last.get("train/acc"), last.get("val/acc"))
    row["epochs"] = metrics.get("epochs")
    row["fit_seconds"] = metrics.get("fit_seconds")
    row["seconds_per_epoch"] = metrics["fit_seconds"] / len(history) if history and "fit_seconds" in metrics else None
    row["time_to_target"] = time_to_target(history, target_accuracy)
    row["log_dir"] = metrics.get("log_dir")
    row["best_model_path"] = metrics.get("best_model_path")
    return row


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def time_to_target(history: list[dict[str, float]], target: float | None) -> float | None:
    """Seconds of fit until val accuracy first reached `target` (None if never, or no target)."""
    if target is None:
        return None
    for row in history:
        if row.get("val/acc", -1.0) >= target:
            return row["seconds"]
    return None


def load_run_data(log_dir: str):
    """The DataModule of a finished run, rebuilt from the config.yaml it saved, set up on the CPU."""
    config = yaml.safe_load((Path(log_dir) / "config.yaml").read_text())
    datamodule = import_class(config["data"]["class_path"])(**config["data"].get("init_args", {}))
    datamodule.setup("fit")
    return datamodule
