"""Reading the experiment and search files: a checked YAML mapping, its base config, overrides as CLI arguments."""

from pathlib import Path
from typing import Any

import yaml

from lit_basics.errors import ConfigError


def override_args(overrides: dict[str, Any]) -> list[str]:
    """{"model.lr": 0.1, "model.hidden_sizes": [8, 8]} -> ["--model.lr=0.1", "--model.hidden_sizes=[8, 8]"]."""
    args = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("\n...").strip()
        args.append(f"--{key}={text}")
    return args


def read_config_file(path: Path, kind: str, keys: set[str], required: tuple[str, ...]) -> dict[str, Any]:
    """A YAML mapping with only `keys` and all of `required`; anything else is a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{kind} {str(path)!r} does not exist")
    from lit_basics.cli_arguments import check_yaml_text

    check_yaml_text(path.read_text(), f"{kind} {str(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{kind} {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{kind} {str(path)!r} must be a mapping with keys {sorted(keys)}")
    unknown = set(raw) - keys
    if unknown:
        raise ConfigError(f"{kind} has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(keys))}")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{kind} {str(path)!r} needs the key {key!r}")
    return raw


def resolve_base(path: Path, base: str) -> Path:
    """The base training config, relative to the file that names it."""
    resolved = Path(base) if Path(base).is_absolute() else (path.parent / base).resolve()
    if not resolved.is_file():
        raise ConfigError(f"base config {str(resolved)!r} does not exist")
    return resolved
