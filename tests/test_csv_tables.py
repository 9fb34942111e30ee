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
