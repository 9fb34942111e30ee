"""Real tables as other tools write them (issue 21): target units, numeric column names, row indexes and IDs,
label hygiene, leaks, files that are no CSV text."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lit_basics.data import CSVDataModule
from lit_basics.models import load_model

from .conftest import config, run_cli

PREDICT = "--trainer.callbacks+=lit_basics.callbacks.PredictionCSVWriter"


def prices(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A regression table whose target is in its own units: mean about 1000, std about 300."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    price = 1000 + 300 * (0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.2 * rng.normal(size=n))
    return pd.DataFrame({"carat": x[:, 0], "depth": x[:, 1], "table": x[:, 2], "price": price.round(2)})


def fit_csv(path: str, *options: str) -> dict:
    return run_cli("fit", "--config", config("csv"), "--data.path", path, "--trainer.max_epochs=2", *options)


def test_regression_predictions_come_back_in_the_targets_units(workdir):
    frame = prices()
    path = str(workdir / "prices.csv")
    frame.to_csv(path, index=False)
    regression = ["--data.label_column", "price", "--data.task", "regression", "--model.loss", "mse"]
    metrics = fit_csv(path, *regression)
    checkpoint = metrics["best_model_path"]
    mean, std = torch.load(checkpoint, weights_only=True)["CSVDataModule"]["target_scaler"]
    assert 900 < mean < 1100 and 200 < std < 400
    out = workdir / "predictions.csv"
    run_cli("predict", "--config", config("csv"), "--data.path", path, *regression, "--ckpt_path", checkpoint,
            PREDICT, f"--trainer.callbacks.output_path={out}")
    table = pd.read_csv(out)
    np.testing.assert_allclose(table["target"], frame["price"].iloc[table["row"] - 1], rtol=1e-6)
    assert 400 < table["prediction"].median() < 1600

    dm = CSVDataModule(path=path, label_column="price", task="regression")
    dm.setup("predict")
    with torch.no_grad():
        standardised = load_model(checkpoint)(dm.tensors["test"][0]).squeeze(-1).double().numpy()
    np.testing.assert_allclose(table["prediction"], standardised * std + mean, rtol=1e-5)
    assert dm.target_scale == pytest.approx(std) and dm.target_to_units(torch.zeros(1)).item() == pytest.approx(mean)

    new_rows = str(workdir / "new.csv")
    frame.drop(columns="price").iloc[:5].to_csv(new_rows, index=False)
    run_cli("predict", "--config", config("csv"), "--data.path", path, *regression, "--ckpt_path", checkpoint,
            "--data.predict_path", new_rows, PREDICT, f"--trainer.callbacks.output_path={workdir / 'new_p.csv'}")
    np.testing.assert_allclose(pd.read_csv(workdir / "new_p.csv")["prediction"],
                               standardised_of(dm, checkpoint, 5) * std + mean, rtol=1e-5)


def standardised_of(dm: CSVDataModule, checkpoint: str, n: int) -> np.ndarray:
    """The model's standardised outputs on the first `n` data rows of the file."""
    x = torch.as_tensor(dm.transform(dm.arrays[0].iloc[:n]))
    with torch.no_grad():
        return load_model(checkpoint)(x).squeeze(-1).double().numpy()


def test_classification_targets_are_unchanged_by_target_to_units(tmp_path):
    frame = prices()
    frame["label"] = (frame["price"] > 1000).astype(int)
    path = str(tmp_path / "c.csv")
    frame.drop(columns="price").to_csv(path, index=False)
    dm = CSVDataModule(path=path, label_column="label")
    dm.setup("fit")
    y = dm.tensors["train"][1]
    assert dm.target_scale == 1.0 and torch.equal(dm.target_to_units(y), y)


def numbered_columns(path) -> str:
    """A table whose column names are numbers (as written with --data.header false, or by some exports)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"0": range(60), "1": rng.normal(size=60), "2": rng.normal(size=60),
                          "15": np.arange(60) % 4, "label": np.arange(60) % 2})
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(("option", "expected"), [
    (["--data.drop_columns", "[0, 1, 15]"], "numeric (median-imputed, standardised): 2\n"),
    (["--data.feature_columns", "[2,15]"], "numeric (median-imputed, standardised): 2, 15\n"),
    (["--data.feature_columns=[1]"], "numeric (median-imputed, standardised): 1\n"),
    (["--data.categorical_columns", "[15]"], "categorical (most-frequent-imputed, one-hot): 15 (4 values)"),
    (["--data.drop_columns", "0"], "numeric (median-imputed, standardised): 1, 2, 15\n"),
])
def test_column_names_that_are_numbers_work_in_list_options(workdir, option, expected):
    metrics = fit_csv(numbered_columns(workdir / "numbered.csv"), "--trainer.max_epochs=1", *option)
    assert expected in (Path(metrics["log_dir"]) / "data_summary.txt").read_text()


def test_column_names_that_are_numbers_work_in_a_config_file(workdir):
    path = numbered_columns(workdir / "numbered.csv")
    (workdir / "numbered.yaml").write_text(f"data:\n  class_path: lit_basics.data.CSVDataModule\n  init_args:\n"
                                           f"    path: {path}\n    drop_columns: [0, 15]\n")
    metrics = run_cli("fit", "--config", str(workdir / "numbered.yaml"), "--trainer.max_epochs=1")
    assert "numeric (median-imputed, standardised): 1, 2\n" in (Path(metrics["log_dir"]) / "data_summary.txt"
                                                                 ).read_text()


def patients(n: int = 80, seed: int = 2) -> pd.DataFrame:
    """A clinical-style table sorted by its label, with a patient number and a running row number."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(10_000, 99_999), n, replace=False)
    frame = pd.DataFrame({"visit": np.arange(1, n + 1), "pidnum": ids,
                          "age": rng.normal(50, 10, n).round(1), "dose": rng.choice([10, 20, 40], n),
                          "outcome": np.where(np.arange(n) < n // 2, "stable", "worse")})
    return frame


def summary_of(metrics: dict) -> str:
    return (Path(metrics["log_dir"]) / "data_summary.txt").read_text()


@pytest.mark.parametrize("writer", ["R write.csv", "pandas to_csv"])
def test_a_row_index_and_numeric_ids_are_dropped_with_a_note(workdir, capsys, writer):
    frame = patients()
    path = workdir / "trial.csv"
    if writer == "R write.csv":  # "","visit",... with quoted row numbers 1..n
        frame.index = frame.index + 1
        frame.to_csv(path, quoting=1, index_label="")
        first = "row numbers 1..80"
    else:
        frame.to_csv(path)
        first = "row numbers 0..79"
    assert path.read_text().split(",")[0] in ('""', "")
    summary = summary_of(fit_csv(str(path), "--data.label_column", "outcome", "--trainer.max_epochs=1"))
    out = capsys.readouterr().out
    assert f"note: the first column has no name and holds {first}: read as the row index" in out
    assert "numeric (median-imputed, standardised): age, dose\n" in summary
    assert "visit (a running number 1..80, one per row (an ID" in summary
    assert "pidnum (a different integer in every row (an ID" in summary
    assert "row index (first column, no name in the header): left out" in summary


def test_a_numeric_id_listed_in_feature_columns_is_kept(workdir):
    path = str(workdir / "trial.csv")
    patients().to_csv(path, index=False)
    summary = summary_of(fit_csv(path, "--data.label_column", "outcome", "--trainer.max_epochs=1",
                                 "--data.feature_columns", "[visit, age]"))
    assert "numeric (median-imputed, standardised): visit, age\n" in summary
    assert "not in --data.feature_columns: pidnum, dose" in summary


def test_the_summary_file_lists_every_column_and_the_users_drops(workdir, capsys):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(60, 9)), columns=[f"x{i}" for i in range(9)]).round(3)
    frame["label"] = np.arange(60) % 2
    path = str(workdir / "wide.csv")
    frame.to_csv(path, index=False)
    summary = summary_of(fit_csv(path, "--trainer.max_epochs=1", "--data.drop_columns", "[x7, x8]"))
    console = capsys.readouterr().out
    assert "numeric (median-imputed, standardised): 7 columns (x0, x1, x2, ...)" in console
    assert "numeric (median-imputed, standardised): x0, x1, x2, x3, x4, x5, x6\n" in summary
    assert "dropped by --data.drop_columns: x7, x8" in summary and "dropped by --data.drop_columns: x7, x8" in console
