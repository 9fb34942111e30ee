"""Search files for k-fold tuning: a base config, a search space over CLI arguments, folds, sampler."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from lit_basics.errors import ConfigError, check_choice
from lit_basics.experiments.config_file import override_args, read_config_file, resolve_base

SAMPLERS = ("grid", "random", "tpe")
SEARCH_KEYS = {"name", "description", "base", "folds", "seed", "sampler", "n_trials", "patience", "common", "space",
               "ensemble", "ensemble_selection"}
ENSEMBLE_SELECTIONS = ("top", "greedy")
# `depth` and `width` together set model.hidden_sizes = [width] * depth: a search over architectures.
ARCHITECTURE = ("depth", "width")


@dataclass
class Dimension:
    """One searched argument: a list of choices, or a numeric range (log scale optional)."""

    name: str
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, self.choices)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclass
class SearchSpec:
    name: str
    base: Path
    space: list[Dimension]
    folds: int = 5
    seed: int = 0
    sampler: str = "grid"
    n_trials: int | None = None
    patience: int = 10
    common: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    ensemble: int = 0  # > 0: also average the fold models of the `ensemble` best configurations (ensemble.ckpt)
    ensemble_selection: str = "top"  # top: equal weights; greedy: forward selection on out-of-fold predictions

    def grid(self) -> dict[str, list[Any]]:
        missing = [d.name for d in self.space if d.choices is None]
        if missing:
            raise ConfigError(f"sampler 'grid' needs a list of choices for {missing}; give choices or use random/tpe")
        return {d.name: d.choices for d in self.space}

    def run_args(self, params: dict[str, Any]) -> list[str]:
        """CLI arguments (after `fit`) for one configuration of the searched parameters."""
        return ["--config", str(self.base), *override_args({**self.common, **architecture_overrides(params)})]


def architecture_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Searched values as CLI keys: `depth` and `width` become model.hidden_sizes = [width] * depth."""
    out = {key: value for key, value in params.items() if key not in ARCHITECTURE}
    if "depth" in params or "width" in params:
        out["model.hidden_sizes"] = [int(params.get("width", 64))] * int(params.get("depth", 2))
    return out


def _dimension(name: str, raw: Any) -> Dimension:
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"search dimension {name!r} must be a list of choices or {{low, high[, log]}}, got {raw!r}")
    unknown = set(raw) - {"choices", "low", "high", "log", "int"}
    if unknown:
        allowed = "choices, high, int, log, low"
        raise ConfigError(f"search dimension {name!r} has unknown keys {sorted(unknown)}; allowed: {allowed}")
    if "choices" in raw:
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search dimension {name!r} has an empty choice list")
        return Dimension(name, choices=choices)
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"search dimension {name!r} needs choices, or low and high")
    low, high, log = float(raw["low"]), float(raw["high"]), bool(raw.get("log", False))
    if low > high:
        raise ConfigError(f"search dimension {name!r} has low={low:g} > high={high:g}")
    if log and low <= 0:
        raise ConfigError(f"search dimension {name!r} is log-scaled, so low={low:g} must be > 0")
    integer = bool(raw.get("int", False)) or name in ARCHITECTURE
    return Dimension(name, low=low, high=high, log=log, integer=integer)


def load_search(path: str | Path, sampler: str | None = None, n_trials: int | None = None,
                folds: int | None = None, extra: dict[str, Any] | None = None, ensemble: int | None = None,
                ensemble_selection: str | None = None) -> SearchSpec:
    """Read and check a search file; command-line values override the file's."""
    path = Path(path)
    raw = read_config_file(path, "search config", SEARCH_KEYS, ("name", "base", "space"))
    if not isinstance(raw["space"], dict) or not raw["space"]:
        raise ConfigError("search space must be a non-empty mapping: argument -> choices or range")
    base = resolve_base(path, raw["base"])
    spec = SearchSpec(
        name=str(raw["name"]),
        base=base,
        space=[_dimension(str(k), v) for k, v in raw["space"].items()],
        folds=int(folds if folds is not None else raw.get("folds", 5)),
        seed=int(raw.get("seed", 0)),
        sampler=str(sampler or raw.get("sampler", "grid")),
        n_trials=n_trials if n_trials is not None else raw.get("n_trials"),
        patience=int(raw.get("patience", 10)),
        common={**(raw.get("common") or {}), **(extra or {})},
        description=str(raw.get("description", "")),
        ensemble=ensemble if ensemble is not None else raw.get("ensemble", 0),
        ensemble_selection=str(ensemble_selection or raw.get("ensemble_selection", "top")),
    )
    check_choice("sampler", spec.sampler, SAMPLERS)
    check_choice("ensemble_selection", spec.ensemble_selection, ENSEMBLE_SELECTIONS)
    if isinstance(spec.ensemble, bool) or not isinstance(spec.ensemble, int) or spec.ensemble < 0:
        raise ConfigError(f"ensemble={spec.ensemble!r} must be an integer >= 0 (0: no ensemble; K: the K best "
                          "configurations' fold models)")
    if spec.folds < 2:
        raise ConfigError(f"folds={spec.folds} must be >= 2")
    if spec.n_trials is not None and spec.n_trials < 1:
        raise ConfigError(f"n_trials={spec.n_trials} must be >= 1")
    if spec.sampler == "grid":
        spec.grid()
    elif spec.n_trials is None:
        raise ConfigError(f"sampler {spec.sampler!r} needs n_trials (in the file or --n-trials)")
    configurations = grid_size(spec) if spec.sampler == "grid" else int(spec.n_trials)
    if spec.ensemble > configurations:
        raise ConfigError(f"ensemble={spec.ensemble} is more than the {configurations} configurations this search "
                          f"trains; use ensemble <= {configurations}")
    return spec


def grid_size(spec: SearchSpec) -> int:
    return math.prod(len(choices) for choices in spec.grid().values())
