"""Figures of a comparison: curves with seed bands, overfitting gaps, weights, decision boundaries."""

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lit_basics.atomic_files import atomic_write_bytes  # noqa: E402
from lit_basics.experiments.compare.spec import ExperimentSpec  # noqa: E402
from lit_basics.experiments.runs import load_run_data  # noqa: E402
from lit_basics.models import load_model  # noqa: E402
from lit_basics.models.fnn import weight_matrices  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _band(ax: plt.Axes, history: pd.DataFrame, column: str, label: str, **style) -> None:
    """Mean over seeds as a line, min..max over seeds as a band."""
    if column not in history:
        return
    stats = history.groupby("epoch")[column].agg(["mean", "min", "max"])
    (line,) = ax.plot(stats.index, stats["mean"], label=label, **style)
    ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2, color=line.get_color())


def curves(history: pd.DataFrame, path: Path) -> Path:
    accuracy = "val/acc" if "val/acc" in history else "val/rmse"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for variant, rows in history.groupby("variant", sort=False):
        _band(axes[0], rows, accuracy, variant)
        _band(axes[1], rows, "val/loss", variant)
    axes[0].set(xlabel="epoch", ylabel=accuracy, title=f"{accuracy} (mean, band: min..max over seeds)")
    axes[1].set(xlabel="epoch", ylabel="val/loss", title="validation loss", yscale="log")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def gap(history: pd.DataFrame, path: Path) -> Path:
    variants = list(dict.fromkeys(history["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.4), sharey=True, squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        rows = history[history["variant"] == variant]
        _band(ax, rows, "train/loss", "train")
        _band(ax, rows, "val/loss", "val")
        ax.set(title=variant, xlabel="epoch", yscale="log")
    axes[0][0].set_ylabel("loss (train vs val: the overfitting gap)")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def _first_seed_runs(results: pd.DataFrame) -> pd.DataFrame:
    return results.sort_values("seed").groupby("variant", sort=False).head(1)


def weights(results: pd.DataFrame, path: Path) -> Path:
    runs = _first_seed_runs(results)
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.logspace(-6, 1, 50)
    for _, run in runs.iterrows():
        model = load_model(run["best_model_path"])
        values = torch.cat([w.detach().abs().flatten() for w in weight_matrices(model.net)]).numpy()
        near_zero = float((values < 1e-3).mean())
        ax.hist(np.clip(values, 1e-6, None), bins=bins, histtype="step", linewidth=1.5,
                label=f"{run['variant']} ({near_zero:.0%} below 1e-3)")
    ax.set(xscale="log", xlabel="|weight| (seed of first run, best checkpoint)", ylabel="count",
           title="weight magnitudes: L1 pushes weights to zero, L2 shrinks them")
    ax.legend(fontsize=8)
    return _save(fig, path)


def boundaries(results: pd.DataFrame, path: Path) -> Path | None:
    """Decision regions of each variant's first-seed model, for 2-D data sets only."""
    runs = _first_seed_runs(results)
    datamodule = load_run_data(runs.iloc[0]["log_dir"])
    if datamodule.num_features != 2 or datamodule.task != "classification":
        return None
    x, y = (t.numpy() for t in datamodule.tensors["test"])
    lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = torch.tensor(np.c_[gx.ravel(), gy.ravel()], dtype=torch.float32)
    fig, axes = plt.subplots(1, len(runs), figsize=(3.3 * len(runs), 3.3), squeeze=False)
    for ax, (_, run) in zip(axes[0], runs.iterrows(), strict=True):
        model = load_model(run["best_model_path"]).eval()
        with torch.no_grad():
            regions = model.predict_step((grid,), 0)["prediction"].numpy().reshape(gx.shape)
        ax.contourf(gx, gy, regions, alpha=0.3, cmap="coolwarm")
        ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
        ax.set(title=f"{run['variant']} (test acc {run.get('test_acc', float('nan')):.2f})", xticks=[], yticks=[])
    return _save(fig, path)


def comparison_figures(spec: ExperimentSpec, results: pd.DataFrame, history: pd.DataFrame, out: Path) -> list[Path]:
    figures = [curves(history, out / "curves.png")]
    if "gap" in spec.plots:
        figures.append(gap(history, out / "gap.png"))
    if "weights" in spec.plots:
        figures.append(weights(results, out / "weights.png"))
    if "boundaries" in spec.plots:
        figures.append(boundaries(results, out / "boundaries.png"))
    return [f for f in figures if f is not None]


def to_tensorboard(figures: list[Path], log_dir: Path) -> None:
    """The same PNGs as TensorBoard images, beside the runs they summarise."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for figure in figures:
            writer.add_image(figure.stem, plt.imread(figure)[..., :3], dataformats="HWC")
