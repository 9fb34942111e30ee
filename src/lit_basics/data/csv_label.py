"""The label of a user's table and what would leak it: stray spaces, a quantity taken for classes, rows
repeated across the splits, a feature that is the label under another name, a column that alone predicts it.

Each check either refuses with one line naming the column and what to do, or returns a note for the
data summary; none changes which rows or columns are used without saying so.
"""

import warnings

import numpy as np
import pandas as pd

from lit_basics.errors import ConfigError

MANY_CLASSES = 20  # a numeric label with more distinct values than this, most seen once, is a quantity
DUPLICATES = ("drop", "keep")
LEAK_MIN_ROWS = 10  # fewer rows than this say nothing about a column matching the label
NEAR_PERFECT = 0.99  # held-out accuracy (share of the majority's errors avoided) or R2 of one column alone
SAMPLE_ROWS = 20_000  # the single-column check reads at most this many training rows


def quantity_as_classes(values: pd.Series, name: str) -> None:
    """A numeric label with many distinct values, most seen once, is a regression target: one line saying so."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return
    counts = values.value_counts()
    once = int((counts == 1).sum())
    if len(counts) > MANY_CLASSES and once > len(counts) / 2:
        raise ConfigError(f"csv: label column {name!r} has {len(counts)} distinct values, {once} of them seen once: "
                          "a quantity, not classes; for a numeric target use --data.task regression")


def strip_labels(values: pd.Series) -> tuple[pd.Series, str | None]:
    """Text labels without surrounding spaces ('cat ' is 'cat'); a note when that merges classes."""
    stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    changed = (stripped != values) & values.notna()
    if not changed.any():
        return values, None
    before, after = values.nunique(), stripped.nunique()
    if after == before:
        return stripped, None
    first = values[changed].iloc[0]
    return stripped, (f"label values stripped of surrounding spaces: {before} -> {after} classes "
                      f"({first!r} is {first.strip()!r}; {int(changed.sum())} rows)")


def drop_repeated_rows(table: pd.DataFrame, how: str) -> tuple[pd.DataFrame, str | None]:
    """Rows equal in every column to an earlier row: dropped (they would sit in train and test at once), or kept
    and counted with `how='keep'`. `table` may hold the bookkeeping column `__row`, which is not compared."""
    repeated = table.drop(columns="__row", errors="ignore").duplicated()
    count = int(repeated.sum())
    if not count:
        return table, None
    if how == "keep":
        return table, (f"{count} rows repeat an earlier row exactly and are kept (--data.duplicates keep): copies "
                       "can fall in train and test, which flatters the test score")
    return table[~repeated].reset_index(drop=True), (
        f"dropped {count} rows that repeat an earlier row exactly (copies in train and test would flatter the "
        "test score); --data.duplicates keep keeps them")


def refuse_label_copies(table: pd.DataFrame, columns: list[str], label: str, task: str) -> None:
    """A feature equal to the label, a one-to-one recoding of it or (regression) a monotone function of it: refused."""
    y = table[label]
    for column in columns:
        pairs = pd.DataFrame({"f": table[column], "y": y}).dropna()
        if len(pairs) < LEAK_MIN_ROWS:
            continue
        what = _copy_kind(pairs["f"], pairs["y"], task)
        if what:
            raise ConfigError(f"csv: feature column {column!r} is {what} of the label {label!r}: a model would read "
                              f"the answer from it; leave it out with --data.drop_columns [{column}]")


def _copy_kind(f: pd.Series, y: pd.Series, task: str) -> str | None:
    n_y = y.nunique()
    if f.nunique() != n_y:  # a copy, a recoding and a monotone function all keep the number of distinct values
        return None
    if (f.astype(str) == y.astype(str)).all() or (_numeric(f) and _numeric(y) and np.allclose(
            f.to_numpy(np.float64), y.to_numpy(np.float64))):
        return "a copy"
    if n_y <= len(y) / 2 and n_y == len(pd.DataFrame({"f": f, "y": y}).drop_duplicates()):
        return "a one-to-one recoding"
    if task == "regression" and _numeric(f) and f.nunique() > 2:
        ranks, label_ranks = f.rank(), y.rank()
        if (ranks == label_ranks).all() or (ranks == len(y) + 1 - label_ranks).all():
            return "a monotone function"
    return None


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def near_perfect_columns(x: pd.DataFrame, y: np.ndarray, task: str, seed: int = 0) -> list[tuple[str, float]]:
    """Prepared columns that alone predict the label almost perfectly, scored on held-out folds of the given
    (training) rows by a small decision tree: [(column, score)], score an accuracy or an R2."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if len(y) < LEAK_MIN_ROWS * 3:
        return []
    if len(y) > SAMPLE_ROWS:
        keep = np.random.default_rng(seed).choice(len(y), SAMPLE_ROWS, replace=False)
        x, y = x.iloc[keep], y[keep]
    classify = task == "classification"
    baseline = np.bincount(y).max() / len(y) if classify else 0.0
    if classify and baseline >= NEAR_PERFECT:
        return []
    tree = (DecisionTreeClassifier if classify else DecisionTreeRegressor)(min_samples_leaf=5, random_state=seed)
    folds = KFold(3, shuffle=True, random_state=seed)
    found = []
    for column in x.columns:
        values = x[column]
        numeric = pd.api.types.is_numeric_dtype(values)
        codes = values.fillna(values.median()).to_numpy() if numeric else pd.factorize(values)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = float(cross_val_score(tree, np.asarray(codes, dtype=np.float64).reshape(-1, 1), y, cv=folds,
                                          scoring="accuracy" if classify else "r2").mean())
        if (score - baseline) / (1 - baseline) >= NEAR_PERFECT if classify else score >= NEAR_PERFECT:
            found.append((str(column), score))
    return found
