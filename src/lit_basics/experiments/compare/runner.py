"""Compare variants of one training set-up over several seeds: exercises 2, 4 and 5."""

import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import Progress

from lit_basics.atomic_files import atomic_write_text
from lit_basics.engine.runtime import machine_description
from lit_basics.experiments.compare import plots, report
from lit_basics.experiments.compare.spec import ExperimentSpec
from lit_basics.experiments.runs import check_args, fit, result_row
from lit_basics.outputs import check_name, check_writable_dir

RESUME_HINT = "compare.py keeps no partial results: run the same compare.py command again (every run starts anew)"


def validate(spec: ExperimentSpec) -> None:
    """Names stay inside logs/ and reports/, and every variant parses and builds, before the first run starts."""
    check_name(spec.name, "experiment name")
    for variant in spec.variants:
        check_name(variant, "variant name")
    for variant in spec.variants:
        check_args(f"variant {variant!r}", spec.run_args(variant))


def run_comparison(spec: ExperimentSpec, logs: str = "logs", reports: str = "reports", progress: bool = True) -> Path:
    """Fit every variant x seed, then write results.csv, history.csv, results.md and figures."""
    validate(spec)
    check_writable_dir(reports, "reports folder")
    check_writable_dir(logs, "logs folder")
    out = check_writable_dir(Path(reports) / spec.name, "report folder")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    histories: list[dict[str, Any]] = []
    total = len(spec.variants) * len(spec.seeds)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{spec.name}: variants x seeds", total=total)
        for variant in spec.variants:
            for seed in spec.seeds:
                metrics = fit(spec.run_args(variant), logs, f"{spec.name}/{variant}", f"seed_{seed}", seed,
                              resume_hint=RESUME_HINT)
                rows.append({"variant": variant, "seed": seed, **result_row(metrics, spec.target_accuracy)})
                histories += [{"variant": variant, "seed": seed, **h} for h in metrics["history"]]
                bar.advance(task)
    out.mkdir(parents=True, exist_ok=True)
    results = pd.DataFrame(rows)
    history = pd.DataFrame(histories)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "history.csv", history.to_csv(index=False))
    figures = plots.comparison_figures(spec, results, history, out)
    footer = f"{total} runs in {time.perf_counter() - started:.0f} s on {machine_description()}."
    atomic_write_text(out / "results.md", report.comparison_markdown(spec, results, figures, footer))
    plots.to_tensorboard(figures, Path(logs) / spec.name / "figures")
    return out
