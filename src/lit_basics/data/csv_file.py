"""A user's own table: numeric feature columns plus one label column in a CSV file."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_basics.data.base import ArrayDataModule, Arrays
from lit_basics.errors import ConfigError, check_choice


class CSVDataModule(ArrayDataModule):
    """Rows of a CSV file; `label_column` is the target, every other (or each named) column a feature.

    Args:
        path: the CSV file (header row required).
        label_column: name of the target column.
        feature_columns: the feature columns to use; all but the label when omitted.
        task: classification (labels of any type, encoded to 0..C-1) or regression (numeric target).
    """

    name = "csv"

    def __init__(
        self,
        path: str,
        label_column: str = "label",
        feature_columns: list[str] | None = None,
        task: str = "classification",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("task", task, ("classification", "regression"))
        self.path, self.label_column, self.feature_columns, self.task = path, label_column, feature_columns, task
        _ = self.arrays  # read and validate now, before any run folder exists

    def read_table(self) -> pd.DataFrame:
        path = Path(self.path)
        if not path.is_file():
            raise ConfigError(f"csv: file {str(path)!r} does not exist")
        try:
            table = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ConfigError(f"csv: file {str(path)!r} is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ConfigError(f"csv: file {str(path)!r} is not a readable CSV: {str(err).splitlines()[0]}") from None
        if table.empty:
            raise ConfigError(f"csv: file {str(path)!r} has a header but no rows")
        return table

    def load_arrays(self) -> Arrays:
        table = self.read_table()
        columns = list(table.columns)
        if self.label_column not in columns:
            raise ConfigError(f"csv: label column {self.label_column!r} not found; columns are: {', '.join(columns)}")
        features = self.feature_columns or [c for c in columns if c != self.label_column]
        missing = [c for c in features if c not in columns]
        if missing or not features:
            listed = ", ".join(columns)
            raise ConfigError(f"csv: feature columns {missing or features} not found; columns are: {listed}")
        for column in features:
            if not pd.api.types.is_numeric_dtype(table[column]):
                example = table[column][pd.to_numeric(table[column], errors="coerce").isna()].iloc[0]
                raise ConfigError(f"csv: feature column {column!r} is not numeric (value {example!r})")
        x = table[features].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise ConfigError(
                f"csv: feature column {features[col]!r} has a NaN or inf value in data row {row + 1}; "
                "clean or impute the file first"
            )
        y = table[self.label_column]
        if y.isna().any():
            raise ConfigError(f"csv: label column {self.label_column!r} has missing values")
        if self.task == "regression":
            if not pd.api.types.is_numeric_dtype(y):
                raise ConfigError(f"csv: label column {self.label_column!r} must be numeric for task 'regression'")
            return x, y.to_numpy(dtype=np.float64)
        if y.nunique() < 2:
            raise ConfigError(f"csv: label column {self.label_column!r} has one class; classification needs >= 2")
        return x, y.to_numpy()
