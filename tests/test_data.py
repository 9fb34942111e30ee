"""DataModules: splits, scaling, batching, the CSV and MNIST loaders and their errors."""

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lit_basics.data import (
    DATAMODULES,
    CSVDataModule,
    DiabetesDataModule,
    DigitsDataModule,
    IrisDataModule,
    MNISTDataModule,
    XORDataModule,
    make_datamodule,
)
from lit_basics.data.batching import TensorBatchLoader
from lit_basics.errors import ConfigError

from .conftest import config, run_cli, write_tiny_mnist

EMBEDDED = ["xor", "moons", "circles", "classification", "iris", "digits", "breast_cancer", "wine", "diabetes"]


def test_registry_lists_every_family():
    assert set(DATAMODULES) == {*EMBEDDED, "mnist", "csv"}
    allowed = ", ".join(sorted(DATAMODULES))
    with pytest.raises(ValueError, match=re.escape(f"unknown dataset 'cifar'; allowed: {allowed}")):
        make_datamodule("cifar")


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_sets_load_as_tensors_with_sizes(name):
    dm = make_datamodule(name)
    dm.setup("fit")
    x, y = dm.tensors["train"]
    assert x.dtype == torch.float32 and x.shape[1] == dm.num_features
    if dm.task == "classification":
        assert y.dtype == torch.int64 and int(y.max()) + 1 <= dm.num_classes
    else:
        assert dm.num_classes == 0 and y.dtype == torch.float32


@pytest.mark.parametrize("cls", [IrisDataModule, DigitsDataModule])
def test_splits_are_disjoint_stratified_and_cover_all_rows(cls):
    dm = cls(seed=3)
    _, y = dm.arrays
    idx = dm.split_indices(y)
    rows = np.concatenate(list(idx.values()))
    assert len(rows) == len(set(rows)) == len(y)
    overall = np.bincount(y) / len(y)
    for split in ("train", "val", "test"):  # stratified: every class within one row of its share
        counts = np.bincount(y[idx[split]], minlength=len(overall))
        assert np.abs(counts - overall * len(idx[split])).max() <= 1, split


def test_scaler_is_fitted_on_training_rows_only():
    dm = DigitsDataModule(seed=1)
    dm.setup()
    x, _ = dm.arrays
    train_rows = dm.split_indices(dm.arrays[1])["train"]
    np.testing.assert_allclose(dm.scaler[0], x[train_rows].mean(axis=0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(dm.scaler[0], x.mean(axis=0), atol=1e-5)
    train_x = dm.tensors["train"][0]
    torch.testing.assert_close(train_x.mean(0), torch.zeros(64), atol=1e-4, rtol=0)


def test_regression_targets_are_standardised_on_training_rows():
    dm = DiabetesDataModule()
    dm.setup()
    y_train = dm.tensors["train"][1]
    assert abs(float(y_train.mean())) < 1e-4 and abs(float(y_train.std(unbiased=False)) - 1) < 1e-4


def test_classic_xor_is_the_four_corners_everywhere():
    dm = XORDataModule()
    dm.setup()
    for split in ("train", "val", "test"):
        assert dm.tensors[split][0].shape == (4, 2)
        assert dm.tensors[split][1].tolist() == [0, 1, 1, 0]


def test_noisy_xor_labels_follow_the_corners():
    x, y = XORDataModule(variant="noisy", n_samples=200, noise=0.05).load_arrays()
    assert np.array_equal(y, np.logical_xor(x[:, 0] > 0.5, x[:, 1] > 0.5).astype(int))


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_row_is_seen_once_per_epoch(drop_last):
    x = torch.arange(10).float().unsqueeze(1)
    loader = TensorBatchLoader((x, torch.arange(10)), batch_size=4, shuffle=True, drop_last=drop_last, seed=0)
    batches = list(loader)
    sizes = [len(b[1]) for b in batches]
    assert sizes == ([4, 4] if drop_last else [4, 4, 2]) and len(loader) == len(sizes)
    seen = torch.cat([b[1] for b in batches]).tolist()
    assert len(set(seen)) == len(seen)
    if not drop_last:
        assert sorted(seen) == list(range(10))
    for xb, yb in batches:
        assert torch.equal(xb.squeeze(1).long(), yb)


def test_order_depends_only_on_seed_and_epoch():
    data = (torch.arange(50),)
    a = TensorBatchLoader(data, 50, shuffle=True, seed=7)
    b = TensorBatchLoader(data, 50, shuffle=True, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(next(iter(a))[0], next(iter(b))[0])
    a.set_epoch(3)
    b.set_epoch(4)
    assert not torch.equal(next(iter(a))[0], next(iter(b))[0])


def test_ranks_split_one_permutation_with_equal_lengths():
    data = (torch.arange(11),)
    shards = [list(TensorBatchLoader(data, 3, shuffle=True, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    seen = [torch.cat([b[0] for b in s]).tolist() for s in shards]
    assert len(seen[0]) == len(seen[1]) == 6
    assert set(seen[0]) | set(seen[1]) == set(range(11))


def test_evaluation_shards_count_every_row_once():
    data = (torch.arange(31),)  # 31 rows: no number of ranks divides them
    for world in (2, 3):
        shards = [torch.cat([b[0] for b in TensorBatchLoader(data, 4, rank=r, world_size=world, pad_shards=False)])
                  for r in range(world)]
        assert sorted(torch.cat(shards).tolist()) == list(range(31))  # no row repeated, none left out
        assert {len(s) for s in shards} == {31 // world, 31 // world + 1}


def test_the_datamodule_pads_training_shards_only_and_refuses_fewer_evaluation_rows_than_ranks():
    dm = IrisDataModule(seed=0)
    dm.setup()
    dm.trainer = SimpleNamespace(global_rank=1, world_size=4)
    assert dm.train_dataloader().pad_shards and not dm.val_dataloader().pad_shards
    assert sum(len(b[1]) for b in dm.test_dataloader()) == len(dm.tensors["test"][1][1::4])
    dm.trainer = SimpleNamespace(global_rank=0, world_size=31)
    with pytest.raises(ConfigError, match="the val split has 30 rows, fewer than the 31 processes"):
        dm.val_dataloader()


def test_bad_split_settings_are_rejected():
    with pytest.raises(ConfigError, match="batch_size=0"):
        IrisDataModule(batch_size=0)
    with pytest.raises(ConfigError, match="val_fraction=1.5 is outside the allowed range"):
        IrisDataModule(val_fraction=1.5)
    with pytest.raises(ConfigError, match="must be < 1"):
        IrisDataModule(val_fraction=0.5, test_fraction=0.5)


# --- CSV -----------------------------------------------------------------------------------------
def _write(tmp_path, text: str):
    path = tmp_path / "table.csv"
    path.write_text(text)
    return str(path)


def test_csv_reads_features_and_string_labels(tmp_path):
    rows = "\n".join(f"{i % 7},{i % 3 * 2.5},{'ab'[i % 2]}" for i in range(40))
    dm = CSVDataModule(path=_write(tmp_path, "f1,f2,species\n" + rows), label_column="species")
    assert dm.num_features == 2 and dm.num_classes == 2
    assert list(dm.classes) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (None, {}, "does not exist"),
        ("", {}, "is empty"),
        ("a,b,label\n", {}, "has a header but no rows"),
        ("a,b,y\n1,2,0\n3,4,1\n", {}, "label column 'label' not found; columns are: a, b, y"),
        ("a,b,label\n1,2,0\n3,inf,1\n", {}, "feature column 'b' has an inf value in data row 2"),
        ("a,b,label\n1,2,0\n3,4,0\n", {}, "has one class"),
        ("a,b,label\n1,2,x\n3,4,y\n", {"task": "regression"}, "must be numeric for task 'regression'"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, text, kwargs, message):
    path = str(tmp_path / "missing.csv") if text is None else _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        CSVDataModule(path=path, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- MNIST ---------------------------------------------------------------------------------------
def test_mnist_loads_idx_files_into_one_normalised_tensor(tmp_path):
    write_tiny_mnist(tmp_path, n_train=100, n_test=30)
    dm = MNISTDataModule(root=str(tmp_path), download=False, val_fraction=0.2)
    dm.prepare_data()
    dm.setup("fit")
    sizes = dm.split_sizes()
    assert sizes == {"train": 80, "val": 20, "test": 30}
    x, y = dm.tensors["train"]
    assert x.shape == (80, 784) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2
    assert sorted(set(y.tolist())) == list(range(10))


def test_mnist_absent_offline_gives_one_line_with_the_folder(tmp_path):
    dm = MNISTDataModule(root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(ConfigError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "\n" not in message


def test_predict_split_is_validated():
    with pytest.raises(ConfigError, match="unknown predict_split 'all'"):
        IrisDataModule(predict_split="all")


def test_pandas_roundtrip_of_classes(tmp_path):
    frame = pd.DataFrame({"x": np.arange(30.0), "label": [-1, 1, 1] * 10})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    dm = CSVDataModule(path=str(path))
    assert dm.num_classes == 2 and dm.arrays[1].tolist()[:3] == [0, 1, 1]



def test_the_batched_search_standardises_each_fold_with_its_training_rows_only():
    from lit_basics.data import WineDataModule
    from lit_basics.experiments.search.batched_folds import BatchedFolds

    from .conftest import config

    runner = BatchedFolds([f"--config={config('wine')}"], 3, seed=0, workers=1)
    x, _ = WineDataModule(seed=0).arrays
    everything = (x - x.mean(0)) / x.std(0)
    for fold, (train, _) in enumerate(runner.folds_rows):
        expected = (x - x[train].mean(0)) / x[train].std(0)
        np.testing.assert_allclose(runner.x[fold].cpu().numpy(), expected, rtol=1e-4, atol=1e-4)
        assert not np.allclose(runner.x[fold].cpu().numpy(), everything, rtol=1e-4, atol=1e-4)


# --- generated data sets: data_seed draws the points, seed splits them --------------------------
@pytest.mark.parametrize("name", ["moons", "circles", "classification", "xor"])
def test_the_split_seed_no_longer_redraws_a_generated_data_set(name):
    from lit_basics.data import DATAMODULES

    extra = {"variant": "noisy"} if name == "xor" else {}
    make = DATAMODULES[name]
    default, other_split = make(**extra).arrays, make(seed=7, **extra).arrays
    np.testing.assert_array_equal(default[0], other_split[0])
    np.testing.assert_array_equal(default[1], other_split[1])
    assert not np.array_equal(make(data_seed=7, **extra).arrays[0], default[0])
    assert not np.array_equal(make(seed=7, **extra).split_indices(default[1])["test"],
                              make(**extra).split_indices(default[1])["test"])


def test_the_default_data_seed_draws_the_points_the_configs_drew_before():
    from sklearn.datasets import make_moons

    from lit_basics.data import MoonsDataModule

    x, y = make_moons(n_samples=1000, noise=0.2, random_state=42)  # what seed=42 (the old default) generated
    np.testing.assert_allclose(MoonsDataModule().arrays[0], x.astype(np.float32))


def test_a_checkpoint_is_refused_on_points_drawn_with_another_data_seed(workdir, capsys):
    metrics = run_cli("fit", "--config", config("moons"), "--trainer.max_epochs=1", "--data.init_args.seed=3")
    with pytest.raises(SystemExit):
        run_cli("test", "--config", config("moons"), "--data.init_args.seed=3", "--data.data_seed=5",
                "--ckpt_path", metrics["best_model_path"])
    assert "generated with data_seed=42" in capsys.readouterr().err
    tested = run_cli("test", "--config", config("moons"), "--data.init_args.seed=3", "--ckpt_path",
                     metrics["best_model_path"])
    assert "test/acc" in tested


def test_diabetes_predictions_are_in_the_targets_units(workdir):
    from sklearn.datasets import load_diabetes

    from lit_basics.data import DiabetesDataModule

    metrics = run_cli("fit", "--config", config("diabetes"), "--trainer.max_epochs=2")
    out = workdir / "p.csv"
    run_cli("predict", "--config", config("diabetes"), "--ckpt_path", metrics["best_model_path"],
            "--trainer.callbacks+=lit_basics.callbacks.PredictionCSVWriter", f"--trainer.callbacks.output_path={out}")
    table = pd.read_csv(out)
    dm = DiabetesDataModule()
    y = load_diabetes().target
    np.testing.assert_allclose(table["target"], y[dm.split_indices(dm.arrays[1])["test"]], rtol=1e-5)
    assert 50 < table["prediction"].median() < 260  # the target's units (mean 152, std 77), not standardised ones


def test_a_big_epoch_is_cut_into_chunks_the_progress_bar_can_show():
    from lit_basics.data import DigitsDataModule
    from lit_basics.data.base import PROGRESS_STEPS

    small, big = DigitsDataModule(batch_size=32), DigitsDataModule(batch_size=4)
    for dm in (small, big):
        dm.setup("fit")
    assert len(small.train_dataloader()) == 1  # a small epoch stays one Lightning step (speed)
    batches = -(-len(big.tensors["train"][1]) // 4)
    assert batches > PROGRESS_STEPS and PROGRESS_STEPS // 2 < len(big.train_dataloader()) <= PROGRESS_STEPS
