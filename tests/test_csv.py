"""A user's own CSV file: column roles, gaps, training-only preprocessing, checkpoints, predict, tune, compare."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lit_basics.data import CSVDataModule
from lit_basics.data.csv_columns import prepare, rebuild
from lit_basics.errors import ConfigError
from lit_basics.experiments.commands import compare_main, tune_main

from .conftest import config, run_cli


def penguin_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numeric, string, boolean and date columns with gaps, an ID, a constant, and rows without a label."""
    rng = np.random.default_rng(seed)
    species = np.array(["Adelie", "Chinstrap", "Gentoo"])[np.arange(n) % 3]
    frame = pd.DataFrame({
        "id": [f"P{i:04d}" for i in range(n)],
        "species": species,
        "island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], n)),
        "bill_mm": np.select([species == "Adelie", species == "Chinstrap"], [39.0, 48.0], 46.0) + rng.normal(0, 1, n),
        "depth_mm": np.where(species == "Gentoo", 15.0, 18.5) + rng.normal(0, 1, n),
        "tagged": rng.choice([True, False], n),
        "seen": pd.date_range("2007-11-01", periods=n, freq="3D").strftime("%Y-%m-%d"),
        "colony": "A",
    })
    for column, rows in (("bill_mm", [5, 17, 40]), ("island", [8, 31]), ("seen", [12])):
        frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = np.nan
    return frame


def write(path: Path, frame: pd.DataFrame, **kwargs) -> str:
    frame.to_csv(path, index=False, **kwargs)
    return str(path)


@pytest.fixture
def penguins(tmp_path) -> str:
    frame = penguin_frame()
    frame.loc[[2, 50], "species"] = np.nan
    return write(tmp_path / "penguins.csv", frame)


def test_mixed_columns_get_their_roles_and_gaps_are_filled(penguins):
    dm = CSVDataModule(path=penguins, label_column="species")
    plan = dm.plan
    assert plan.numeric == ["bill_mm", "depth_mm"] and plan.dates == ["seen"]
    assert plan.categorical == ["island", "tagged"]
    assert set(plan.dropped) == {"id", "colony"}
    assert "ID" in plan.dropped["id"] and "one value" in plan.dropped["colony"]
    assert dm.counts == {"read": 120, "kept": 118}
    assert dm.num_features == 2 + 2 + 3 + 2  # numbers, year and day of year, island's 3 and tagged's 2 one-hots
    assert list(dm.classes) == ["Adelie", "Chinstrap", "Gentoo"]
    dm.setup("fit")
    x = torch.cat([dm.tensors[s][0] for s in ("train", "val", "test")])
    assert x.shape == (118, 9) and torch.isfinite(x).all()
    summary = dm.summary()
    assert "120 read, 2 dropped, 118 kept" in summary and "7 columns, 5 used -> 9 model inputs" in summary
    assert "bill_mm (3 missing)" in summary and "island (3 values, 2 missing)" in summary
    assert "id (a different value in every row (an ID))" in summary
    assert "classes: Adelie 40, Chinstrap 40, Gentoo 38" in summary


def test_preprocessing_is_fitted_on_training_rows_only(tmp_path):
    frame = penguin_frame()
    first = CSVDataModule(path=write(tmp_path / "a.csv", frame), label_column="species")
    rows = first.split_rows(first.arrays[1])
    held_out = np.concatenate([rows["val"], rows["test"]])
    frame["depth_mm"] = frame["depth_mm"].astype(float)
    frame.loc[held_out, "depth_mm"] = 1e6  # extreme values only outside the training rows
    frame.loc[held_out, "island"] = "Atlantis"  # a category only outside the training rows
    dm = CSVDataModule(path=write(tmp_path / "b.csv", frame), label_column="species")
    assert np.array_equal(dm.split_rows(dm.arrays[1])["train"], rows["train"])
    state = dm.preprocessing
    train = frame.iloc[rows["train"]]
    depth = dm.plan.numeric_inputs.index("depth_mm")
    assert float(state["mean"][depth]) == pytest.approx(train["depth_mm"].mean())
    assert float(state["numeric_fill"][depth]) == pytest.approx(train["depth_mm"].median())
    assert float(state["scale"][depth]) == pytest.approx(train["depth_mm"].std(ddof=0))
    bill = dm.plan.numeric_inputs.index("bill_mm")
    assert float(state["numeric_fill"][bill]) == pytest.approx(pd.to_numeric(train["bill_mm"]).median())
    assert "Atlantis" not in state["categories"][dm.plan.categorical.index("island")]
    assert dm.num_features == first.num_features


def test_fitted_state_rebuilds_to_the_same_transform(penguins):
    dm = CSVDataModule(path=penguins, label_column="species")
    transformer, plan = rebuild(dm.preprocessing)
    x = dm.arrays[0]
    assert np.array_equal(transformer.transform(x), dm.transformer.transform(x))
    assert plan.to_state() == dm.plan.to_state()


@pytest.mark.parametrize(("impute", "kept"), [("drop_rows", 112), ("mean", 118)])
def test_impute_choices(penguins, impute, kept):
    dm = CSVDataModule(path=penguins, label_column="species", impute=impute)
    assert dm.counts["kept"] == kept


def test_overrides_name_columns(penguins):
    dm = CSVDataModule(path=penguins, label_column="species", feature_columns=["bill_mm", "depth_mm", "tagged"],
                       categorical_columns=["depth_mm"], drop_columns=[])
    assert dm.plan.numeric == ["bill_mm"] and dm.plan.categorical == ["depth_mm", "tagged"]
    dropped = CSVDataModule(path=penguins, label_column="species", drop_columns=["seen", "island"])
    assert dropped.plan.used == ["bill_mm", "depth_mm", "tagged"]


def test_delimiter_is_sniffed_and_encoding_is_an_option(tmp_path):
    frame = penguin_frame()
    frame["island"] = frame["island"].replace("Dream", "Drëam")
    path = write(tmp_path / "semi.csv", frame, sep=";", encoding="latin-1")
    dm = CSVDataModule(path=path, label_column="species", encoding="latin-1")
    assert "Drëam" in dm.preprocessing["categories"][0]
    with pytest.raises(ConfigError, match="is not utf-8-sig text .* set --data.encoding"):
        CSVDataModule(path=path, label_column="species")


def test_a_file_without_a_header_and_a_first_line_to_skip(tmp_path):
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}" for i in range(40))
    path = tmp_path / "plain.csv"
    path.write_text("40,2,a,b\n" + rows)
    with pytest.raises(ConfigError, match="header of .* has 4 names but data row 1 has 3 fields"):
        CSVDataModule(path=str(path), label_column="b")
    dm = CSVDataModule(path=str(path), label_column="2", skiprows=1, header=False)
    assert dm.plan.numeric == ["0", "1"] and list(dm.classes) == ["a", "b"]


def test_scikit_learns_own_wine_csv_is_refused_then_read_with_skiprows(tmp_path):
    import sklearn

    wine = Path(sklearn.__file__).parent / "datasets" / "data" / "wine_data.csv"
    with pytest.raises(ConfigError, match="has 5 names but data row 1 has 14 fields"):
        CSVDataModule(path=str(wine), label_column="class_0")
    dm = CSVDataModule(path=str(wine), label_column="13", skiprows=1, header=False)
    assert dm.num_features == 13 and dm.num_classes == 3 and dm.counts["kept"] == 178


BAD_TABLES = [
    ("a,b,label\n1,2\n3,4\n", {}, "has 3 names but data row 1 has 2 fields"),
    ("a,label\n1,2,0\n3,4,1\n", {}, "has 2 names but data row 1 has 3 fields"),
    ("a,a,label\n1,2,0\n3,4,1\n", {}, "column name 'a' appears twice in the header"),
    ("a,,label\n1,2,0\n3,4,1\n", {}, "header field 2 of"),
    ("a b label\n1 2 0\n", {}, "splits into one column with the sniffed delimiter ','"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"feature_columns": ["a", "label"]}, "label column 'label' is also listed in"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"drop_columns": ["label"]}, "listed in drop_columns"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"feature_columns": ["a", "c"]}, "feature_columns ['c'] not found"),
    ("a,b,label\n" + "".join(f"{i},{i % 3},{i * 0.37}\n" for i in range(40)), {},
     "40 distinct float values, too many classes; for a numeric target use --data.task regression"),
    ("a,b,label\n1,,0\n3,,1\n", {"feature_columns": ["a", "b"]},
     "feature column 'b' cannot inform a model: every value is missing"),
    ("a,b,label\n1,5,0\n3,5,1\n", {"feature_columns": ["a", "b"]},
     "feature column 'b' cannot inform a model: one value (5)"),
    ("a,b,label\n,,0\n,,1\n", {}, "no usable feature columns (a: every value is missing; b: every value is missing)"),
    ("a,b,label\n1,2,0\n3,inf,1\n", {}, "feature column 'b' has an inf value in data row 2"),
    ("a,b,label\n1,2,0\n3,,1\n5,4,0\n", {"impute": "none"}, "'b' has a missing value in data row 2 and impute='none'"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"impute": "zero"}, "unknown impute 'zero'; allowed: drop_rows, mean, median, none"),
    ("a,b,label\n1,2,\n3,4,\n", {}, "every row of"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), BAD_TABLES, ids=[m for _, _, m in BAD_TABLES])
def test_tables_that_would_train_on_other_data_are_refused(tmp_path, text, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        CSVDataModule(path=str(path), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def number_text_frame(kind: str, n: int = 40) -> tuple[pd.DataFrame, float]:
    """A feature `x` (x = 1234.5 * i) written as a CSV of that `kind` writes it, and one row's true value."""
    values = [1234.5 * i for i in range(n)]
    written = {"decimal": [f"{v:.1f}".replace(".", ",") for v in values],
               "thousands": [f"{v:,.1f}" for v in values],
               "missing": ["?" if i % 7 == 3 else f"{v:.1f}" for i, v in enumerate(values)],
               "units": [f"{v:.1f}%" for v in values],
               "both_marks": [f"{v:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in values],
               "decimal_and_missing": ["?" if i % 7 == 3 else f"{v:.1f}".replace(".", ",")
                                       for i, v in enumerate(values)],
               "mostly_missing": [f"{v:.1f}" if i % 4 == 1 else "-" for i, v in enumerate(values)]}[kind]
    return pd.DataFrame({"x": written, "b": np.arange(n) % 5, "label": np.arange(n) % 2}), values[5]


NUMBERS_AS_TEXT = [  # (kind, delimiter, what the refusal says, the option that reads the column as numbers)
    ("decimal", ";", "holds numbers pandas did not read ('0,0' in data row 1); set --data.decimal ','",
     {"decimal": ","}),
    ("thousands", ",", "holds numbers pandas did not read ('1,234.5' in data row 2); set --data.thousands ','",
     {"thousands": ","}),
    ("missing", ",", "holds numbers but also '?' (6x), first in data row 4; mark them missing with "
     "--data.na_values \"['?']\"", {"na_values": ["?"]}),
    ("units", ",", "holds numbers with units or signs pandas does not read ('0.0%' in data row 1)", None),
    ("both_marks", ";", "('1.234,5' in data row 2); set --data.decimal ',' and --data.thousands '.'",
     {"decimal": ",", "thousands": "."}),
    ("decimal_and_missing", ";", "('0,0' in data row 1); set --data.decimal ',' if ',' marks decimals or "
     "--data.thousands ',' if it groups thousands, and mark '?' (6x) missing with --data.na_values \"['?']\"",
     {"decimal": ",", "na_values": ["?"]}),
    ("mostly_missing", ",", "holds numbers but also '-' (30x), first in data row 1", {"na_values": ["-"]}),
]


@pytest.mark.parametrize(("kind", "sep", "message", "option"), NUMBERS_AS_TEXT, ids=[k for k, *_ in NUMBERS_AS_TEXT])
def test_numbers_written_as_text_are_refused_then_read_with_the_named_option(tmp_path, kind, sep, message, option):
    """Read as text they would become hundreds of categories or a dropped 'ID'; the refusal names the fix."""
    frame, true_value = number_text_frame(kind)
    path = write(tmp_path / f"{kind}.csv", frame, sep=sep)
    with pytest.raises(ConfigError) as info:
        CSVDataModule(path=path)
    assert message in str(info.value) and "--data.categorical_columns" in str(info.value), info.value
    assert "\n" not in str(info.value)
    as_categories = CSVDataModule(path=path, categorical_columns=["x"])  # the other way out: the user's choice
    assert as_categories.plan.categorical == ["x"]
    if option is None:
        return
    dm = CSVDataModule(path=path, **option)
    assert dm.plan.numeric == ["x", "b"] and dm.num_features == 2
    prepared = dm.arrays[0]  # the transformer's input: numbers as floats
    assert prepared["x"].iloc[5] == pytest.approx(true_value)
    if kind in ("missing", "decimal_and_missing"):
        assert prepared["x"].isna().sum() == 6  # the '?' cells are gaps, imputed from training rows


def test_a_named_notation_is_read_strictly(tmp_path):
    """pandas with thousands=',' reads 14,23 as 1423; with decimal=',' it leaves 1.065 a decimal number."""
    euro = pd.DataFrame({"x": ["14,23", "13,2", "12,5"] * 10, "p": ["1.065", "520", "1.285"] * 10,
                         "label": [0, 1, 1] * 10})
    path = write(tmp_path / "euro.csv", euro, sep=";")
    with pytest.raises(ConfigError, match="column 'x' holds numbers pandas did not read \\('14,23' in data row 1\\); "
                                          "set --data.decimal ','"):
        CSVDataModule(path=path, thousands=",")
    with pytest.raises(ConfigError, match="column 'p' holds numbers pandas did not read .'1.065' .* --data.thousands"):
        CSVDataModule(path=path, decimal=",")
    dm = CSVDataModule(path=path, decimal=",", thousands=".", duplicates="keep")  # three rows, ten times each
    assert dm.arrays[0]["x"].iloc[:3].tolist() == [14.23, 13.2, 12.5]
    assert dm.arrays[0]["p"].iloc[:3].tolist() == [1065.0, 520.0, 1285.0]
    assert list(dm.classes) == [0, 1]  # numeric labels stay numbers when the file is read as text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"decimal": ",,"}, "decimal=',,' is not a decimal mark; allowed: '.', ','"),
    ({"thousands": "0"}, "thousands='0' is not a thousands separator; allowed: ','"),
    ({"decimal": ",", "thousands": ","}, "thousands=',' and decimal=',' must differ"),
    ({"na_values": [1]}, "na_values=.1. must be a list of strings"),
])
def test_bad_number_formats_are_refused(tmp_path, kwargs, message):
    path = write(tmp_path / "t.csv", number_text_frame("decimal")[0])
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace("?", "\\?")):
        CSVDataModule(path=path, **kwargs)


def test_text_and_dates_with_some_numbers_are_still_text_and_dates(tmp_path):
    frame = penguin_frame()
    frame["version"] = [f"1.{i % 4}.{i % 3}" for i in range(len(frame))]  # not numbers in any notation
    frame["host"] = [f"10.0.{i % 5}.{i % 7}" for i in range(len(frame))]
    frame["ring"] = [str(i % 9) if i % 3 else f"R{i % 4}" for i in range(len(frame))]  # 4 codes among numbers: text
    frame["dotted"] = pd.date_range("2001-01-01", periods=len(frame), freq="D").strftime("%d.%m.%Y")
    dm = CSVDataModule(path=write(tmp_path / "t.csv", frame), label_column="species")
    assert {"ring", "version", "host"} <= set(dm.plan.categorical) and "dotted" in dm.plan.dates


def test_a_regression_label_written_with_decimal_commas_is_named_then_read(tmp_path):
    frame = pd.DataFrame({"a": np.arange(30) % 7, "b": np.arange(30) % 4,
                          "target": [f"{i * 0.5:.1f}".replace(".", ",") for i in range(30)]})
    path = write(tmp_path / "reg.csv", frame, sep=";")
    message = "column 'target' holds numbers pandas did not read .* set --data.decimal ','"
    with pytest.raises(ConfigError, match=message) as info:
        CSVDataModule(path=path, label_column="target", task="regression")
    assert "categorical_columns" not in str(info.value)  # no categories for a regression target
    dm = CSVDataModule(path=path, label_column="target", task="regression", decimal=",")
    assert sorted(dm.arrays[1])[:3] == pytest.approx([0.0, 0.5, 1.0])


def test_harmless_oddities_are_notes_not_errors(tmp_path):
    frame = penguin_frame()
    frame["empty"] = np.nan
    dm = CSVDataModule(path=write(tmp_path / "t.csv", frame), label_column="species")
    assert dm.plan.dropped["empty"] == "every value is missing" and "colony" in dm.plan.dropped


# --- the command line --------------------------------------------------------------------------
def test_fit_then_predict_raw_rows_from_the_checkpoint(workdir, penguins, capsys):
    metrics = run_cli("fit", "--config", config("csv"), "--data.path", penguins, "--data.label_column", "species",
                      "--trainer.max_epochs=3")
    run = Path(metrics["log_dir"])
    assert run == Path("logs/penguins_species/version_0")  # runs of other labels of this file go elsewhere
    regression = {"path": "a/p.csv", "label_column": "mass", "task": "regression"}
    assert CSVDataModule.run_name(regression) == "p_mass_regression"
    out = capsys.readouterr().out
    assert "120 read, 2 dropped, 118 kept" in out
    assert "120 read, 2 dropped, 118 kept" in (run / "data_summary.txt").read_text()
    checkpoint = torch.load(metrics["best_model_path"], weights_only=True)
    assert checkpoint["CSVDataModule"]["preprocessing"]["width"] == 9

    base = ["--config", config("csv"), "--data.path", penguins, "--data.label_column", "species",
            "--ckpt_path", metrics["best_model_path"], "--trainer.callbacks+=lit_basics.callbacks.PredictionCSVWriter"]
    run_cli("predict", *base, f"--trainer.callbacks.output_path={workdir / 'test_rows.csv'}")
    during_test = pd.read_csv(workdir / "test_rows.csv")
    raw = pd.read_csv(penguins)
    new_rows = raw.iloc[during_test["row"] - 1].drop(columns="species")  # the file's data rows, label removed
    unseen = new_rows.iloc[:1].assign(island="Atlantis", bill_mm=np.nan)
    new_path = write(workdir / "new.csv", pd.concat([new_rows, unseen]))
    run_cli("predict", *base, "--data.predict_path", new_path, f"--trainer.callbacks.output_path={workdir / 'p.csv'}")
    assert "1 values of 'island' in" in capsys.readouterr().out
    predicted = pd.read_csv(workdir / "p.csv")
    assert list(predicted["row"]) == list(range(1, len(new_rows) + 2))
    assert "target" not in predicted and set(predicted["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    head = predicted.iloc[: len(new_rows)]
    assert list(head["prediction"]) == list(during_test["prediction"])
    probabilities = [c for c in during_test.columns if c.startswith("p_")]
    np.testing.assert_allclose(head[probabilities].to_numpy(), during_test[probabilities].to_numpy(), atol=1e-6)


def test_a_predict_file_without_the_trained_columns_is_refused(workdir, penguins, capsys):
    metrics = run_cli("fit", "--config", config("csv"), "--data.path", penguins, "--data.label_column", "species",
                      "--trainer.max_epochs=1")
    partial = write(workdir / "partial.csv", pd.read_csv(penguins).drop(columns=["species", "island"]))
    with pytest.raises(SystemExit) as info:
        run_cli("predict", "--config", config("csv"), "--data.path", penguins, "--data.label_column", "species",
                "--ckpt_path", metrics["best_model_path"], "--data.predict_path", partial)
    assert info.value.code == 2
    assert "lacks the feature columns ['island']" in capsys.readouterr().err.strip().splitlines()[-1]


def _csv_config(workdir: Path, penguins: str) -> str:
    path = workdir / "penguins.yaml"
    path.write_text(f"data:\n  class_path: lit_basics.data.CSVDataModule\n  init_args:\n    path: {penguins}\n"
                    "    label_column: species\nmodel:\n  hidden_sizes: [8]\n")
    return str(path)


@pytest.mark.parametrize("engine", ["batched", "lightning"])
def test_tune_takes_a_csv_config(workdir, penguins, engine):
    search = workdir / "search.yaml"
    search.write_text(f"name: csv_search\nbase: {_csv_config(workdir, penguins)}\nfolds: 2\nsampler: grid\n"
                      "patience: 3\ncommon:\n  trainer.max_epochs: 2\nspace:\n  width: [4, 8]\n")
    out = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--engine", engine])
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and trials["state"].eq("complete").all()


def test_compare_takes_a_csv_config(workdir, penguins):
    spec = workdir / "cmp.yaml"
    spec.write_text(f"name: csv_cmp\nbase: {_csv_config(workdir, penguins)}\nseeds: [0]\nplots: [curves]\n"
                    "common:\n  trainer.max_epochs: 2\nvariants:\n  relu: {model.activation: relu}\n"
                    "  tanh: {model.activation: tanh}\n")
    out = compare_main(["--config", str(spec), "--no-progress"])
    assert len(pd.read_csv(out / "results.csv")) == 2


def test_prepare_names_the_notation_when_new_rows_write_numbers_otherwise(penguins):
    dm = CSVDataModule(path=penguins, label_column="species")
    new = pd.read_csv(penguins).astype({"depth_mm": object})
    new.loc[2, "depth_mm"] = "18,5"
    with pytest.raises(ConfigError, match="data row 3 holds '18,5' .numbers are read with decimal '.' and thousands "
                                          "None, as for training"):
        prepare(new, dm.plan)


def test_prepare_refuses_text_in_a_numeric_column(penguins):
    dm = CSVDataModule(path=penguins, label_column="species")
    new = pd.read_csv(penguins).astype({"depth_mm": object})
    new.loc[4, "depth_mm"] = "n/a?"
    with pytest.raises(ConfigError, match="column 'depth_mm' is numeric but data row 5 holds 'n/a\\?'"):
        prepare(new, dm.plan)


def test_both_search_engines_agree_when_a_folds_one_hot_width_differs(workdir, tmp_path):
    """A category present in one row only is absent from the training rows of the fold that validates on it:
    that fold has one input fewer. The batched engine pads it but starts from LitFNN's weights for its width."""
    from lit_basics.experiments.search.batched_folds import BatchedFolds
    from lit_basics.experiments.search.folds import LightningFolds
    from lit_basics.experiments.search.space import SearchSpec

    frame = penguin_frame(60)
    frame["island"] = frame["island"].astype(object)
    frame.loc[7, "island"] = "Rare"
    base = _csv_config(workdir, write(tmp_path / "rare.csv", frame))
    spec = SearchSpec(name="widths", base=Path(base), space=[], folds=3, seed=1,
                      common={"trainer.max_epochs": 3, "model.lr": 0.01})
    batched = BatchedFolds(spec.run_args({}), 3, seed=1, patience=10, workers=1)
    assert len(set(batched.widths)) == 2  # one fold is narrower
    args = spec.run_args({})
    for a, b in zip(batched.fit_folds(args, lambda r: None, {}), LightningFolds(3, seed=1, patience=10).fit_folds(
            args, lambda r: None, {}), strict=True):
        assert [row["val/loss"] for row in a.history] == pytest.approx([row["val/loss"] for row in b.history],
                                                                        abs=1e-4)


@pytest.mark.parametrize("spelling", ["?", "[?, -999]", "--data.na_values=?"])
def test_missing_markers_as_a_shell_passes_them(workdir, tmp_path, spelling):
    """YAML would read ? as a mapping key and -999 as a number: the values are taken as text."""
    frame, _ = number_text_frame("missing")
    path = write(tmp_path / "marks.csv", frame)
    option = [spelling] if spelling.startswith("--") else ["--data.na_values", spelling]
    metrics = run_cli("fit", "--config", config("csv"), "--data.path", path, "--trainer.max_epochs=1", *option)
    assert "test/acc" in metrics


def test_a_loss_that_blows_up_on_a_huge_value_names_its_column(workdir, capsys):
    """One price of 1e308 among ordinary ones (whichever split it lands in): one line naming the column, not the
    learning rate; before, the run exited 0 with an infinite best validation loss."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=300), "price": rng.normal(size=300),
                          "label": rng.integers(0, 2, 300)})
    frame.loc[7, "price"] = 1e308
    frame.to_csv(workdir / "huge.csv", index=False)
    with pytest.raises(SystemExit) as stop:
        run_cli("fit", "--config", config("csv"), f"--data.path={workdir / 'huge.csv'}", "--data.label_column=label",
                "--trainer.max_epochs=3")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and ("training diverged" in err or "validation loss is" in err), err
    assert "input column 'price' of the" in err and "learning rate" not in err, err
