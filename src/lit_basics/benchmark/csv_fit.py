"""Rows per second of a fit on a big mixed table through train.py with configs/csv.yaml, beside
scikit-learn's pipeline (ColumnTransformer: imputer + scaler, imputer + one-hot; MLPClassifier) on the same rows."""

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_basics.benchmark.fits import REPO


def write_mixed_table(path: Path, rows: int = 200_000, seed: int = 0) -> Path:
    """Numeric columns (5 % gaps), two categorical ones, a boolean, and a 3-class label that depends on them."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 6))
    city = rng.choice(["north", "south", "east", "west", "centre"], rows)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    score = numeric[:, 0] + 0.5 * numeric[:, 1] ** 2 + (city == "north") - (plan == "pro") + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(6)])
    frame[frame.columns] = frame.mask(rng.random(frame.shape) < 0.05)  # gaps
    frame["city"], frame["plan"], frame["member"] = city, plan, rng.random(rows) < 0.4
    frame["label"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    frame.to_csv(path, index=False)
    return path


def csv_fit_rows_per_s(rows: int = 200_000, epochs: int = 3) -> dict[str, Any]:
    """Training rows x epochs per second of fit time: ours (LitFNN, the shipped csv config) and scikit-learn's."""
    import warnings

    from sklearn.compose import make_column_transformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from lit_basics.cli import cli_main

    with tempfile.TemporaryDirectory() as folder:
        path = write_mixed_table(Path(folder) / "mixed.csv", rows)
        metrics = cli_main(["fit", "--config", str(REPO / "configs/csv.yaml"), f"--data.init_args.path={path}",
                            "--data.init_args.label_column=label", f"--trainer.max_epochs={epochs}",
                            "--trainer.logger=false", "--trainer.enable_progress_bar=false",
                            f"--trainer.default_root_dir={folder}/logs", "--trainer.callbacks=[]",
                            "--trainer.enable_checkpointing=false"])
        frame = pd.read_csv(path)
    train_rows = int(rows * 0.6)  # the default split: 60 % train, 20 % val, 20 % test
    ours = train_rows * epochs / metrics["fit_seconds"]
    x, y = frame.drop(columns="label"), frame["label"]
    numeric = [c for c in x.columns if c.startswith("x")]
    prep = make_column_transformer((make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                                   (make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                  OneHotEncoder(handle_unknown="ignore")), ["city", "plan", "member"]))
    model = make_pipeline(prep, MLPClassifier((32, 32), batch_size=32, max_iter=epochs, random_state=0))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x.iloc[:train_rows], y.iloc[:train_rows])
    sklearn = train_rows * epochs / (time.perf_counter() - started)
    return {"csv_fit_rows_per_s": ours, "csv_fit_rows_per_s_sklearn": sklearn, "csv_fit_test_acc": metrics["test/acc"],
            "csv_fit_rows": rows}
