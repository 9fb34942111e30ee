"""Markdown tables and sentences from result rows: mean +- std per variant, seed-to-seed spread."""

import math
from pathlib import Path

import pandas as pd

from lit_basics.experiments.compare.spec import ExperimentSpec

# (column, header, higher is better, scale)
COLUMNS = [
    ("best_val_acc", "val acc at best", True, 100.0),  # at the lowest validation loss: the kept checkpoint
    ("test_acc", "test acc", True, 100.0),
    ("best_val_loss", "best val loss", False, 1.0),
    ("test_rmse", "test RMSE", False, 1.0),
    ("final_train_loss", "final train loss", False, 1.0),
    ("loss_gap", "val - train loss", False, 1.0),
    ("train_val_gap", "train - val acc", False, 100.0),
    ("epochs", "epochs", None, 1.0),
    ("fit_seconds", "fit time (s)", False, 1.0),
    ("seconds_per_epoch", "s / epoch", False, 1.0),
    ("time_to_target", "time to target (s)", False, 1.0),
]


def ranking_column(results: pd.DataFrame) -> tuple[str, bool]:
    """Rank by the validation accuracy of the best (lowest-loss) epoch when there is one, else by that loss."""
    if "best_val_acc" in results and results["best_val_acc"].notna().any():
        return "best_val_acc", True
    return "best_val_loss", False


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count per variant for every numeric column, best first."""
    key, higher = ranking_column(results)
    numeric = results.drop(columns=["seed"]).select_dtypes("number").columns
    grouped = results.groupby("variant", sort=False)[list(numeric)]
    summary = grouped.agg(["mean", "std", "count"])
    order = [(key, "mean")] + ([("best_val_loss", "mean")] if key != "best_val_loss" else [])
    return summary.sort_values(order, ascending=[not higher] + [True] * (len(order) - 1))


def _cell(summary: pd.DataFrame, variant: str, column: str, scale: float) -> str:
    mean, std = summary.loc[variant, (column, "mean")], summary.loc[variant, (column, "std")]
    if pd.isna(mean):
        return "-"
    digits = 0 if column == "epochs" else 1 if scale == 100.0 else 3 if abs(mean) < 10 else 1
    text = f"{mean * scale:.{digits}f}"
    return text if pd.isna(std) else f"{text} ± {std * scale:.{digits}f}"


def markdown_table(summary: pd.DataFrame) -> str:
    columns = [c for c in COLUMNS if c[0] in summary.columns.get_level_values(0)]
    columns = [c for c in columns if summary[(c[0], "mean")].notna().any()]
    header = "| variant | " + " | ".join(c[1] for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for i, variant in enumerate(summary.index):
        name = f"**{variant}** (best)" if i == 0 else variant
        cells = [_cell(summary, variant, c[0], c[3]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread_sentences(summary: pd.DataFrame, results: pd.DataFrame) -> list[str]:
    """For each variant: how far it is from the best, and whether that exceeds the seed-to-seed noise.

    A difference counts as real when it exceeds twice its standard error,
    sqrt(std_a^2 / n_a + std_b^2 / n_b); with one seed there is no spread to compare against.
    """
    key, higher = ranking_column(results)
    scale, unit = (100.0, "points") if key == "best_val_acc" else (1.0, "")
    label = "validation accuracy" if key == "best_val_acc" else "validation loss"
    best = summary.index[0]
    mean_b, std_b, n_b = (summary.loc[best, (key, s)] for s in ("mean", "std", "count"))
    sentences = []
    for variant in summary.index[1:]:
        mean, std, n = (summary.loc[variant, (key, s)] for s in ("mean", "std", "count"))
        diff = abs(mean_b - mean) * scale
        if n < 2 or n_b < 2:
            verdict = "with one seed there is no spread to judge it against"
        else:
            se = math.sqrt(std_b**2 / n_b + std**2 / n) * scale
            verdict = (
                f"more than twice the seed-to-seed standard error ({se:.2f}): a real difference"
                if diff > 2 * se
                else f"within twice the seed-to-seed standard error ({se:.2f}): not distinguishable from noise"
            )
        direction = "higher" if higher else "lower"
        sentences.append(f"- **{best}** has {diff:.2f} {unit} {direction} {label} than **{variant}**, {verdict}.")
    return sentences


def comparison_markdown(spec: ExperimentSpec, results: pd.DataFrame, figures: list[Path], footer: str = "") -> str:
    summary = summarize(results)
    lines = [f"# {spec.name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        f"Base config `{spec.base.name}`, {len(spec.variants)} variants x {len(spec.seeds)} seeds "
        f"({', '.join(map(str, spec.seeds))}); mean ± std over seeds, best first.",
        "",
        markdown_table(summary),
        "",
        *spread_sentences(summary, results),
        "",
    ]
    if spec.target_accuracy is not None:
        lines += [f"Time to target: seconds of training until validation accuracy first reached "
                  f"{spec.target_accuracy:.0%} (- when a run never did).", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"


def update_readme_section(readme: Path, name: str, markdown: str, figures_from: Path, docs: Path) -> None:
    """Put `markdown` between the README's markers for `name`, its figures copied into docs/."""
    import os
    import re
    import shutil

    docs.mkdir(parents=True, exist_ok=True)

    def relink(match: re.Match) -> str:
        stem, file = match.group(1), match.group(2)
        shutil.copyfile(figures_from / file, docs / f"{name}_{file}")
        return f"![{stem}]({os.path.relpath(docs / f'{name}_{file}', readme.parent)})"

    body = re.sub(r"!\[([^\]]*)\]\(([^)/]+\.png)\)", relink, markdown)
    body = re.sub(r"^(#+) ", r"##\1 ", body, flags=re.MULTILINE)
    start, end = f"<!-- results:{name}:start -->", f"<!-- results:{name}:end -->"
    text = readme.read_text()
    section = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    readme.write_text(text)
