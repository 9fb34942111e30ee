"""LitBasicsCLI: LightningCLI with the FNN, any registered DataModule, linked sizes and a final test."""

import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from lit_basics.engine.runtime import set_torch_threads
from lit_basics.errors import ConfigError
from lit_basics.models import LitFNN

CONFIG_DIR = Path(os.environ.get("LIT_BASICS_CONFIGS", Path(__file__).resolve().parents[2] / "configs"))
TRAINER_DEFAULTS = CONFIG_DIR / "trainer" / "default.yaml"

# Noise that says nothing about the run: an advert printed at every fit, and a deprecation inside
# Lightning's own pytree code.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# Predictions are written in loader order, so the batch indices Lightning cannot infer are not needed.
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
# compare.py and tune.py run this CLI in-process with their own argv: intended, not a mistake.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
for _handler in logging.getLogger("lightning.pytorch").handlers:
    _handler.addFilter(lambda record: "litlogger" not in record.getMessage())


class LitBasicsCLI(LightningCLI):
    """`fit | validate | test | predict` for LitFNN on any DataModule.

    The DataModule's `num_features`, `num_classes` and `task` are linked into the model, so sizes are
    never typed by hand. configs/trainer/default.yaml (accelerator auto, early stopping, checkpoints,
    TensorBoard under logs/) is loaded before the user's --config files. After `fit`, the best
    checkpoint is tested and a short table of metrics is printed; `self.metrics` keeps them.
    """

    def __init__(self, args: ArgsType = None, run: bool = True, exit_on_error: bool = True, **kwargs: Any) -> None:
        self.metrics: dict[str, Any] = {}
        defaults = [str(TRAINER_DEFAULTS)] if TRAINER_DEFAULTS.is_file() else []
        parser_kwargs = {"default_config_files": defaults, "exit_on_error": exit_on_error}
        if run:
            parser_kwargs = {name: parser_kwargs for name in ("fit", "validate", "test", "predict")}
        super().__init__(
            LitFNN,
            LightningDataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs=parser_kwargs,
            args=args,
            run=run,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_features", "model.input_dim", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.task", "model.task", apply_on="instantiate")
        parser.add_argument(
            "--torch_threads", type=int, default=0, help="intra-op CPU threads; 0 keeps torch's default"
        )

    def before_instantiate_classes(self) -> None:
        """Name the TensorBoard run after the data set when the config leaves the name empty."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        if init_args is not None and "name" in init_args and init_args.name is None:
            data_class = _import(config.data.class_path)
            init_args.name = getattr(data_class, "name", data_class.__name__.lower())
        set_torch_threads(config.get("torch_threads") or 0)
        if torch.cuda.is_available():
            torch.set_float32_matmul_precision("high")

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; on failure remove the run folder it created if nothing worth keeping is in it."""
        log_dir = self.trainer.log_dir
        existed = log_dir is not None and Path(log_dir).exists()
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if log_dir and not existed and not any(Path(log_dir).rglob("*.ckpt")):
                shutil.rmtree(log_dir, ignore_errors=True)
            raise

    def before_fit(self) -> None:
        self._fit_start = time.perf_counter()

    def after_fit(self) -> None:
        fit_seconds = time.perf_counter() - self._fit_start
        checkpoint = self.trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") or None
        fit_metrics = {**_floats(self.trainer.callback_metrics), **self.model.best}
        if self.trainer.interrupted:
            self.metrics = {**fit_metrics, "interrupted": True}
            return
        tested = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        self.metrics = {
            **fit_metrics,
            **(tested[0] if tested else {}),
            "epochs": self.trainer.current_epoch,
            "fit_seconds": fit_seconds,
            "best_model_path": best,
            "log_dir": self.trainer.log_dir,
            "history": list(self.model.history),
            "hparams": dict(self.model.hparams),
            "data_hparams": dict(getattr(self.datamodule, "hparams", {})),
        }
        if self.trainer.is_global_zero:
            print_metrics_table(self.metrics)

    def after_test(self) -> None:
        self.metrics = _floats(self.trainer.callback_metrics)
        if self.trainer.is_global_zero:
            print_metrics_table(self.metrics)

    def after_validate(self) -> None:
        self.metrics = _floats(self.trainer.callback_metrics)


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def print_metrics_table(metrics: dict[str, Any]) -> None:
    """A short two-column table: best validation and test metrics, then where the run lives."""
    keys = [k for k in metrics if k.startswith(("hp/best", "test/"))]
    rows = [(k, f"{metrics[k]:.4f}") for k in keys]
    rows += [(k, str(metrics[k])) for k in ("epochs", "best_model_path", "log_dir") if k in metrics]
    if "fit_seconds" in metrics:
        rows.append(("fit_seconds", f"{metrics['fit_seconds']:.1f}"))
    width = max(len(k) for k, _ in rows) if rows else 0
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def cli_main(args: ArgsType = None) -> dict[str, Any]:
    """Run the CLI (in-process when `args` is a list) and return its final metrics.

    A ConfigError (a bad value) is printed as one line and exits with status 2.
    """
    try:
        cli = LitBasicsCLI(args=args)
    except Exception as err:
        config_error = find_config_error(err)
        if config_error is None:
            raise
        print(f"error: {config_error}", file=sys.stderr)
        raise SystemExit(2) from None
    return cli.metrics


def find_config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind `err`, also when jsonargparse wrapped it while instantiating a class."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ConfigError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
