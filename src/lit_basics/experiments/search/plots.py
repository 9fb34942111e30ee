"""Figures of a k-fold search: score vs each hyperparameter, heat maps, optimisation history."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from lit_basics.experiments.compare.plots import _save  # noqa: E402
from lit_basics.experiments.search.report import cell_grid, short  # noqa: E402
from lit_basics.experiments.search.space import SearchSpec  # noqa: E402


def param_effects(spec: SearchSpec, trials: pd.DataFrame, path: Path) -> Path:
    complete = trials[trials["state"] == "complete"]
    dims = spec.space
    fig, axes = plt.subplots(1, len(dims), figsize=(3.4 * len(dims), 3.3), sharey=True, squeeze=False)
    for ax, dim in zip(axes[0], dims, strict=True):
        column = short(dim.name)
        if dim.choices is not None:
            labels = [str(c) for c in dim.choices]
            positions = complete[column].map({c: i for i, c in enumerate(dim.choices)})
            ax.scatter(positions + np.random.default_rng(0).uniform(-0.1, 0.1, len(positions)), complete["mean"], s=12,
                       alpha=0.6)
            means = complete.groupby(positions)["mean"].mean()
            ax.plot(means.index, means.values, "o-", color="k", label="mean")
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        else:
            ax.scatter(complete[column], complete["mean"], s=12, alpha=0.6)
            ax.set_xscale("log" if dim.log else "linear")
        ax.set(title=column, xlabel=column)
    axes[0][0].set_ylabel("mean CV score")
    return _save(fig, path)


def heatmap(trials: pd.DataFrame, rows: str, cols: str, path: Path, title: str) -> Path:
    complete = trials[trials["state"] == "complete"].copy()
    for column in (rows, cols):
        if complete[column].nunique() > 6 and complete[column].dtype.kind == "f":
            complete[column] = pd.qcut(np.log10(complete[column]), 5, duplicates="drop").map(
                lambda b: f"1e{b.left:.1f}..1e{b.right:.1f}")
    grid = cell_grid(complete, rows, cols)
    fig, ax = plt.subplots(figsize=(1.3 * len(grid.columns) + 2.5, 0.7 * len(grid.index) + 2))
    image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    for (i, j), value in np.ndenumerate(grid.values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel=cols, ylabel=rows, title=title)
    fig.colorbar(image, ax=ax, label="best mean CV score of the cell's trials")
    return _save(fig, path)


def history(study: optuna.Study, path: Path) -> Path:
    trials = [t for t in study.get_trials(deepcopy=False) if t.value is not None or t.intermediate_values]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    numbers = [t.number for t in trials]
    values = [t.value if t.value is not None else list(t.intermediate_values.values())[-1] for t in trials]
    colors = ["C0" if t.state.name == "COMPLETE" else "C3" for t in trials]
    ax.scatter(numbers, values, c=colors, s=14)
    complete = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    if complete:
        xs, ys = zip(*complete, strict=True)
        ax.step(xs, np.maximum.accumulate(ys), where="post", color="k", label="best so far")
    ax.set(xlabel="trial", ylabel="mean CV score", title="optimisation history (red: pruned)")
    ax.legend()
    return _save(fig, path)


def search_figures(spec: SearchSpec, trials: pd.DataFrame, study: optuna.Study, out: Path) -> list[Path]:
    if not (trials["state"] == "complete").any():
        return []
    names = [short(d.name) for d in spec.space]
    figures = [param_effects(spec, trials, out / "params.png"), history(study, out / "history.png")]
    if {"depth", "width"} <= set(names):
        figures.append(heatmap(trials, "depth", "width", out / "depth_width.png", "depth x width"))
    if {"lr", "batch_size"} <= set(names):
        figures.append(heatmap(trials, "lr", "batch_size", out / "lr_batch.png", "learning rate x batch size"))
    return figures
