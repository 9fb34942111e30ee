"""The one exception type for bad user input, so entry points can print it as a single line."""


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names the value and the allowed ones."""


def check_choice(kind: str, value: str, allowed) -> str:
    """Return `value` if it is one of `allowed`, else raise ConfigError listing the allowed names."""
    if value not in allowed:
        names = ", ".join(sorted(allowed))
        raise ConfigError(f"unknown {kind} {value!r}; allowed: {names}")
    return value


def check_batched_choice(kind: str, value: str, registry: dict, why: str):
    """`registry[value]` if the batched engine can train it (its declaration's `batched`), else one line
    naming the value, why not, and the names it can train."""
    declaration = registry[check_choice(kind, value, registry)]
    if not declaration.batched:
        supported = ", ".join(sorted(name for name, d in registry.items() if d.batched))
        raise ConfigError(f"the batched engine cannot train {kind} {value!r} ({why}); batched: {supported}; "
                          "use --engine lightning")
    return declaration
