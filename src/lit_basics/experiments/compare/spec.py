"""Experiment files: a base training config, shared overrides, named variants and seeds."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_basics.errors import ConfigError
from lit_basics.experiments.config_file import override_args, read_config_file, resolve_base

SPEC_KEYS = {"name", "description", "base", "seeds", "common", "variants", "target_accuracy", "plots"}
PLOTS = {"curves", "boundaries", "gap", "weights"}


@dataclass
class ExperimentSpec:
    """What `compare.py` runs: every variant x seed as one `fit` of `base` with overrides."""

    name: str
    base: Path
    variants: dict[str, dict[str, Any]]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    common: dict[str, Any] = field(default_factory=dict)
    target_accuracy: float | None = None
    plots: list[str] = field(default_factory=lambda: ["curves", "boundaries"])
    description: str = ""

    def run_args(self, variant: str) -> list[str]:
        """CLI arguments shared by every seed of `variant` (after `fit`)."""
        return ["--config", str(self.base), *override_args(self.common), *override_args(self.variants[variant])]








def load_spec(path: str | Path, seeds: int | None = None, extra: dict[str, Any] | None = None) -> ExperimentSpec:
    """Read and check an experiment file; `seeds` limits the seeds, `extra` adds shared overrides."""
    path = Path(path)
    raw = read_config_file(path, "experiment config", SPEC_KEYS, ("name", "base", "variants"))
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ConfigError("experiment variants must be a non-empty mapping: name -> {dotted.key: value}")
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"variant {name!r} must map dotted argument names to values, got {overrides!r}")
    base = resolve_base(path, raw["base"])
    spec_seeds = [int(s) for s in raw.get("seeds", [0, 1, 2])]
    if not spec_seeds:
        raise ConfigError("experiment seeds must list at least one seed")
    plots = list(raw.get("plots", ["curves", "boundaries"]))
    if set(plots) - PLOTS:
        raise ConfigError(f"unknown plots {sorted(set(plots) - PLOTS)}; allowed: {', '.join(sorted(PLOTS))}")
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds} must be >= 1")
        spec_seeds = spec_seeds[:seeds]
    return ExperimentSpec(
        name=str(raw["name"]),
        base=base,
        variants={str(k): dict(v) for k, v in variants.items()},
        seeds=spec_seeds,
        common={**(raw.get("common") or {}), **(extra or {})},
        target_accuracy=raw.get("target_accuracy"),
        plots=plots,
        description=str(raw.get("description", "")),
    )
