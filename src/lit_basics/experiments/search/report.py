"""Tables and the written analysis of a k-fold search."""

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from lit_basics.errors import ConfigError
from lit_basics.experiments.search.space import SearchSpec


def short(name: str) -> str:
    """model.lr -> lr, data.init_args.batch_size -> batch_size."""
    return name.rsplit(".", 1)[-1]


def rank_key(mean: float, std: float | None, val_loss: float | None, number: int) -> tuple[float, float, float, int]:
    """The one order of trials everywhere: highest mean score, then lowest std, then lowest mean validation
    loss (accuracies of small validation folds tie often), then lowest trial number."""
    def known(value: float | None) -> float:
        return value if value is not None and not math.isnan(value) else math.inf

    return (-mean, known(std), known(val_loss), number)


def mean_val_loss(trial: optuna.trial.FrozenTrial) -> float | None:
    """The mean over its folds of each fold's best validation loss (None before any fold has one)."""
    losses = [v for k, v in trial.user_attrs.items() if k.startswith("val_loss_") and v is not None]
    return sum(losses) / len(losses) if losses else None


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The completed trial ranked first by `rank_key` (what summary.md lists first and the refit trains)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        diverged = sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("diverged"))
        raise ConfigError(f"no configuration completed its folds ({diverged} diverged: their training loss became "
                          "NaN or infinite); lower the learning rates or normalise the data")
    return min(complete, key=lambda t: rank_key(t.value, t.user_attrs.get("std"), mean_val_loss(t), t.number))


def trials_table(study: optuna.Study, spec: SearchSpec) -> pd.DataFrame:
    """One row per trial, best first (`rank_key`; unfinished trials last): parameters, fold scores, mean, std."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("stray"):
            continue
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name.lower()}
        row.update({short(d.name): trial.params.get(d.name) for d in spec.space})
        row.update({f"fold_{k}": trial.user_attrs.get(f"fold_{k}") for k in range(spec.folds)})
        folds = [v for k, v in trial.user_attrs.items() if k.startswith("fold_") and v is not None]
        partial = sum(folds) / len(folds) if folds else None  # a pruned trial's mean over the folds it ran
        row["mean"] = trial.value if trial.state == TrialState.COMPLETE else partial
        row["std"] = trial.user_attrs.get("std")
        row["val_loss"] = mean_val_loss(trial)  # the tie-break after mean and std
        row["fit_seconds"] = trial.user_attrs.get("fit_seconds")
        row["diverged"] = trial.user_attrs.get("diverged")  # where its training loss became NaN or infinite
        rows.append(row)
    complete = sorted((r for r in rows if r["state"] == "complete"),
                      key=lambda r: rank_key(r["mean"], r["std"], r["val_loss"], r["trial"]))
    ranked = [{"rank": i + 1, **r} for i, r in enumerate(complete)]
    ranked += [{"rank": None, **r} for r in rows if r["state"] != "complete"]
    table = pd.DataFrame(ranked)
    if "rank" in table:
        table["rank"] = table["rank"].astype("Int64")
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 or abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return lines


def marginals(trials: pd.DataFrame, spec: SearchSpec) -> dict[str, pd.DataFrame]:
    """Mean +- std of the CV score of completed trials for each value of each hyperparameter."""
    complete = trials[trials["state"] == "complete"]
    out = {}
    for dim in spec.space:
        column = short(dim.name)
        values = complete[column]
        if dim.choices is None:  # a range: five equal-count bins
            values = pd.qcut(values, q=min(5, values.nunique()), duplicates="drop")
        grouped = complete.groupby(values, observed=True)["mean"].agg(["mean", "std", "count"])
        out[column] = grouped
    return out


def importances(study: optuna.Study) -> dict[str, float] | None:
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None


FEW_TRIALS = 30  # below it, fANOVA importances get a caveat
CELL_STATISTIC = "max"  # a heat-map cell and the summary's depth x width table: the best trial of the cell


def cell_grid(complete: pd.DataFrame, rows: str, cols: str) -> pd.DataFrame:
    """Score per (rows, cols) cell as both the heat map and the summary show it: the cell's best trial."""
    return complete.pivot_table(index=rows, columns=cols, values="mean", aggfunc=CELL_STATISTIC)


def spread_note(trials: pd.DataFrame) -> list[str]:
    """A note when configurations next to the best lie within one fold std of its score: their order is noise."""
    complete = trials[trials["state"] == "complete"].sort_values("rank")
    if len(complete) < 2 or pd.isna(complete.iloc[0]["std"]):
        return []
    best, spread = complete.iloc[0]["mean"], complete.iloc[0]["std"]
    close = int((complete["mean"] >= best - spread).sum()) - 1
    if close == 0:
        return []
    return [f"Spread: {close} other configuration(s) score within one fold std ({spread:.4f}) of the best "
            f"({best:.4f}); their order among themselves is within the folds' noise.", ""]


def ensemble_section(spec: SearchSpec, study: optuna.Study, refit: dict[str, Any] | None, ensemble: Any) -> list[str]:
    """The single best configuration and the ensemble side by side: CV estimate and test metrics."""
    best = best_trial(study)
    keys = sorted(k for k in {*ensemble.test_metrics, *(refit or {})} if k.startswith("test/"))
    configurations = f"{len(ensemble.trials)} configuration{'s' if len(ensemble.trials) != 1 else ''}"
    refitted = "refit" if refit is not None else "not refit (--no-refit: no test score)"
    rows = [{"model": f"best configuration (trial {best.number}), {refitted}", "CV estimate": best.value,
             **{k: (refit or {}).get(k, "") for k in keys}},
            {"model": f"ensemble: {configurations} x {spec.folds} folds = {ensemble.members} networks",
             "CV estimate": ensemble.cv_score, **{k: ensemble.test_metrics.get(k, math.nan) for k in keys}}]
    weights = ", ".join(f"trial {t} x{w:g}" for t, w in zip(ensemble.trials, ensemble.weights, strict=True))
    selection = ("greedy forward selection with replacement on the out-of-fold predictions (its CV estimate is "
                 "optimistic: the weights were chosen on it)" if spec.ensemble_selection == "greedy"
                 else "the best configurations, equal weights")
    return ["## Ensemble", "",
            f"The fold models the search trained, each at its best epoch, averaged ({selection}: {weights}). "
            "Its CV estimate is out of fold: each training row predicted by the fold models that held it out. "
            "Test it with `python scripts/train.py test --config "
            f"reports/{spec.name}/ensemble.yaml --ckpt_path reports/{spec.name}/ensemble.ckpt`.", "",
            *markdown_table(pd.DataFrame(rows)), ""]


def summary_markdown(
    spec: SearchSpec,
    study: optuna.Study,
    trials: pd.DataFrame,
    test_metrics: dict[str, Any] | None,
    figures: list[Path],
    footer: str = "",
    ensemble: Any = None,
) -> str:
    states = trials["state"].value_counts().to_dict()
    lines = [f"# {spec.name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        f"{spec.folds}-fold stratified cross-validation over the training portion (the test split is held out), "
        f"sampler `{spec.sampler}`; trials: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ". "
        "Score: mean fold validation accuracy at each fold's lowest-loss epoch (for regression, minus that "
        "loss); ties: lower std, then lower mean validation loss (`val_loss`).",
        "",
        "## Top 10 configurations",
        "",
    ]
    params = [short(d.name) for d in spec.space]
    top = trials[trials["state"] == "complete"].sort_values("rank").head(10)
    top = top[["trial", *params, "mean", "std", "val_loss", "fit_seconds"]]
    lines += markdown_table(top) + [""] + spread_note(trials)
    if test_metrics is not None:
        best = best_trial(study)
        shown = ", ".join(f"{k} = {v:.4f}" for k, v in test_metrics.items() if k.startswith("test/"))
        lines += [
            "## Refit",
            "",
            f"The best configuration (trial {best.number}: "
            + ", ".join(f"{short(k)}={_fmt(v)}" for k, v in best.params.items())
            + f") trained on the whole training portion for {test_metrics['epochs']} epochs, tested once: {shown}. "
            "`best.yaml` retrains it with `python scripts/train.py fit --config reports/"
            f"{spec.name}/best.yaml`.",
            "",
        ]
    if ensemble is not None:
        lines += ensemble_section(spec, study, test_metrics, ensemble)
    lines += ["## How the score moves with each hyperparameter", "",
              "Mean ± std of the CV score over completed trials that share a value (marginal over the others).", ""]
    for name, table in marginals(trials, spec).items():
        cells = [
            f"{_fmt(v)}: {row['mean']:.4f} ± {0 if math.isnan(row['std']) else row['std']:.4f} (n={int(row['count'])})"
            for v, row in table.iterrows()
        ]
        lines.append(f"- **{name}**: " + "; ".join(cells))
    lines.append("")
    ranked = importances(study)
    if ranked:
        complete = int((trials["state"] == "complete").sum())
        lines += ["## Which hyperparameters matter most", "",
                  f"Optuna parameter importances (fANOVA: share of the score's variance each explains), from "
                  f"{complete} complete trials:", ""]
        lines += [f"- {short(k)}: {v:.2f}" for k, v in ranked.items()] + [""]
        if complete < FEW_TRIALS:
            lines += [f"Caveat: fewer than {FEW_TRIALS} trials; these shares are rough (with a handful of trials "
                      "they can come out equal or all on one parameter), read the per-value scores above instead.", ""]
    if {"depth", "width"} <= set(params):
        complete = trials[trials["state"] == "complete"]
        grid = cell_grid(complete, "depth", "width")
        best = complete.sort_values("rank").iloc[0]  # the ranked best trial's cell (ties: rank_key, not the first cell)
        depth, width = best["depth"], best["width"]
        lines += ["## Depth x width", "",
                  f"Best architecture: {int(depth)} hidden layers of {int(width)} units, the best trial's "
                  f"(CV score {best['mean']:.4f}). Best score per cell (the statistic of depth_width.png too):", ""]
        table = grid.reset_index().rename(columns=lambda c: f"width {c}" if c != "depth" else c)
        lines += markdown_table(table) + [""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"
