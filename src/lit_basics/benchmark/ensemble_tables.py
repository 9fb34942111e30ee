"""The search's ensemble against its single refit, on generated tables with categories and gaps and on the
embedded classification sets: `python -m lit_basics.benchmark.ensemble_tables` (issue #22).

Per table and split seed S: a stratified 80/20 split (random_state S); on the 80%, one FNNSearchCV over
GRID with refit=True and one with refit="ensemble" (the fold models of the n_ensemble best candidates,
averaged), the same 5 folds (StratifiedKFold, shuffled with S) and the same estimator seed S; both scored
on the same 20%. The preprocessing is a Pipeline step before the FNN (median imputation with missing
indicators + StandardScaler for numbers; a "missing" level + one-hot for strings), which FNNSearchCV
fits on each fold's training rows and the refit on the whole 80%: no test or held-out row is seen.
Time: CPU seconds of this process (one thread, n_jobs=1: every fit runs in it), steadier than the wall
clock on a shared machine: the search alone (refit=False), + the single refit, and the ensemble run (its
search, the fitted fold models it keeps, its out-of-fold score).
"""

import argparse
import datetime
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# 4 architectures x 2 learning rates = 8 candidates, 40 networks per 5-fold search
GRID = {"fnnclassifier__hidden_layer_sizes": [(32,), (128,), (64, 64), (128, 128)],
        "fnnclassifier__learning_rate_init": [1e-3, 1e-2]}
ESTIMATOR = {"max_iter": 100, "batch_size": 32, "early_stopping": True, "n_iter_no_change": 10,
             "validation_fraction": 0.15, "device": "cpu"}
QUICK_GRID = {"fnnclassifier__hidden_layer_sizes": [(16,), (32,)]}
EMBEDDED = ("iris", "wine", "breast_cancer", "digits", "moons", "circles")  # as shipped (moons noise 0.2)
FOLDS, TEST_SHARE, N_ENSEMBLE = 5, 0.2, 5


@dataclass(frozen=True)
class TableSpec:
    """A generated classification table: numeric columns, string categories (levels per column), gaps.

    The label is the argmax of a random tanh network of the numbers, plus per-level effects of each
    category and a slope of the first number that the first category changes, plus Gumbel noise scaled by
    `noise` (larger: harder). Cells go missing at random with probability `missing` after labelling."""

    name: str
    rows: int
    numeric: int
    levels: tuple[int, ...]
    classes: int
    missing: float
    noise: float


TABLES = (
    TableSpec("clinic", 600, 6, (3, 4), 2, 0.10, 0.5),
    TableSpec("retail", 1500, 8, (5, 3, 8), 3, 0.06, 0.4),
    TableSpec("survey", 400, 4, (6, 2), 4, 0.15, 0.3),
    TableSpec("sensors", 2000, 12, (4,), 5, 0.08, 0.5),
    TableSpec("loans", 900, 5, (3, 10, 2), 2, 0.12, 0.8),
)


def make_table(spec: TableSpec, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """(features with float and string columns and NaN gaps, labels 0..classes-1), the same for the same seed."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(spec.rows, spec.numeric))
    numbers[:, ::3] = np.exp(numbers[:, ::3] / 2)  # a few skewed columns
    numbers *= rng.uniform(0.5, 50, size=spec.numeric)  # columns on different scales
    codes = [rng.choice(k, size=spec.rows, p=rng.dirichlet(np.full(k, 2.0))) for k in spec.levels]
    z = (numbers - numbers.mean(0)) / numbers.std(0)
    hidden = np.tanh(z @ rng.normal(size=(spec.numeric, 16)) / math.sqrt(spec.numeric))
    logits = hidden @ rng.normal(size=(16, spec.classes)) * 1.5
    for c in codes:
        logits += rng.normal(size=(int(c.max()) + 1, spec.classes))[c] * 0.8
    logits += z[:, :1] * rng.normal(size=(spec.levels[0], spec.classes))[codes[0]]  # category x number
    logits -= logits.mean(0)  # roughly balanced classes
    y = np.argmax(logits + spec.noise * rng.gumbel(size=logits.shape), axis=1)
    frame = pd.DataFrame(numbers, columns=[f"num{i}" for i in range(spec.numeric)])
    for j, c in enumerate(codes):
        frame[f"cat{j}"] = np.array([f"c{j}_{v}" for v in range(spec.levels[j])], dtype=object)[c]
    gaps = rng.random(frame.shape) < spec.missing
    return frame.mask(gaps), np.unique(y, return_inverse=True)[1]


def embedded_table(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """An embedded data set (its DataModule's defaults, as the shipped configs) as a numeric DataFrame."""
    from lit_basics.data import DATAMODULES

    x, y = DATAMODULES[name]().arrays
    return pd.DataFrame(np.asarray(x, dtype=np.float64)).add_prefix("x"), np.asarray(y)


def preprocessing() -> Any:
    """Numbers: median imputation with missing indicators, then StandardScaler; strings: a "missing" level,
    then one-hot (levels unseen in training rows: all zeros)."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    strings = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return ColumnTransformer([("numbers", numbers, make_column_selector(dtype_include=np.number)),
                              ("strings", strings, make_column_selector(dtype_exclude=np.number))])


def compare_on_split(x: pd.DataFrame, y: np.ndarray, seed: int, grid: dict[str, list], estimator: dict[str, Any],
                     n_ensemble: int = N_ENSEMBLE, folds: int = FOLDS) -> dict[str, float]:
    """Refit and ensemble of one search on one seed's split: test accuracies and CPU seconds.

    The search alone is FNNSearchCV(refit=False); the single refit is then GridSearchCV's refit done by hand
    (the estimator cloned with best_params_, fitted on the whole 80%), timed on its own; the ensemble is a
    second search with refit="ensemble". Even seeds run the search first, odd seeds the ensemble, so a
    drift of the machine's load favours neither."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline

    from lit_basics.estimators import FNNClassifier, FNNSearchCV

    train, test = train_test_split(np.arange(len(y)), test_size=TEST_SHARE, random_state=seed, stratify=y)
    x_train, y_train, x_test, y_test = x.iloc[train], y[train], x.iloc[test], y[test]
    pipeline = make_pipeline(preprocessing(), FNNClassifier(random_state=seed, **estimator))
    out: dict[str, float] = {"n_train": len(train), "n_test": len(test)}

    def search(refit: bool | str) -> tuple[FNNSearchCV, float]:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        started = time.process_time()
        fitted = FNNSearchCV(pipeline, grid, cv=cv, refit=refit, n_ensemble=n_ensemble, n_jobs=1).fit(x_train, y_train)
        return fitted, time.process_time() - started

    def single() -> None:
        alone, out["search_s"] = search(False)
        started = time.process_time()
        model = clone(pipeline).set_params(**alone.best_params_).fit(x_train, y_train)
        out["refit_s"] = out["search_s"] + time.process_time() - started
        out["refit_acc"], out["refit_cv"] = float(model.score(x_test, y_test)), float(alone.best_score_)

    def ensemble() -> None:
        fitted, out["ensemble_s"] = search("ensemble")
        out["ensemble_acc"], out["ensemble_cv"] = float(fitted.score(x_test, y_test)), float(fitted.ensemble_score_)

    for step in (single, ensemble) if seed % 2 == 0 else (ensemble, single):
        step()
    return out


def run(tables: dict[str, tuple[pd.DataFrame, np.ndarray]], seeds: list[int], grid: dict[str, list],
        estimator: dict[str, Any], n_ensemble: int = N_ENSEMBLE, folds: int = FOLDS,
        progress: bool = True) -> list[dict[str, Any]]:
    """One row per table and seed."""
    rows = []
    for name, (x, y) in tables.items():
        for seed in seeds:
            row = {"table": name, "seed": seed} | compare_on_split(x, y, seed, grid, estimator, n_ensemble, folds)
            rows.append(row)
            if progress:
                print(f"{name:>14} seed {seed}: refit {row['refit_acc']:.4f} ensemble {row['ensemble_acc']:.4f} "
                      f"(search {row['search_s']:.1f} s, +refit {row['refit_s']:.1f} s, "
                      f"ensemble {row['ensemble_s']:.1f} s)", file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict[str, Any]], tables: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> list[dict[str, Any]]:
    """Per table: the accuracy report's paired statistics (ensemble - refit over seeds), wins/ties/losses,
    and the time ratios (ensemble run / search alone, refit run / search alone) over the summed seconds."""
    from lit_basics.experiments.accuracy.report import compare_sides

    out = []
    for name, (x, y) in tables.items():
        own = [r for r in rows if r["table"] == name]
        paired = [{"dataset": name, "seed": r["seed"], "side": side, "accuracy": r[f"{side}_acc"]}
                  for r in own for side in ("ensemble", "refit")]
        cmp = compare_sides(paired, name, "accuracy", other="refit", base="ensemble")
        diffs = [r["ensemble_acc"] - r["refit_acc"] for r in own]
        search_s = sum(r["search_s"] for r in own)
        out.append({"table": name, "rows": len(y), "numeric": int(x.select_dtypes("number").shape[1]),
                    "categorical": int(x.select_dtypes(exclude="number").shape[1]), "classes": len(np.unique(y)),
                    "missing": float(x.isna().to_numpy().mean()), "seeds": len(own),
                    "refit": cmp["sklearn"], "ensemble": cmp["ours"], "diff": cmp["diff"], "diff_std": cmp["diff_std"],
                    "p": cmp["p"], "beyond_noise": cmp["beyond_noise"] and cmp["diff"] > 0,
                    "wins": sum(d > 1e-9 for d in diffs), "ties": sum(abs(d) <= 1e-9 for d in diffs),
                    "losses": sum(d < -1e-9 for d in diffs), "search_s": search_s / len(own),
                    "ensemble_ratio": sum(r["ensemble_s"] for r in own) / search_s,
                    "refit_ratio": sum(r["refit_s"] for r in own) / search_s})
    return out


def markdown(stats: list[dict[str, Any]]) -> str:
    """The summary as a markdown table, one line per table."""
    lines = ["| table | rows | num / cat columns | classes | missing | refit | ensemble | diff | std of diffs | p | "
             "wins / ties / losses | beyond noise | search s | ensemble / search | refit / search |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in stats:
        p = "-" if math.isnan(s["p"]) else f"{s['p']:.2f}"
        lines.append(
            f"| {s['table']} | {s['rows']} | {s['numeric']} / {s['categorical']} | {s['classes']} | "
            f"{s['missing']:.1%} | {s['refit'][0]:.4f} ± {s['refit'][1]:.4f} | "
            f"{s['ensemble'][0]:.4f} ± {s['ensemble'][1]:.4f} | {s['diff']:+.4f} | {s['diff_std']:.4f} | {p} | "
            f"{s['wins']} / {s['ties']} / {s['losses']} | {'yes' if s['beyond_noise'] else 'no'} | "
            f"{s['search_s']:.1f} | {s['ensemble_ratio']:.2f} | {s['refit_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """`python -m lit_basics.benchmark.ensemble_tables [--seeds 5] [--only clinic,iris] [--quick]`."""
    import torch

    from lit_basics.engine.runtime import machine_description

    parser = argparse.ArgumentParser(description="FNNSearchCV refit=True vs refit='ensemble' on generated "
                                                 "tables with categories and gaps and on the embedded sets.")
    parser.add_argument("--seeds", type=int, default=5, help="split seeds 0..N-1 (default 5)")
    parser.add_argument("--only", default=None, help="comma-separated table names (default: all)")
    parser.add_argument("--n-ensemble", type=int, default=N_ENSEMBLE)
    parser.add_argument("--quick", action="store_true", help="wiring check: 2 small candidates, 3 epochs, 2 folds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = [t.name for t in TABLES] + list(EMBEDDED)
    chosen = names if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown table {unknown[0]!r}; allowed: {', '.join(names)}")
    specs = {t.name: t for t in TABLES}
    tables = {n: make_table(specs[n], seed=i) if n in specs else embedded_table(n)
              for i, n in enumerate(names) if n in chosen}
    grid, estimator, folds = (QUICK_GRID, {**ESTIMATOR, "max_iter": 3}, 2) if args.quick else (GRID, ESTIMATOR, FOLDS)
    started = time.perf_counter()
    rows = run(tables, list(range(args.seeds)), grid, estimator, args.n_ensemble, folds)
    stats = summary(rows, tables)
    minutes = (time.perf_counter() - started) / 60
    command = "python -m lit_basics.benchmark.ensemble_tables " + " ".join(argv if argv is not None else sys.argv[1:])
    print(markdown(stats))
    print(f"\n`{command.strip()}`: {len(rows)} splits in {minutes:.1f} min on {machine_description()}, "
          f"{datetime.date.today().isoformat()}.")
    return stats


if __name__ == "__main__":
    main()
