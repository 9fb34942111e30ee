"""LitBasicsCLI: LightningCLI with the FNN, any registered DataModule, linked sizes and a final test."""

import contextlib
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentError
from lightning import LightningDataModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from lit_basics.atomic_files import describe_disk_error, find_disk_error
from lit_basics.callbacks import FitInterrupted
from lit_basics.checkpoints import (
    check_data_rows,
    check_finite,
    check_resume,
    check_run_identity,
    describe_checkpoint_error,
    is_checkpoint_error,
    newest_best_checkpoint,
    read_checkpoint,
)
from lit_basics.cli_arguments import (
    check_accelerator,
    check_logger_folder,
    check_max_epochs,
    check_run_folders,
    check_seed,
    check_trainer_limits,
    check_yaml_sizes,
    continue_run,
    describe_parse_error,
    expand_dataset_names,
    quote_text_lists,
    resume_last,
)
from lit_basics.engine import lightning_patches
from lit_basics.engine.runtime import set_torch_threads
from lit_basics.errors import ConfigError
from lit_basics.memory import check_fits
from lit_basics.models import LitFNN
from lit_basics.run_identity import changed_resume_error, identity_of, is_launcher, run_lock, write_identity

CONFIG_DIR = Path(os.environ.get("LIT_BASICS_CONFIGS", Path(__file__).resolve().parents[2] / "configs"))
TRAINER_DEFAULTS = CONFIG_DIR / "trainer" / "default.yaml"

# Noise that says nothing about the run: an advert printed at every fit, and a deprecation inside
# Lightning's own pytree code.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# Predictions are written in loader order, so the batch indices Lightning cannot infer are not needed.
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
# Resuming with --ckpt_path last continues in the run's own checkpoint folder, on purpose.
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
# compare.py and tune.py run this CLI in-process with their own argv: intended, not a mistake.
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
for _handler in logging.getLogger("lightning.pytorch").handlers:
    _handler.addFilter(lambda record: "litlogger" not in record.getMessage())


LINKED_FROM_DATA = ("input_dim", "num_classes", "task")  # set from the DataModule at instantiation
UNLOGGED = ("validate", "predict")  # they score or use a run's checkpoint: no run of their own in TensorBoard


class LitBasicsCLI(LightningCLI):
    """`fit | validate | test | predict` for LitFNN on any DataModule.

    The DataModule's `num_features`, `num_classes` and `task` are linked into the model, so sizes are
    never typed by hand. configs/trainer/default.yaml (accelerator auto, early stopping, checkpoints,
    TensorBoard under logs/) is loaded before the user's --config files. After `fit`, the best
    checkpoint is tested and a short table of metrics is printed; `self.metrics` keeps them.
    """

    def __init__(self, args: ArgsType = None, run: bool = True, **kwargs: Any) -> None:
        self.metrics: dict[str, Any] = {}
        lightning_patches.apply()
        args = quote_text_lists(expand_dataset_names(sys.argv[1:] if args is None else args))
        check_yaml_sizes(args)
        self._with_subcommands = run
        defaults = [str(TRAINER_DEFAULTS)] if TRAINER_DEFAULTS.is_file() else []
        parser_kwargs = {"default_config_files": defaults, "exit_on_error": False}
        if run:  # the main parser raises what its subcommand parsers find: it must not exit either
            parser_kwargs = {"exit_on_error": False, **{name: parser_kwargs for name in self.subcommands()}}
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

    def parse_arguments(self, parser, args: ArgsType) -> None:
        """Parse; a bad key, value or config file becomes one ConfigError line (with a did-you-mean)."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            raise ConfigError(describe_parse_error(err, parser, args)) from None
        subcommand = self.config.get("subcommand")
        check_seed(self.config[subcommand] if subcommand else self.config)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI puts the checkpoint's model hyperparameters in place of the config's: say which changed.

        The checkpoint's network is the one that runs (its weights fit no other); a value given in a
        --config file or on the command line that differs is named in one notice line, never dropped
        silently. Unreadable checkpoints get the same one-line errors as elsewhere.
        """
        subcommand = self.config.get("subcommand")
        before = self.config[subcommand].model.as_dict() if subcommand else {}
        try:
            super()._parse_ckpt_path()
        except Exception as err:
            path = self.config[self.config.subcommand].get("ckpt_path")
            raise describe_checkpoint_error(str(path), err) from None
        if not subcommand:
            return
        after = self.config[subcommand].model.as_dict()
        changed = [f"{key} {_brief(after[key])} (config: {_brief(before[key])})" for key in sorted(after)
                   if key in before and key not in LINKED_FROM_DATA and after[key] != before[key]]
        if changed and subcommand == "fit":
            path = self.config.fit.ckpt_path
            raise changed_resume_error(f"fit --ckpt_path {path!r}: the checkpoint was trained with", changed)
        if changed:
            print(f"note: the checkpoint's model settings are used: {'; '.join(changed)}", file=sys.stderr)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_features", "model.input_dim", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.task", "model.task", apply_on="instantiate")
        parser.add_argument(
            "--torch_threads", type=int, default=1,
            help="intra-op CPU threads (1: fastest for networks this small, and steady when other work keeps a core "
                 "busy, where 2 threads ran a CSV fit 7-15x slower); 0 keeps torch's default (one per core)"
        )
        parser.add_argument(
            "--allow_transfer", type=bool, default=False,
            help="use a --ckpt_path trained on other data or with another architecture (differences are printed)",
        )
        if not self._with_subcommands:  # run=False has no fit/test arguments; the defaults file sets this one
            parser.add_argument("--weights_only", type=bool | None, default=None, help="unused without a subcommand")

    def before_instantiate_classes(self) -> None:
        """Name the TensorBoard run after the data set when the config leaves the name empty."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        if init_args is not None and "name" in init_args and init_args.name is None:
            data_class = import_class(config.data.class_path)
            run_name = getattr(data_class, "run_name", None)  # e.g. a CSV file's stem
            init_args.name = (run_name(config.data.get("init_args") or {}) if run_name
                              else getattr(data_class, "name", data_class.__name__.lower()))
        set_torch_threads(config.get("torch_threads") or 0)
        check_logger_folder(init_args)
        check_accelerator(config.trainer)
        if self.subcommand == "fit":
            check_not_an_ensemble(config.model.get("net"))
        if self.subcommand in ("fit", None):  # None: run=False, a fit that compare.py or tune.py runs
            check_max_epochs(config.trainer)
            check_trainer_limits(config.trainer)
        if config.get("ckpt_path") == "last":
            resume_last(config, fit=self.subcommand == "fit")
        if self.subcommand == "fit" and config.get("ckpt_path"):
            continue_run(config)
        if torch.cuda.is_available():
            torch.set_float32_matmul_precision("high")

    def instantiate_classes(self) -> None:
        """Refuse a network that cannot fit in the device's memory before it is built."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        hidden = list(config.model.get("hidden_sizes") or [])
        data = config.data.get("init_args") or {}
        batch, eval_batch = data.get("batch_size", 32), data.get("eval_batch_size", 1024)
        if hidden and all(isinstance(h, int) and h > 0 for h in hidden) and all(
                isinstance(b, int) and b > 0 for b in (batch, eval_batch)):
            check_fits(hidden, batch, eval_batch, config.trainer.get("accelerator"), self.subcommand == "fit")
        try:
            super().instantiate_classes()
        except Exception as err:
            found, path = find_config_error(err), config.get("ckpt_path")
            if found is None or not path:
                raise
            raise ConfigError(f"checkpoint {str(path)!r} does not fit this run: {found}") from None

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """`validate` and `predict` run without a logger and write no config.yaml: no version_N folder, no event
        file, so TensorBoard's run list holds the fits (and tests) only. validate prints its metrics;
        predict writes predictions.csv into the checkpoint's run folder (PredictionCSVWriter)."""
        if self.subcommand in UNLOGGED:
            self.save_config_callback = None
            kwargs["logger"] = False
        return super().instantiate_trainer(**kwargs)

    def check_checkpoint(self, subcommand: str) -> None:
        """test/predict/validate need a checkpoint; any checkpoint must match this run's data and model."""
        config = self.config_init[subcommand]
        path = config.get("ckpt_path")
        if path is None and subcommand != "fit":
            logger = getattr(self.trainer, "logger", None) or self._get(self.config_init, "trainer", {}).get("logger")
            newest = newest_best_checkpoint(getattr(logger, "save_dir", None), getattr(logger, "name", None))
            hint = f", e.g. the newest: --ckpt_path {newest}" if newest else " (written by fit under logs/)"
            raise ConfigError(f"{subcommand} needs --ckpt_path: without one the model is untrained{hint}")
        if path is None or path in ("best", "last", "hpc", "registry"):
            return
        checkpoint = read_checkpoint(str(path))
        notes = check_run_identity(str(path), checkpoint, self.datamodule, dict(self.model.hparams),
                                   bool(config.get("allow_transfer")))
        for note in notes:
            print(f"transfer: {note}", file=sys.stderr)
        rows_note = check_data_rows(str(path), checkpoint, self.datamodule,
                                    "predict" if config.get("allow_transfer") else subcommand)
        if rows_note:
            print(f"note: {rows_note}", file=sys.stderr)
        if subcommand == "fit":
            check_resume(str(path), checkpoint, self.trainer.max_epochs)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; on failure remove the run folder it created if nothing worth keeping is in it."""
        log_dir = self.trainer.log_dir
        existed = log_dir is not None and Path(log_dir).exists()
        try:
            check_run_folders(self.trainer, subcommand)
            self.check_checkpoint(subcommand)
            run_dir = log_dir if self.trainer.logger is not None else None  # without a logger: the cwd
            with run_lock(run_dir) if subcommand == "fit" and run_dir else contextlib.nullcontext():
                super()._run_subcommand(subcommand)
        except BaseException as err:
            if log_dir and not existed and not any(Path(log_dir).rglob("*.ckpt")):
                shutil.rmtree(log_dir, ignore_errors=True)
            checkpoint = self.config_init[subcommand].get("ckpt_path")
            if checkpoint and is_checkpoint_error(err):
                raise describe_checkpoint_error(str(checkpoint), err) from None
            raise

    def before_fit(self) -> None:
        self._fit_start = time.perf_counter()
        if self.trainer.logger is not None and self.trainer.log_dir and is_launcher():
            write_identity(self.trainer.log_dir, identity_of(self.config["fit"]))

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
        check_finite(self.metrics, "test", self.config_init["test"].get("ckpt_path"))

    def after_validate(self) -> None:
        self.metrics = _floats(self.trainer.callback_metrics)
        check_finite(self.metrics, "validate", self.config_init["validate"].get("ckpt_path"))


def _brief(value: Any, limit: int = 100) -> str:
    """A value's repr for a one-line notice, cut at `limit` characters (an ensemble's members run to kilobytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_not_an_ensemble(net: Any) -> None:
    """An ensemble config (tune.py --ensemble/--pack) holds trained members: fitting it would start them anew."""
    if isinstance(net, dict) and net.get("class_path") == "lit_basics.models.ensemble.Ensemble":
        raise ConfigError("fit: this config's model.net is an ensemble of trained networks (tune.py --ensemble or "
                          "--pack wrote it); use it with test, validate or predict, and build a new one with tune.py")


def import_class(class_path: str) -> type:
    """`package.module.Name` -> the class it names."""
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def print_metrics_table(metrics: dict[str, Any]) -> None:
    """A short two-column table: best validation and test metrics, then where the run lives."""
    keys = [k for k in metrics if k.startswith(("hp/best", "test/"))]
    rows = [(k, f"{metrics[k]:.4g}") for k in keys]
    rows += [(k, str(metrics[k])) for k in ("epochs", "best_model_path", "log_dir") if k in metrics]
    if "fit_seconds" in metrics:
        rows.append(("fit_seconds", f"{metrics['fit_seconds']:.1f}"))
    width = max(len(k) for k, _ in rows) if rows else 0
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def cli_main(args: ArgsType = None, resume_hint: str | None = None) -> dict[str, Any]:
    """Run the CLI (in-process when `args` is a list) and return its final metrics.

    `resume_hint` replaces "continue with --ckpt_path last" after Ctrl-C/SIGTERM for a command that
    runs this CLI itself (compare.py).
    A ConfigError (a bad value) is printed as one line and exits with status 2.
    """
    try:
        cli = LitBasicsCLI(args=args)
    except FitInterrupted as stop:
        stop.hint = resume_hint or stop.hint
        print(f"interrupted: {stop}", file=sys.stderr)
        raise SystemExit(stop.code) from None
    except Exception as err:
        config_error, disk_error = find_config_error(err), find_disk_error(err)
        if config_error is None and disk_error is None:
            raise
        print(f"error: {config_error or describe_disk_error(disk_error)}", file=sys.stderr)
        raise SystemExit(2) from None
    end_process_group()
    return cli.metrics


def end_process_group() -> None:
    """Destroy a DDP run's process group once every rank finished: left to interpreter shutdown, Gloo's
    worker threads can abort the process (SIGABRT, 'terminate called without an active exception') after
    a successful run. Not after an error, where a rank still in a collective would make it hang."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def find_config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind `err`, also when jsonargparse wrapped it while instantiating a class."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ConfigError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
