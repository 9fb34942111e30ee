"""The data summary of a CSV run: what was read, kept, dropped, imputed and encoded, every column by its role.

The console abbreviates long lists of numeric columns; `data_summary.txt` (shown=None) never does.
"""

from typing import Any

import numpy as np
import pandas as pd


def table_summary(dm: Any, shown: int | None = 6) -> str:
    """The summary of a CSVDataModule `dm`; past `shown` numeric columns a count (None: every column)."""
    sizes = {split: len(rows) for split, rows in dm.split_rows(dm.arrays[1]).items()}
    kept, read = dm.counts["kept"], dm.counts["read"]
    plan, state = dm.plan, dm.preprocessing or {}
    gaps = dm.table[plan.used].isna().sum()
    lines = [f"data: {dm.path} (label {dm.label_column!r}, {dm.task})",
             f"rows: {read} read, {read - kept} dropped, {kept} kept; "
             f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test",
             f"features: {len(plan.used) + len(plan.dropped)} columns, {len(plan.used)} used -> {dm.width} "
             f"model inputs (fitted on the {sizes['train']} training rows)"]
    lines += plan.describe(gaps, state.get("categories", []), dm.impute, dm.standardize, shown)
    lines += unused_columns(dm)
    if dm.task == "classification":
        counts = np.bincount(dm.arrays[1])
        lines.append(f"classes: {', '.join(f'{c} {n}' for c, n in zip(dm.classes, counts, strict=True))}")
    lines += [f"note: {note}" for note in [*dm.notes, *copies_across_splits(dm)]]
    lines += [f"warning: {warning}" for warning in dm.warnings]
    return "\n".join(lines)


def unused_columns(dm: Any) -> list[str]:
    """Lines for the columns the user left out (drop_columns, or not in feature_columns) and a row index."""
    lines = [f"  dropped by --data.drop_columns: {', '.join(dm.drop_columns)}"] if dm.drop_columns else []
    if dm.feature_columns:
        left_out = {*dm.feature_columns, *dm.drop_columns, dm.label_column, "__row"}
        others = [c for c in dm.table.columns if c not in left_out]
        lines += [f"  not in --data.feature_columns: {', '.join(others)}"] if others else []
    if dm.row_index:
        lines.append("  row index (first column, no name in the header): left out")
    return lines


def copies_across_splits(dm: Any) -> list[str]:
    """With duplicates kept: how many val and test rows have an exact copy among the training rows."""
    if dm.duplicates != "keep":
        return []
    hashes = pd.util.hash_pandas_object(dm.table.drop(columns="__row"), index=False).to_numpy()
    rows = dm.split_rows(dm.arrays[1])
    train = set(hashes[rows["train"]])
    counts = {split: int(np.isin(hashes[rows[split]], list(train)).sum()) for split in ("val", "test")}
    if not any(counts.values()):
        return []
    return [f"{counts['test']} of {len(rows['test'])} test rows and {counts['val']} of {len(rows['val'])} val rows "
            "have an exact copy among the training rows"]
