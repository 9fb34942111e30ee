"""The command line before the CLI runs: registry names, one-line parse errors, values only it can give.

LitBasicsCLI (cli.py) calls these on the parsed config, before any class is built or file written.
"""

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import ArgsType

from lit_basics.errors import ConfigError
from lit_basics.outputs import check_name, check_writable_dir


def expand_dataset_names(args: ArgsType) -> ArgsType:
    """`--data iris` -> `--data lit_basics.data.IrisDataModule`: registry names work on the command line."""
    if not isinstance(args, list):
        return args
    from lit_basics.data import DATAMODULES

    def full(name: str) -> str:
        cls = DATAMODULES.get(name)
        return f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}" if cls else name

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--data" and i + 1 < len(out):
            out[i + 1] = full(out[i + 1])
        elif isinstance(arg, str) and arg.startswith("--data="):
            out[i] = "--data=" + full(arg.removeprefix("--data="))
    return out


def _options(*names: str) -> tuple[str, ...]:
    return tuple(f"--data.{prefix}{name}" for name in names for prefix in ("", "init_args."))


TEXT_LISTS = _options("na_values")  # values that are text, however they look
COLUMN_LISTS = _options("drop_columns", "feature_columns", "categorical_columns")  # column names, e.g. 0 or 007


def quote_text_lists(args: ArgsType) -> ArgsType:
    """List options whose items are text, as JSON lists of strings: YAML, which jsonargparse applies to every
    value, would read `--data.na_values ?` as a mapping key and `-999` or a column named `0` as a number, and
    the value would be refused (as an unknown dataset). `--data.drop_columns '[0, 1, 26]'` -> ["0", "1", "26"]."""
    if not isinstance(args, list):
        return args
    from lit_basics.data.csv_read import missing_markers

    def quoted(key: str, value: str) -> str:
        return json.dumps(missing_markers(value) if key in TEXT_LISTS else column_names(value))

    out = list(args)
    for i, arg in enumerate(out):
        if not isinstance(arg, str):
            continue
        key, eq, value = arg.partition("=")
        if key in TEXT_LISTS + COLUMN_LISTS and eq:
            out[i] = f"{key}={quoted(key, value)}"
        elif arg in TEXT_LISTS + COLUMN_LISTS and i + 1 < len(out) and isinstance(out[i + 1], str):
            out[i + 1] = quoted(arg, out[i + 1])
    return out


def column_names(value: str) -> Any:
    """`[0, 1, 'a, b']` or one name as a list of names exactly as written (YAML's flow syntax, every item text)."""
    import yaml

    try:
        names = yaml.load(value, Loader=yaml.BaseLoader)  # BaseLoader: every scalar stays a string
    except yaml.YAMLError:
        return value
    if isinstance(names, str):
        return [names] if names else []
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return value


def describe_parse_error(err: Exception, parser: Any, args: ArgsType) -> str:
    """One line from a jsonargparse error; for an unknown key, the closest known key."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    given = re.search(r"Given value: (\S+)", text)
    if text.startswith('Parser key "data"') and given:
        from lit_basics.data import DATAMODULES

        names = ", ".join(sorted(DATAMODULES))
        return f"unknown dataset {given.group(1)!r}; allowed: {names}, or a LightningDataModule class path"
    unknown = re.search(r"unrecognized arguments: (\S+)", text)
    if not unknown:
        return text if len(text) < 400 else text[:400] + " ..."
    key = unknown.group(1).split("=")[0]
    options = set()
    for candidate in _parsers(parser, args):
        options |= {opt for action in candidate._actions for opt in action.option_strings if opt.startswith("--")}
    close = difflib.get_close_matches(key, sorted(options), n=1, cutoff=0.6)
    return f"{key} is not an argument" + (f"; did you mean {close[0]}?" if close else "; see --help")


def _parsers(parser: Any, args: ArgsType) -> list[Any]:
    subcommands = getattr(getattr(parser, "_subcommands_action", None), "_name_parser_map", {})
    chosen = [subcommands[a] for a in (args or sys.argv[1:]) if isinstance(a, str) and a in subcommands]
    return chosen[:1] or [parser]


def resume_last(config: Any) -> None:
    """`--ckpt_path last`: the newest last.ckpt of this config's runs; the run continues in its folder."""
    logger = config.trainer.get("logger")
    init_args = getattr(logger, "init_args", None)
    if init_args is None:
        raise ConfigError("--ckpt_path last needs a TensorBoard logger (its folder holds the runs to resume)")
    base = Path(init_args.get("save_dir") or "logs") / (init_args.get("name") or "")
    version = init_args.get("version")
    pattern = f"{version if isinstance(version, str) else f'version_{version}'}" if version is not None else "*"
    candidates = sorted(base.glob(f"{pattern}/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ConfigError(f"--ckpt_path last: no {base}/{pattern}/checkpoints/last.ckpt to resume from")
    last = candidates[-1]
    run = last.parent.parent.name
    init_args.version = int(run.removeprefix("version_")) if re.fullmatch(r"version_\d+", run) else run
    config.ckpt_path = str(last)


def check_logger_folder(init_args: Any) -> None:
    """The TensorBoard folder can be written, and the run's name and version stay inside it."""
    if init_args is None:
        return
    check_writable_dir(init_args.get("save_dir") or "logs", "logs folder")
    for key in ("name", "version", "sub_dir"):
        if isinstance(init_args.get(key), str):
            check_name(init_args[key], f"--trainer.logger.init_args.{key}")


def check_max_epochs(trainer: Any) -> None:
    """max_epochs >= 1, or -1 with a rule that ends the fit (max_steps, max_time or early stopping)."""
    epochs = trainer.get("max_epochs")
    if epochs is None or epochs >= 1:
        return
    callbacks = trainer.get("callbacks") or []
    early_stop = any("EarlyStopping" in str(getattr(c, "class_path", c)) for c in callbacks)
    stop_rule = (trainer.get("max_steps") or -1) > 0 or trainer.get("max_time") or early_stop
    if epochs == -1 and stop_rule:
        return
    raise ConfigError(f"--trainer.max_epochs={epochs} must be >= 1 (or -1 with max_steps, max_time or early stopping)")
