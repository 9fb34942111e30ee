"""A user's own table: any reasonable CSV file, preprocessed by a scikit-learn ColumnTransformer."""

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lit_basics.data.base import ArrayDataModule, Arrays, take_rows
from lit_basics.data.batching import TensorBatchLoader
from lit_basics.data.csv_columns import (
    IMPUTE,
    build_transformer,
    category_strings,
    export_state,
    plan_columns,
    prepare,
    rebuild,
)
from lit_basics.data.csv_label import (
    DUPLICATES,
    drop_repeated_rows,
    near_perfect_columns,
    quantity_as_classes,
    refuse_label_copies,
    strip_labels,
)
from lit_basics.data.csv_numbers import NumberFormat, numbers_as_text
from lit_basics.data.csv_read import missing_markers, read_table
from lit_basics.data.csv_summary import table_summary
from lit_basics.errors import ConfigError, check_choice

MANY_FLOAT_LABELS = 20  # a float label with more distinct values than this is a quantity, not classes


class CSVDataModule(ArrayDataModule):
    """Rows of a CSV file; `label_column` is the target, the other columns features of any type.

    Numeric columns are imputed (median) and standardised; text, boolean and `categorical_columns`
    are imputed (most frequent) and one-hot encoded (unseen values at predict time: all zeros);
    dates become year and day of year; constant, empty and ID-like columns are dropped with a note.
    All of it is fitted on the training rows only and saved in checkpoints.

    Args:
        path: the CSV file.
        label_column: name of the target column (rows where it is missing are dropped).
        feature_columns: the feature columns to use; every other column when omitted.
        categorical_columns: columns to one-hot encode even when their values are numbers.
        drop_columns: columns to leave out.
        impute: missing feature values: median or mean (numeric; most frequent for categories),
            drop_rows (drop rows with a gap), none (refuse gaps).
        sep: the delimiter; sniffed when omitted. encoding: the file's text encoding.
        skiprows: lines before the header. header: false when the file has no header (columns are then 0, 1, ...).
        decimal, thousands: how numbers are written ("1,5" with decimal ","; "1,234" with thousands ",").
        na_values: cell values that mean missing besides pandas' own (empty, NA, NaN, null, ...), e.g. ["?"];
            one value, or values in brackets as a shell passes them ("?", "[?, -999]"), are taken as text.
            A column of numbers that pandas reads as text is refused, naming which of these reads it.
        task: classification (labels of any type, encoded to 0..C-1) or regression (numeric target).
        duplicates: rows repeated exactly: drop (before the split, so no copy sits in train and test) or keep.
        predict_path: a CSV file of new rows (no label needed) for `predict`; its data row numbers are kept.
    """

    name = "csv"

    def __init__(
        self,
        path: str,
        label_column: str = "label",
        feature_columns: list[str | int] | None = None,
        categorical_columns: list[str | int] | None = None,
        drop_columns: list[str | int] | None = None,
        impute: str = "median",
        sep: str | None = None,
        encoding: str = "utf-8-sig",
        skiprows: int = 0,
        header: bool = True,
        decimal: str = ".",
        thousands: str | None = None,
        na_values: list[str] | str | None = None,
        task: str = "classification",
        predict_path: str | None = None,
        duplicates: str = "drop",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("task", task, ("classification", "regression"))
        check_choice("impute", impute, IMPUTE)
        check_choice("duplicates", duplicates, DUPLICATES)
        self.duplicates = duplicates
        self.path, self.label_column, self.task, self.impute = path, str(label_column), task, impute
        self.feature_columns = [str(c) for c in feature_columns] if feature_columns else None
        self.categorical_columns = [str(c) for c in categorical_columns or []]
        self.drop_columns = [str(c) for c in drop_columns or []]
        self.numbers = NumberFormat(decimal, thousands)
        self.read_options = {"sep": sep, "encoding": encoding, "skiprows": skiprows, "header": header,
                             "numbers": self.numbers, "na_values": missing_markers(na_values)}
        self.predict_path = predict_path
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.row_index: str | None = None  # what a nameless first column held (read as the row index)
        self.counts: dict[str, int] = {}
        self.prediction_rows: np.ndarray | None = None
        self.transformer: Any = None
        self.fold_transformers: list[Any] = []  # with fold_features: each fold's fitted transformer, in order
        self.fold_preprocessing: list[dict[str, Any]] = []  # and its exported statistics (saved in checkpoints)
        self.blocks_restored = False  # the fold transformers came from a checkpoint
        self.preprocessing: dict[str, Any] | None = None
        _, y = self.arrays  # read and validate now, before any run folder exists
        train = self.split_rows(y)["train"]
        self.width = self.fit_split_features(train).shape[1]
        for column, score in near_perfect_columns(self.arrays[0].iloc[train], y[train], task, self.seed):
            self.warnings.append(f"column {column!r} alone predicts the label {self.label_column!r} almost perfectly "
                                 f"on the training rows (held-out score {score:.3f}): check it is not derived from "
                                 "the label or recorded after it")
        self.predict_table = self.read_predict_table() if predict_path else None

    @classmethod
    def run_name(cls, init_args: dict[str, Any]) -> str:
        """Runs of a CSV file go to logs/<file stem>_<label column>/ (a regression of it to ..._regression/): runs
        of one file with different labels or tasks are kept apart."""
        stem = Path(str(init_args.get("path") or cls.name)).stem
        name = "_".join(str(part) for part in (stem, init_args.get("label_column")) if part)
        if init_args.get("task") == "regression":
            name += "_regression"
        return re.sub(r"[^\w.-]+", "_", name).strip("._") or cls.name

    # --- reading ---------------------------------------------------------------------------------
    def load_arrays(self) -> Arrays:
        table, _ = read_table(self.path, **self.read_options)
        self.row_index = table.attrs.get("row_index")
        self.notes += [self.row_index] if self.row_index else []
        self.counts["read"] = len(table)
        self.check_column_names(list(table.columns))
        numbers = [c for c in table.columns if _is_number(c)]
        if self.read_options["header"] and len(numbers) >= 2:
            self.notes.append(f"the header has numbers as names ({', '.join(numbers)}); "
                              "if the first line is data, use --data.header false")
        table["__row"] = np.arange(1, len(table) + 1)
        missing_label = table[self.label_column].isna()
        if missing_label.any():
            self.notes.append(f"dropped {int(missing_label.sum())} rows whose label {self.label_column!r} is missing")
            table = table[~missing_label].reset_index(drop=True)
        if table.empty:
            raise ConfigError(f"csv: every row of {self.path!r} lacks the label {self.label_column!r}")
        self.plan = plan_columns(table.drop(columns="__row"), self.label_column, self.feature_columns,
                                 self.categorical_columns, self.drop_columns, rows=table["__row"].tolist(),
                                 number_format=self.numbers)
        table = self.handle_gaps(table)
        table, repeated = drop_repeated_rows(table, self.duplicates)
        self.notes += [repeated] if repeated else []
        refuse_label_copies(table, self.plan.used, self.label_column, self.task)
        self.table = table
        self.row_numbers = table["__row"].to_numpy()
        self.counts["kept"] = len(table)
        return prepare(table, self.plan, list(self.row_numbers), self.numbers), self.labels(table[self.label_column])

    def check_column_names(self, columns: list[str]) -> None:
        """The label, listed features, categories and drops must be columns; the label no feature."""
        listed = ", ".join(columns)
        if self.label_column not in columns:
            raise ConfigError(f"csv: label column {self.label_column!r} not found; columns are: {listed}")
        for option, names in (("feature_columns", self.feature_columns or []),
                              ("categorical_columns", self.categorical_columns), ("drop_columns", self.drop_columns)):
            absent = [c for c in names if c not in columns]
            if absent:
                raise ConfigError(f"csv: {option} {absent} not found; columns are: {listed}")
            if self.label_column in names and option != "drop_columns":
                raise ConfigError(f"csv: the label column {self.label_column!r} is also listed in {option}; "
                                  "a model must not see its own target")
        if self.label_column in self.drop_columns:
            raise ConfigError(f"csv: the label column {self.label_column!r} is listed in drop_columns")
        both = sorted(set(self.feature_columns or []) & set(self.drop_columns))
        if both:
            raise ConfigError(f"csv: columns {both} are listed both in feature_columns and drop_columns")

    def handle_gaps(self, table: pd.DataFrame) -> pd.DataFrame:
        """impute=none refuses a gap, drop_rows drops its row; median/mean leave them to the imputers."""
        gaps = table[self.plan.used].isna()
        if self.impute in ("median", "mean") or not gaps.any().any():
            return table
        if self.impute == "none":
            row, col = np.argwhere(gaps.to_numpy())[0]
            raise ConfigError(f"csv: feature column {self.plan.used[col]!r} has a missing value in data row "
                              f"{table['__row'].iloc[row]} and impute='none'; allowed: median, mean, drop_rows")
        keep = ~gaps.any(axis=1)
        self.notes.append(f"dropped {int((~keep).sum())} rows with a missing feature value (impute=drop_rows)")
        if not keep.any():
            raise ConfigError("csv: every row has a missing feature value; use --data.impute median")
        return table[keep].reset_index(drop=True)

    def labels(self, values: pd.Series) -> np.ndarray:
        name = self.label_column
        if self.task == "regression":
            if not pd.api.types.is_numeric_dtype(values):
                rows = list(self.row_numbers)
                if numbers_as_text(values, rows, self.numbers, feature=False) is None:  # text; else read or refused
                    raise ConfigError(f"csv: label column {name!r} must be numeric for task 'regression'")
                values = self.numbers.parse(values).rename(name)
            if np.isinf(values.to_numpy(dtype=np.float64)).any():
                raise ConfigError(f"csv: label column {name!r} has an inf value")
            return values.to_numpy(dtype=np.float64)
        numbers = None if self.numbers.plain else self.numbers.parse(values)  # the file was read as text
        if numbers is not None and numbers.notna().all():  # numbers again
            values = numbers.rename(name)
            values = values.astype("int64") if np.all(np.mod(values, 1) == 0) else values
        values, merged = strip_labels(values)
        self.notes += [merged] if merged else []
        if pd.api.types.is_float_dtype(values):
            fractional = not np.all(np.mod(values.to_numpy(), 1) == 0)
            if fractional and values.nunique() > MANY_FLOAT_LABELS:
                raise ConfigError(f"csv: label column {name!r} has {values.nunique()} distinct float values, too "
                                  "many classes; for a numeric target use --data.task regression")
        quantity_as_classes(values, name)
        labels = category_strings(values) if pd.api.types.is_bool_dtype(values) else values
        if labels.nunique() < 2:
            raise ConfigError(f"csv: label column {name!r} has one class; classification needs >= 2")
        return labels.to_numpy()

    def check_features(self, x: Any, rows: int) -> Any:
        return x  # a table of prepared columns; the ColumnTransformer makes it numeric

    # --- preprocessing -------------------------------------------------------------------------
    def fit_features(self, train_rows: np.ndarray, x: Any = None) -> np.ndarray:
        """Fit the ColumnTransformer on `train_rows` of the prepared table only; all rows transformed."""
        x = self.arrays[0] if x is None else x
        if self.preprocessing is None or not self.preprocessing.get("restored"):
            self.transformer = build_transformer(self.plan, self.impute, self.standardize)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.transformer.fit(take_rows(x, train_rows))
            self.preprocessing = export_state(self.transformer, self.plan, self.impute, self.standardize)
        self.fold_transformers.append(self.transformer)
        self.fold_preprocessing.append(self.preprocessing)
        return self.transform(x)

    def fit_split_features(self, train_rows: np.ndarray, x: Any = None) -> np.ndarray:
        """As ArrayDataModule's; fold blocks restored from a checkpoint transform without refitting."""
        if self.fold_features and self.blocks_restored:
            blocks = [self.transform(self.arrays[0] if x is None else x, [t]) for t in self.fold_transformers]
            self.block_widths = [block.shape[1] for block in blocks]
            return np.concatenate(blocks, axis=1)
        self.fold_transformers, self.fold_preprocessing = [], []
        return super().fit_split_features(train_rows, x)

    def transform(self, x: pd.DataFrame, transformers: list[Any] | None = None) -> np.ndarray:
        """Rows through the fitted transformer, or through each of `transformers`, side by side."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unseen categories: counted in transform_new
            blocks = [t.transform(x) for t in transformers or [self.transformer]]
            return np.concatenate(blocks, axis=1, dtype=np.float32)

    @property
    def num_features(self) -> int:
        """Width after preprocessing (fitted on the training split), e.g. one column per category."""
        return int(self.width)

    def content_digest(self) -> dict[str, str]:
        """sha256 of the rows of each split (train, val, test) as read: a file changed in any row changes one."""
        from lit_basics.checkpoints import rows_digest

        x, y = self.arrays
        return {split: rows_digest(take_rows(x, rows), y[rows]) for split, rows in self.split_indices(y).items()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.preprocessing is not None:
            state["preprocessing"] = {k: v for k, v in self.preprocessing.items() if k != "restored"}
        if self.fold_features:
            state["fold_preprocessing"] = [{k: v for k, v in p.items() if k != "restored"}
                                           for p in self.fold_preprocessing]
        state["label_column"] = self.label_column
        return state

    def check_saved_state(self, state: dict[str, Any]) -> tuple[Any, Any]:
        """A checkpoint's CSV state against this run's columns, label and classes: one line on a difference
        (checked before its rows are, so the message names the columns, not only changed rows)."""
        saved = state.get("preprocessing")
        if saved is None:
            raise ConfigError("csv: the checkpoint holds no fitted CSV preprocessing (made for another data set?)")
        transformer, plan = rebuild(saved)
        if plan.to_state() != self.plan.to_state() or state.get("label_column") != self.label_column:
            raise ConfigError(f"csv: the checkpoint was trained with label {state.get('label_column')!r} and "
                              f"features {plan.used}; this config gives {self.label_column!r} and {self.plan.used}")
        classes = state.get("classes")
        if classes is not None and self.classes is not None and [str(c) for c in classes] != [
                str(c) for c in self.classes]:
            raise ConfigError(f"csv: the checkpoint's classes {classes} differ from this file's {list(self.classes)}")
        return transformer, plan

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Use the checkpoint's fitted preprocessing; its columns and classes must be this data's."""
        transformer, _ = self.check_saved_state(state)
        if self.fold_features:  # a fold ensemble's checkpoint: one fitted transformer per fold block
            saved = state.get("fold_preprocessing") or []
            if len(saved) != self.folds:
                raise ConfigError(f"csv: the checkpoint holds {len(saved)} fold preprocessings; this config has "
                                  f"fold_features with folds={self.folds}")
            self.fold_transformers = [rebuild(fold)[0] for fold in saved]
            self.fold_preprocessing, self.blocks_restored = list(saved), True
        else:
            self.transformer, self.preprocessing = transformer, {**state["preprocessing"], "restored": True}
        self.restore_target_scaler(state)
        if self.tensors:
            self.tensors = {}
            self.setup()

    # --- new rows ------------------------------------------------------------------------------
    def read_predict_table(self) -> pd.DataFrame:
        table, _ = read_table(self.predict_path, **self.read_options)
        absent = [c for c in self.plan.used if c not in table.columns]
        if absent:
            raise ConfigError(f"csv: predict file {self.predict_path!r} lacks the feature columns {absent}; "
                              f"it has: {', '.join(table.columns)}")
        return table

    def transform_new(self, table: pd.DataFrame) -> np.ndarray:
        """Raw rows of the same kind (gaps, unseen categories, no label) through the fitted preprocessing."""
        rows = list(range(1, len(table) + 1))
        gaps = table[self.plan.used].isna()
        if self.impute in ("none", "drop_rows") and gaps.any().any():
            row, col = np.argwhere(gaps.to_numpy())[0]
            raise ConfigError(f"csv: predict file row {row + 1} has no value for {self.plan.used[col]!r}; the "
                              f"model was trained with impute={self.impute!r}, which fills no gaps")
        x = prepare(table, self.plan, rows, self.numbers)
        fitted = self.fold_preprocessing if self.fold_features else [self.preprocessing]
        categories = [sum(levels, []) for levels in zip(*(p.get("categories", []) for p in fitted), strict=True)]
        for column, known in zip(self.plan.categorical, categories, strict=True):  # known to any fold: no note
            values = x[column].dropna()
            unseen = values[~values.isin(known)]
            if len(unseen):
                print(f"note: {len(unseen)} values of {column!r} in {self.predict_path} were not seen in training "
                      f"(e.g. {unseen.iloc[0]!r}); they are encoded as no known category")
        return self.transform(x, self.fold_transformers if self.fold_features else None)

    def predict_dataloader(self) -> TensorBatchLoader:
        if self.predict_table is None:
            self.prediction_rows = self.row_numbers[self.split_rows(self.arrays[1])[self.predict_split]]
            return super().predict_dataloader()
        x = torch.as_tensor(self.transform_new(self.predict_table))
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.prediction_rows = np.arange(1, len(x) + 1)
        return TensorBatchLoader((x.to(device),), self.eval_batch_size)

    # --- the summary ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        fresh = not self.tensors
        super().setup(stage)
        if fresh and stage == "fit" and self.trainer is not None and self.trainer.is_global_zero:
            print(self.summary())
            if self.trainer.loggers and self.trainer.log_dir:
                folder = Path(self.trainer.log_dir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "data_summary.txt").write_text(self.summary(shown=None) + "\n")

    def summary(self, shown: int | None = 6) -> str:
        """What was read, kept, dropped, imputed and encoded, and the classes: printed before training.
        `shown`: past this many numeric columns the console gives a count (None, for data_summary.txt: every column)."""
        return table_summary(self, shown)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
