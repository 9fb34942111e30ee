"""Real tables as other tools write them (issue 21): target units, numeric column names, row indexes and IDs,
label hygiene, leaks, files that are no CSV text."""

import re
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


def refusal(capsys, path: str, *options: str) -> str:
    """The one-line error of a fit that must be refused before anything is written."""
    with pytest.raises(SystemExit) as info:
        fit_csv(path, *options)
    assert info.value.code == 2 and not Path("logs").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def three_classes(n: int = 90, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n).round(3), "b": rng.normal(size=n).round(3),
                         "label": np.array(["cat", "dog", "fox"])[np.arange(n) % 3]})


def test_an_integer_quantity_under_classification_names_the_regression_task(workdir, capsys):
    frame = prices(300)
    frame["price"] = frame["price"].round().astype(int)
    path = str(workdir / "prices.csv")
    frame.to_csv(path, index=False)
    line = refusal(capsys, path, "--data.label_column", "price")
    assert "label column 'price' has" in line and "seen once: a quantity, not classes; for a numeric target use " \
        "--data.task regression" in line and len(line) < 300


def test_a_class_too_small_to_split_is_named_by_its_name(workdir, capsys):
    frame = three_classes()
    frame.loc[0, "label"] = "wolf"
    path = str(workdir / "rare.csv")
    frame.to_csv(path, index=False)
    line = refusal(capsys, path)
    assert "classes with too few rows to stratify into train, val and test: 'wolf' (1 row)" in line


def test_label_values_with_stray_spaces_are_one_class_with_a_note(workdir, capsys):
    frame = three_classes()
    frame.loc[::2, "label"] = frame["label"][::2] + " "
    path = str(workdir / "spaces.csv")
    frame.to_csv(path, index=False)
    summary = summary_of(fit_csv(path, "--trainer.max_epochs=1"))
    assert "classes: cat 30, dog 30, fox 30" in summary
    assert "note: label values stripped of surrounding spaces: 6 -> 3 classes ('cat ' is 'cat'; 45 rows)" in summary


def test_a_control_character_in_a_cell_is_refused_with_its_row_and_column(workdir, capsys):
    frame = three_classes()
    frame["colour"] = np.array(["red", "blue"])[np.arange(90) % 2]
    frame.loc[6, "colour"] = "red\x00"
    path = str(workdir / "nul.csv")
    frame.to_csv(path, index=False)
    line = refusal(capsys, path)
    assert "column 'colour' holds the control character '\\x00' in data row 7" in line


def test_repeated_rows_are_dropped_before_the_split_or_kept_and_reported(workdir, capsys):
    frame = three_classes()
    path = str(workdir / "triple.csv")
    pd.concat([frame, frame, frame]).to_csv(path, index=False)
    summary = summary_of(fit_csv(path, "--trainer.max_epochs=1"))
    assert "270 read, 180 dropped, 90 kept; 54 train / 18 val / 18 test" in summary
    assert "note: dropped 180 rows that repeat an earlier row exactly" in summary
    dm = CSVDataModule(path=path)
    rows = dm.split_rows(dm.arrays[1])
    seen = [set(map(tuple, dm.table.drop(columns="__row").iloc[rows[s]].to_numpy().tolist())) for s in rows]
    assert not (seen[0] & seen[2]) and not (seen[0] & seen[1])  # no row of train is in val or test
    kept = summary_of(fit_csv(path, "--trainer.max_epochs=1", "--data.duplicates", "keep"))
    assert "270 read, 0 dropped, 270 kept" in kept and "180 rows repeat an earlier row exactly and are kept" in kept
    assert re.search(r"note: \d+ of 54 test rows and \d+ of 54 val rows have an exact copy among the training rows",
                     kept)


@pytest.mark.parametrize(("column", "values", "what"), [
    ("copy", lambda label: label, "a copy"),
    ("code", lambda label: label.map({"cat": 10, "dog": 20, "fox": 30}), "a one-to-one recoding"),
])
def test_a_feature_that_is_the_label_under_another_name_is_refused(workdir, capsys, column, values, what):
    frame = three_classes()
    frame[column] = values(frame["label"])
    path = str(workdir / "leak.csv")
    frame.to_csv(path, index=False)
    line = refusal(capsys, path)
    assert f"feature column {column!r} is {what} of the label 'label': a model would read the answer" in line


def test_a_monotone_function_of_a_regression_target_is_refused(workdir, capsys):
    frame = prices()
    frame["price_eur"] = (frame["price"] * 0.92).round(4)
    path = str(workdir / "leak.csv")
    frame.to_csv(path, index=False)
    line = refusal(capsys, path, "--data.label_column", "price", "--data.task", "regression", "--model.loss", "mse")
    assert "feature column 'price_eur' is a monotone function of the label 'price'" in line


def test_a_column_that_alone_predicts_the_label_warns(workdir, capsys):
    frame = three_classes()
    rng = np.random.default_rng(5)
    frame["score"] = frame["label"].map({"cat": 1.0, "dog": 2.0, "fox": 3.0}) + rng.normal(0, 0.05, 90)
    path = str(workdir / "near.csv")
    frame.to_csv(path, index=False)
    summary = summary_of(fit_csv(path, "--trainer.max_epochs=1"))
    assert "warning: column 'score' alone predicts the label 'label' almost perfectly on the training rows" in summary
    assert "warning" in capsys.readouterr().out
    assert "warning" not in summary_of(fit_csv(str(_without(workdir, frame, "score")), "--trainer.max_epochs=1"))


def _without(workdir: Path, frame: pd.DataFrame, column: str) -> Path:
    path = workdir / "plain.csv"
    frame.drop(columns=column).to_csv(path, index=False)
    return path


def test_compressed_and_spreadsheet_files_are_named_by_their_first_bytes(workdir, capsys):
    import gzip
    import zipfile

    text = three_classes().to_csv(index=False)
    (workdir / "gz.csv").write_bytes(gzip.compress(text.encode()))
    with zipfile.ZipFile(workdir / "book.csv", "w") as book:  # the parts every .xlsx has
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    assert "is a gzip-compressed file, not CSV text (its first bytes say so); decompress it" in refusal(
        capsys, str(workdir / "gz.csv"))
    assert "is an Excel workbook (.xlsx), not CSV text" in refusal(capsys, str(workdir / "book.csv"))


def test_a_bom_kept_by_the_utf8_encoding_is_named(workdir, capsys):
    path = workdir / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + three_classes().to_csv(index=False).encode())
    line = refusal(capsys, str(path), "--data.encoding", "utf-8")
    assert "starts with a UTF-8 byte-order mark (BOM) that --data.encoding 'utf-8' keeps" in line
    assert "(it would read as 'a' with an invisible '\\ufeff' before it); use --data.encoding utf-8-sig" in line
    assert "90 kept" in summary_of(fit_csv(str(path), "--trainer.max_epochs=1"))  # the default removes it


def test_a_fit_uses_one_intra_op_thread_unless_told(workdir):
    """Two threads on tiny matrices ran a 3-epoch CSV fit 7-15x slower when another process kept a core busy."""
    path = str(workdir / "t.csv")
    three_classes().to_csv(path, index=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fit_csv(path, "--trainer.max_epochs=1")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        fit_csv(path, "--trainer.max_epochs=1", "--torch_threads", "0")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_an_inf_after_rows_without_a_label_names_its_row_in_the_file(workdir, capsys):
    frame = three_classes().astype({"label": object})
    frame.loc[[1, 2], "label"] = np.nan  # dropped before the columns are read
    frame.loc[5, "a"] = np.inf
    path = str(workdir / "inf.csv")
    frame.to_csv(path, index=False)
    assert "feature column 'a' has an inf value in data row 6;" in refusal(capsys, path)
