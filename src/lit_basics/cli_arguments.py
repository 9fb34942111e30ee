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


def resume_last(config: Any, fit: bool) -> None:
    """`--ckpt_path last`: the newest last.ckpt of a run with this config's identity; the run continues in its folder.

    For fit the whole identity must match (data, model, seed, trainer limits); for test, validate and
    predict the data and model (lit_basics.run_identity).
    """
    from lit_basics.run_identity import choose_run, identity_of, logger_version

    init_args = _logger_init_args(config)
    base = Path(init_args.get("save_dir") or "logs") / (init_args.get("name") or "")
    version = init_args.get("version")
    pattern = f"{version if isinstance(version, str) else f'version_{version}'}" if version is not None else "*"
    last = choose_run(base, pattern, identity_of(config), fit)
    init_args.version = logger_version(last.parent.parent.name)
    config.ckpt_path = str(last)


def continue_run(config: Any) -> None:
    """`fit --ckpt_path RUN/checkpoints/x.ckpt` continues in RUN's own folder, with RUN's settings."""
    from lit_basics.run_identity import check_resume_identity, identity_of, logger_version, run_folder_of

    init_args = _logger_init_args(config)
    base = Path(init_args.get("save_dir") or "logs") / (init_args.get("name") or "")
    run = run_folder_of(config.ckpt_path, base)
    if run is None:
        return
    if init_args.get("version") is None:
        init_args.version = logger_version(run)
    check_resume_identity(base / run, identity_of(config))


def _logger_init_args(config: Any) -> Any:
    init_args = getattr(config.trainer.get("logger"), "init_args", None)
    if init_args is None:
        raise ConfigError("--ckpt_path last needs a TensorBoard logger (its folder holds the runs to resume)")
    return init_args


def check_logger_folder(init_args: Any) -> None:
    """The TensorBoard folder can be written, and the run's name and version stay inside it."""
    if init_args is None:
        return
    save_dir = init_args.get("save_dir") or "logs"
    check_writable_dir(save_dir, "logs folder")
    for key in ("name", "version", "sub_dir"):
        if isinstance(init_args.get(key), str):
            check_name(init_args[key], f"--trainer.logger.init_args.{key}")
    if isinstance(init_args.get("name"), str) and init_args["name"]:
        check_writable_dir(Path(save_dir) / init_args["name"], "run name folder")


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


def check_trainer_limits(trainer: Any) -> None:
    """Limits that cannot all hold: min_epochs above max_epochs (or min_steps above max_steps), and a
    minimum of epochs or steps beside max_time (Lightning keeps training past max_time to reach it)."""
    pairs = (("min_epochs", "max_epochs"), ("min_steps", "max_steps"))
    for low_key, high_key in pairs:
        low, high = trainer.get(low_key), trainer.get(high_key)
        if isinstance(low, int) and isinstance(high, int) and high >= 0 and low > high:
            raise ConfigError(f"--trainer.{low_key}={low} is larger than --trainer.{high_key}={high}; "
                              f"lower {low_key} or raise {high_key}")
    for key in ("min_epochs", "min_steps"):
        value = trainer.get(key)
        if trainer.get("max_time") and isinstance(value, int) and value > 0:
            raise ConfigError(f"--trainer.{key}={value} with --trainer.max_time={trainer.get('max_time')}: "
                              f"Lightning would train past max_time to reach {key}; give one of the two")


SEED_RANGE = (0, 2**32 - 1)  # numpy's


def check_seed(config: Any) -> None:
    """--seed_everything is true/false or an integer numpy accepts."""
    seed = config.get("seed_everything")
    if isinstance(seed, bool) or seed is None:
        return
    if not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"--seed_everything={seed} must be an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}], "
                          "or true (a random seed) / false (none)")


def check_accelerator(trainer: Any) -> None:
    """An accelerator named explicitly must be present on this machine (auto and cpu always are)."""
    name = trainer.get("accelerator")
    if not isinstance(name, str) or name in ("auto", "cpu"):
        return
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    available = {"gpu": CUDAAccelerator.is_available() or MPSAccelerator.is_available(),
                 "cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available()}
    if name in available and not available[name]:
        raise ConfigError(f"--trainer.accelerator={name}: this machine has no {name.upper()} that torch can use; "
                          "use --trainer.accelerator auto or cpu")


MAX_YAML_NODES = 200_000  # the shipped configs have under 200; an alias bomb has billions


def check_yaml_sizes(args: ArgsType) -> None:
    """Each --config file, and each value written with YAML aliases, expands to at most MAX_YAML_NODES nodes.

    Measured on the composed node graph (aliases shared, counted with a memo), so a "billion laughs"
    file is refused in milliseconds instead of being expanded by jsonargparse.
    """
    if not isinstance(args, list):
        return
    for i, arg in enumerate(args):
        if not isinstance(arg, str):
            continue
        if arg == "--config" and i + 1 < len(args) and isinstance(args[i + 1], str):
            check_yaml_file(args[i + 1], "config file")
        elif arg.startswith("--config="):
            check_yaml_file(arg.removeprefix("--config="), "config file")
        elif "*" in arg and "&" in arg:
            check_yaml_text(arg, f"argument {arg[:40]!r}")


def check_yaml_file(path: str | Path, what: str) -> None:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return  # jsonargparse reports it in its own words
    check_yaml_text(text, f"{what} {str(path)!r}")


def check_yaml_text(text: str, what: str) -> None:
    import yaml

    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        size = sum(_expanded_size(doc, {}, set()) for doc in documents if doc is not None)
    except yaml.YAMLError:
        return  # a parse error is reported by the parser itself
    except RecursionError:
        size = MAX_YAML_NODES + 1
    if size > MAX_YAML_NODES:
        raise ConfigError(f"{what} expands to more than {MAX_YAML_NODES} YAML nodes (aliases that repeat "
                          "aliases, or a recursive alias); write the values out instead")


def _expanded_size(node: Any, memo: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes of `node` with every alias expanded (a recursive alias counts as unbounded)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:
        return MAX_YAML_NODES + 1
    open_nodes.add(key)
    children = node.value if isinstance(node.value, list) else []
    size = 1
    for child in children:
        for part in (child if isinstance(child, tuple) else (child,)):
            size += _expanded_size(part, memo, open_nodes)
            if size > MAX_YAML_NODES:
                break
    open_nodes.discard(key)
    memo[key] = size
    return size


def check_run_folders(trainer: Any, subcommand: str) -> None:
    """The run folder and, for fit, its checkpoints/ folder are folders (not files) that can be written."""
    log_dir = getattr(trainer, "log_dir", None)
    if not log_dir or getattr(trainer, "logger", None) is None:  # without a logger log_dir is the cwd
        return
    check_writable_dir(log_dir, "run folder")
    callback = getattr(trainer, "checkpoint_callback", None)
    if subcommand == "fit" and callback is not None:
        check_writable_dir(getattr(callback, "dirpath", None) or Path(log_dir) / "checkpoints", "checkpoints folder")
