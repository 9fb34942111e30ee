"""Column roles of a user's table and the scikit-learn ColumnTransformer built from them.

Roles are decided once from the column types of the whole file (numeric, categorical, date, or
dropped with a reason); the transformer's statistics (medians or means, scales, categories) are
fitted on training rows only. `export_state` and `rebuild` turn a fitted transformer into plain
values and tensors and back, so it travels in a checkpoint that loads with `weights_only=True`.
"""

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lit_basics.data.csv_numbers import NUMBER_TEXT, PLAIN_NUMBERS, NumberFormat, numbers_as_text
from lit_basics.errors import ConfigError

IMPUTE = ("median", "mean", "drop_rows", "none")
DATE_PARTS = ("year", "dayofyear")
ID_MIN_ROWS = 10  # below this many rows a column of distinct strings is still taken as a category


@dataclass
class ColumnPlan:
    """Which columns are used and how; `dropped` maps a column to the reason it is left out."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.dates]

    @property
    def numeric_inputs(self) -> list[str]:
        """Numeric columns the transformer sees: the numeric ones, then each date's parts."""
        return [*self.numeric, *(f"{c}_{part}" for c in self.dates for part in DATE_PARTS)]

    def describe(self, gaps: pd.Series, categories: list[list[str]], impute: str, standardize: bool,
                 shown: int | None = 6) -> list[str]:
        """One line per role (what the summary prints): its columns, their gaps and how they are prepared;
        past `shown` numeric columns a count and the ones with gaps (None: every column)."""
        fill = {"median": "median-imputed, ", "mean": "mean-imputed, "}.get(impute, "")
        scaled = "standardised" if standardize else "as they are"
        lines = []
        if self.numeric:
            lines.append(f"  numeric ({fill}{scaled}): {_with_gaps(self.numeric, gaps, shown)}")
        if self.dates:
            lines.append(f"  dates -> year, day of year ({fill}{scaled}): {_with_gaps(self.dates, gaps, shown)}")
        if self.categorical:
            named = [f"{c} ({len(cats)} values{f', {gaps[c]} missing' if gaps[c] else ''})"
                     for c, cats in zip(self.categorical, categories, strict=True)]
            most = "most-frequent-imputed, " if fill else ""
            lines.append(f"  categorical ({most}one-hot): {', '.join(named)}")
        if self.dropped:
            lines.append(f"  dropped: {'; '.join(f'{c} ({why})' for c, why in self.dropped.items())}")
        return lines

    def to_state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "dates": self.dates,
                "dropped": dict(self.dropped)}


def _with_gaps(columns: list[str], gaps: pd.Series, shown: int | None = 6) -> str:
    """`a, b (3 missing)`; past `shown` columns (None: never), a count and the columns with gaps only."""
    if shown is None or len(columns) <= shown:
        return ", ".join(f"{c} ({gaps[c]} missing)" if gaps[c] else c for c in columns)
    gapped = ", ".join(f"{c} ({gaps[c]})" for c in columns if gaps[c])
    return f"{len(columns)} columns ({', '.join(columns[:3])}, ...)" + (f"; missing: {gapped}" if gapped else "")


def plan_columns(table: pd.DataFrame, label: str, features: list[str] | None, categorical: list[str],
                 drop: list[str], rows: list[int] | None = None, number_format: NumberFormat = PLAIN_NUMBERS
                 ) -> ColumnPlan:
    """Decide each feature column's role from its values; an explicitly named column is never dropped.
    `rows`: the file's data row number of each table row (for messages; 1, 2, ... when None)."""
    listed = set(features or [])
    candidates = features or [c for c in table.columns if c != label and c not in drop]
    plan = ColumnPlan()
    for column in candidates:
        role, reason = column_role(table[column], column in categorical, explicit=column in listed, rows=rows,
                                   number_format=number_format)
        if role == "drop":
            plan.dropped[column] = reason
        else:
            getattr(plan, role).append(column)
    if not plan.used:
        reasons = "; ".join(f"{c}: {r}" for c, r in plan.dropped.items())
        raise ConfigError(f"csv: no usable feature columns ({reasons or 'none besides the label'})")
    return plan


def column_role(values: pd.Series, categorical: bool, explicit: bool, rows: list[int] | None = None,
                number_format: NumberFormat = PLAIN_NUMBERS) -> tuple[str, str]:
    """('numeric' | 'categorical' | 'dates' | 'drop', reason for a drop); `rows`: the file's data row numbers."""
    name = values.name
    present = values.dropna()
    if present.empty:
        return _refuse_or_drop(explicit, name, "every value is missing")
    if present.nunique() == 1:
        value = present.iloc[0]
        return _refuse_or_drop(explicit, name, f"one value ({getattr(value, 'item', lambda: value)()!r})")
    if categorical or pd.api.types.is_bool_dtype(values):
        return "categorical", ""
    if not explicit and (reason := integer_id(values)):
        return "drop", reason
    if pd.api.types.is_numeric_dtype(values):
        check_finite(values, rows)
        return "numeric", ""
    if number_format.parse(present).notna().all():  # numbers written in the file's notation (read as text)
        return "numeric", ""
    if parse_dates(present) is not None:
        return "dates", ""
    if (as_numbers := numbers_as_text(values, rows, number_format)) is not None:
        return as_numbers, ""
    if len(present) == len(values) >= ID_MIN_ROWS and present.nunique() == len(values) and not explicit:
        return "drop", "a different value in every row (an ID)"
    return "categorical", ""


def integer_id(values: pd.Series) -> str | None:
    """Why an integer column is an identifier (a different integer in every row, e.g. a running row number
    or a patient number), or None. A model would learn the row order or the file's sorting from it."""
    if not pd.api.types.is_integer_dtype(values) or len(values) < ID_MIN_ROWS or values.nunique() != len(values):
        return None
    low, high = int(values.min()), int(values.max())
    if high - low + 1 == len(values):
        return f"a running number {low}..{high}, one per row (an ID; list it in --data.feature_columns to use it)"
    return "a different integer in every row (an ID; list it in --data.feature_columns to use it)"


def _refuse_or_drop(explicit: bool, name: str, reason: str) -> tuple[str, str]:
    if explicit:
        raise ConfigError(f"csv: feature column {name!r} cannot inform a model: {reason}")
    return "drop", reason


def check_finite(values: pd.Series, rows: list[int] | None = None) -> None:
    """An inf is refused with its data row in the file (`rows`: the file's numbering of the table's rows)."""
    bad = np.isinf(values.to_numpy(dtype=np.float64))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        row = rows[at] if rows is not None else at + 1
        raise ConfigError(f"csv: feature column {values.name!r} has an inf value in data row {row}; "
                          "replace it by a number or leave the cell empty")


def parse_dates(values: pd.Series) -> pd.Series | None:
    """The values as datetimes when every one parses, else None. Formats in turn: ISO 8601, day.month.year
    (dots mean day first), pandas' inferred one (month/day/year for slashes), then day/month/year."""
    text = values.astype(str)
    if not text.str.contains(r"\d", regex=True).all() or not text.str.contains(r"[-/:.]", regex=True).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in ("ISO8601", "%d.%m.%Y", None, "%d/%m/%Y"):
            try:
                parsed = pd.to_datetime(text, format=fmt, errors="coerce")
            except (ValueError, TypeError):
                continue
            if parsed.notna().all():
                return parsed
    return None


def prepare(table: pd.DataFrame, plan: ColumnPlan, rows: list[int] | None = None,
            number_format: NumberFormat = PLAIN_NUMBERS) -> pd.DataFrame:
    """The transformer's input: numeric columns as floats, dates as their parts, categories as strings.

    Values of another kind than the plan expects (text in a numeric column, a date that does not
    parse) are refused with their data row number (`rows` holds the file's numbering).
    """
    rows = rows if rows is not None else list(range(1, len(table) + 1))
    out: dict[str, Any] = {}
    for column in plan.numeric:
        out[column] = _numbers(table[column], rows, number_format)
    for column in plan.dates:
        stamps = _stamps(table[column], rows)
        out[f"{column}_year"] = stamps.dt.year.astype("float64")
        out[f"{column}_dayofyear"] = stamps.dt.dayofyear.astype("float64")
    for column in plan.categorical:
        out[column] = category_strings(table[column])
    return pd.DataFrame(out, index=table.index)[[*plan.numeric_inputs, *plan.categorical]]


def _numbers(values: pd.Series, rows: list[int], number_format: NumberFormat) -> pd.Series:
    numbers = number_format.parse(values)
    wrong = numbers.isna() & values.notna()
    if wrong.any():
        at = int(np.flatnonzero(wrong.to_numpy())[0])
        value = str(values.iloc[at]).strip()
        notation = (f" (numbers are read with decimal {number_format.decimal!r} and thousands "
                    f"{number_format.thousands!r}, as for training: set the same --data.decimal and "
                    "--data.thousands, and write this file alike)") if re.fullmatch(NUMBER_TEXT, value) else ""
        raise ConfigError(f"csv: column {values.name!r} is numeric but data row {rows[at]} holds "
                          f"{values.iloc[at]!r}{notation}")
    check_finite(numbers.rename(values.name), rows)
    return numbers.astype("float64")


def _stamps(values: pd.Series, rows: list[int]) -> pd.Series:
    present = values.dropna()
    parsed = parse_dates(present) if len(present) else present
    if parsed is None:
        for at, value in zip(rows, values, strict=True):
            if pd.notna(value) and parse_dates(pd.Series([value])) is None:
                raise ConfigError(f"csv: date column {values.name!r} has {value!r} in data row {at}, not a date")
        raise ConfigError(f"csv: date column {values.name!r} mixes date formats; write every date alike")
    return pd.to_datetime(parsed, errors="coerce").reindex(values.index)


def category_strings(values: pd.Series) -> pd.Series:
    """Category values as text, missing as NaN, so 1, 1.0 and '1' or True and 'True' are one category."""
    def text(value: Any) -> Any:
        if pd.isna(value):
            return np.nan
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    return values.map(text).astype(object)


def build_transformer(plan: ColumnPlan, impute: str, standardize: bool,
                      categories: list[list[str]] | None = None) -> ColumnTransformer:
    """numeric -> imputer (median or mean) + StandardScaler; categorical -> most-frequent imputer + one-hot."""
    fills = impute in ("median", "mean")
    numeric = [SimpleImputer(strategy=impute)] if fills else []
    numeric += [StandardScaler()] if standardize else []
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, categories=categories or "auto")
    categorical = [SimpleImputer(strategy="most_frequent")] if fills else []
    parts = []
    if plan.numeric_inputs:
        parts.append(("numeric", make_pipeline(*numeric) if numeric else "passthrough", plan.numeric_inputs))
    if plan.categorical:
        parts.append(("categorical", make_pipeline(*categorical, encoder), plan.categorical))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def export_state(transformer: ColumnTransformer, plan: ColumnPlan, impute: str, standardize: bool
                 ) -> dict[str, Any]:
    """The fitted statistics as plain values and tensors (what a weights-only checkpoint may hold)."""
    state: dict[str, Any] = {"plan": plan.to_state(), "impute": impute, "standardize": standardize,
                             "width": int(len(transformer.get_feature_names_out()))}
    pieces = transformer.named_transformers_
    numeric = pieces.get("numeric")
    if numeric is not None and numeric != "passthrough":
        steps = numeric.named_steps
        if "simpleimputer" in steps:
            state["numeric_fill"] = torch.as_tensor(steps["simpleimputer"].statistics_, dtype=torch.float64)
        if "standardscaler" in steps:
            state["mean"] = torch.as_tensor(steps["standardscaler"].mean_, dtype=torch.float64)
            state["scale"] = torch.as_tensor(steps["standardscaler"].scale_, dtype=torch.float64)
    categorical = pieces.get("categorical")
    if categorical is not None:
        steps = categorical.named_steps
        if "simpleimputer" in steps:
            state["categorical_fill"] = [str(v) for v in steps["simpleimputer"].statistics_]
        state["categories"] = [[str(v) for v in cats] for cats in steps["onehotencoder"].categories_]
    return state


def rebuild(state: dict[str, Any]) -> tuple[ColumnTransformer, ColumnPlan]:
    """A fitted transformer equal to the exported one: fitted on one row of its own statistics
    (the median or mean of one value is that value; the categories are given), scaler values set."""
    plan = ColumnPlan(**{k: list(v) if k != "dropped" else dict(v) for k, v in state["plan"].items()})
    transformer = build_transformer(plan, state["impute"], state["standardize"], state.get("categories"))
    row: dict[str, Any] = {}
    fill = state.get("numeric_fill")
    for i, column in enumerate(plan.numeric_inputs):
        row[column] = [float(fill[i]) if fill is not None else 0.0]
    for i, column in enumerate(plan.categorical):
        row[column] = [state["categorical_fill"][i] if "categorical_fill" in state else state["categories"][i][0]]
    transformer.fit(pd.DataFrame(row, dtype=object).astype({c: "float64" for c in plan.numeric_inputs}))
    if "mean" in state:
        scaler = transformer.named_transformers_["numeric"].named_steps["standardscaler"]
        scaler.mean_ = state["mean"].numpy()
        scaler.scale_ = state["scale"].numpy()
        scaler.var_ = scaler.scale_**2
    return transformer, plan
