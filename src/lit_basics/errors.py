"""The one exception type for bad user input, so entry points can print it as a single line."""


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names the value and the allowed ones."""


def check_choice(kind: str, value: str, allowed) -> str:
    """Return `value` if it is one of `allowed`, else raise ConfigError listing the allowed names."""
    if value not in allowed:
        names = ", ".join(sorted(allowed))
        raise ConfigError(f"unknown {kind} {value!r}; allowed: {names}")
    return value


class TrainingDiverged(ConfigError):
    """The loss became NaN or infinite: stop instead of training on garbage."""
