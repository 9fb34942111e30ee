"""Behaviour pinned by exact values, so that a deliberate one-line bug fails an assertion (issue 24).

Each test names the kind of bug it is there to catch; tests/mutation/mutations.py lists the mutations.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lit_basics.data import CSVDataModule
from lit_basics.engine.batched import ModelSpec
from lit_basics.engine.batched_fit import Stopping, fit_group
from lit_basics.experiments.runs import check_args

from .conftest import config, run_cli

PATIENCE = 2


@pytest.fixture(scope="module")
def early_stopped_folds():
    """Iris folds that stop early (patience 2 of 40 epochs), by both search engines with the same fold seeds."""
    from lit_basics.experiments.search.batched_folds import BatchedFolds
    from lit_basics.experiments.search.folds import LightningFolds
    from lit_basics.experiments.search.space import SearchSpec

    spec = SearchSpec(name="stops", base=config("iris"), space=[], folds=2, seed=3,
                      common={"trainer.max_epochs": 40, "model.hidden_sizes": [16], "model.lr": 0.05})
    args = spec.run_args({})
    batched = BatchedFolds(args, 2, seed=3, patience=PATIENCE, workers=1).fit_folds(args, lambda r: None, {})
    lightning = LightningFolds(2, seed=3, patience=PATIENCE).fit_folds(args, lambda r: None, {})
    return {"batched": batched, "lightning": lightning}


def test_an_early_stopped_fold_runs_best_epoch_plus_patience_epochs_in_both_engines(early_stopped_folds):
    """Catches patience off by one (`<=` for `<`) in either engine, and a best epoch counted from 0. The 105 rows
    of iris's training portion split 53 / 52: the batched engine pads the smaller fold, which must count for nothing."""
    batched, lightning = early_stopped_folds["batched"], early_stopped_folds["lightning"]
    for a, b in zip(batched, lightning, strict=True):
        assert (a.epochs, a.best_epoch) == (b.epochs, b.best_epoch)
        assert [row["val/loss"] for row in a.history] == pytest.approx([row["val/loss"] for row in b.history],
                                                                        abs=1e-5)
        for result in (a, b):
            assert result.epochs < 40, "the fold was meant to stop early"
            assert result.epochs == result.best_epoch + PATIENCE
            assert len(result.history) == result.epochs
            losses = [row["val/loss"] for row in result.history]
            assert int(np.argmin(losses)) + 1 == result.best_epoch


def test_a_fold_is_scored_at_its_lowest_loss_epoch_in_both_engines(early_stopped_folds):
    """The lowest-loss epoch is neither the first nor the last here: scoring the last (or the first) epoch fails."""
    last_differs = False
    for engine, results in early_stopped_folds.items():
        for result in results:
            best = result.history[result.best_epoch - 1]
            assert 1 < result.best_epoch < result.epochs, engine
            assert best["val/loss"] == min(row["val/loss"] for row in result.history), engine
            assert result.val_loss == pytest.approx(best["val/loss"], abs=1e-7), engine
            assert result.score == pytest.approx(best["val/acc"], abs=1e-7), engine
            last_differs |= result.history[-1]["val/acc"] != best["val/acc"]
    assert last_differs, "some fold's last epoch must score otherwise than its best, or the test proves nothing"


def _plain_logits(linears: list[tuple[torch.Tensor, torch.Tensor]] | dict, x: torch.Tensor, activation) -> torch.Tensor:
    """Linear -> activation for each hidden layer, then the output layer: no dropout anywhere. `linears`: (weight,
    bias) pairs, or an FNN state_dict (the batched engine's result)."""
    if isinstance(linears, dict):
        names = sorted({k.rsplit(".", 1)[0] for k in linears if k.endswith(".weight")},
                       key=lambda n: (n == "head", n))  # blocks.0.linear, blocks.1.linear, ..., head
        linears = [(linears[f"{n}.weight"], linears[f"{n}.bias"]) for n in names]
    for w, b in linears[:-1]:
        x = activation(x @ w.T + b)
    w, b = linears[-1]
    return x @ w.T + b


def test_a_dropout_models_validation_loss_is_a_plain_forward_in_lightning(workdir):
    """LitFNN with dropout 0.5: its last val/loss equals cross-entropy of a dropout-free pass through its layers."""
    from lit_basics.experiments.runs import quiet_lightning

    cli = check_args("dropout", ["--config", config("iris"), "--model.dropout=0.5", "--model.activation=tanh",
                                 "--trainer.max_epochs=2", "--trainer.logger=false",
                                 "--trainer.enable_progress_bar=false",
                                 "--trainer.enable_model_summary=false"])
    with quiet_lightning():
        cli.trainer.fit(cli.model, cli.datamodule)
    x_val, y_val = cli.datamodule.tensors["val"]
    linears = [(m.weight.detach(), m.bias.detach()) for m in cli.model.modules() if isinstance(m, nn.Linear)]
    loss = nn.functional.cross_entropy(_plain_logits(linears, x_val, torch.tanh), y_val)
    assert cli.model.history[-1]["val/loss"] == pytest.approx(float(loss), rel=1e-5)


def test_a_dropout_models_validation_loss_is_a_plain_forward_in_the_batched_engine():
    """fit_group with dropout 0.5: each model's last val/loss equals a dropout-free pass through its final layers."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 90, 4), torch.randint(0, 3, (90,))
    rows = torch.arange(90)
    specs = [ModelSpec(train_rows=rows[:60], val_rows=rows[60:], lr=0.02, dropout=0.5, seed=s) for s in (1, 2)]
    out = fit_group(x, y, specs, [12, 12], 3, activation="tanh", batch_size=10, max_epochs=3)
    for i, spec in enumerate(specs):
        logits = _plain_logits(out.states[i], x[0, spec.val_rows], torch.tanh)
        loss = nn.functional.cross_entropy(logits, y[spec.val_rows])
        assert out.history[i][-1]["val/loss"] == pytest.approx(float(loss), rel=1e-5)
        accuracy = (logits.argmax(1) == y[spec.val_rows]).float().mean()
        assert out.history[i][-1]["val/acc"] == pytest.approx(float(accuracy))


def test_regression_targets_of_every_split_are_standardised_with_the_training_targets():
    """val and test targets equal (y - train mean) / train std: catches splits left raw or scaled by their own."""
    dm = check_args("diabetes", ["--config", config("diabetes")]).datamodule
    dm.setup("fit")
    y = np.asarray(dm.arrays[1], dtype=np.float64)
    rows = dm.split_rows(dm.arrays[1])
    mean, std = y[rows["train"]].mean(), y[rows["train"]].std()
    assert dm.target_scaler == pytest.approx((mean, std))
    assert std > 10  # raw diabetes progression: standardising visibly changes every value
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(dm.tensors[split][1].numpy(), (y[rows[split]] - mean) / std, rtol=1e-5, atol=1e-5)


def test_the_accuracy_reports_rmse_is_in_the_targets_units(workdir):
    """RMSE and R2 of the same test rows obey rmse = sqrt((1 - r2) * var(y_test)) in the target's units, every side."""
    from lit_basics.experiments.accuracy.runner import plan_datasets, split_rows
    from lit_basics.experiments.commands import accuracy_main

    from .conftest import CONFIGS

    out = accuracy_main(["--quick", "--datasets", "diabetes", "--no-progress", "--configs", str(CONFIGS),
                         "--seeds", "1"])
    rows = pd.read_csv(out / "results.csv")
    (plan,) = plan_datasets(["diabetes"], CONFIGS, quick=True)
    y_test = split_rows(plan, seed=0).y_test
    assert sorted(rows["side"]) == ["ensemble", "hgb", "ours", "sklearn"]
    for _, row in rows.iterrows():
        expected = math.sqrt((1 - row["r2"]) * np.var(y_test))
        assert row["rmse"] == pytest.approx(expected, rel=1e-3), row["side"]


def test_the_fit_commands_test_rmse_is_in_the_targets_units(workdir):
    metrics = run_cli("fit", "--config", config("diabetes"), "--trainer.max_epochs=2")
    dm = check_args("diabetes", ["--config", config("diabetes")]).datamodule
    y = np.asarray(dm.arrays[1], dtype=np.float64)
    y_test = y[dm.split_rows(dm.arrays[1])["test"]]
    assert metrics["test/rmse"] == pytest.approx(math.sqrt((1 - metrics["test/r2"]) * np.var(y_test)), rel=1e-3)


def _csv_with_categories(path: Path) -> str:
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"size": rng.normal(0, 1, n), "width": rng.normal(0, 1, n), "weight": rng.normal(0, 1, n),
                          "colour": np.array(["red", "red", "red", "blue", "green"])[np.arange(n) % 5],
                          "label": np.arange(n) % 2})
    frame.to_csv(path, index=False)
    return str(path)


def test_an_unseen_category_encodes_as_no_known_category(tmp_path, capsys):
    """A value never seen in training is all zeros in its one-hot block, not the most frequent value's column."""
    dm = CSVDataModule(path=_csv_with_categories(tmp_path / "colours.csv"), label_column="label")
    dm.predict_path = "new.csv"  # named in the note
    known = dm.preprocessing["categories"][0]
    assert known == ["blue", "green", "red"]
    new = pd.DataFrame({"size": [0.0, 0.0, 0.0], "width": [0.0, 0.0, 0.0], "weight": [0.0, 0.0, 0.0],
                        "colour": ["purple", "red", "blue"]})
    encoded = dm.transform_new(new)
    block = encoded[:, -3:]  # the categorical block follows the numeric columns
    np.testing.assert_array_equal(block, [[0, 0, 0], [0, 0, 1], [1, 0, 0]])
    assert "1 values of 'colour' in new.csv were not seen in training" in capsys.readouterr().out


@pytest.mark.parametrize("other", [["width", "size"], ["weight", "size"]])
def test_a_csv_checkpoint_of_other_feature_columns_of_the_same_width_is_refused(workdir, capsys, other):
    """Trained on size and width, tested with them swapped (which would read each as the other without a
    word) or with weight and size (same width, same file): refused in one line."""
    data = _csv_with_categories(workdir / "table.csv")
    base = ["--config", config("csv"), "--data.path", data, "--data.label_column", "label"]
    metrics = run_cli("fit", *base, "--data.feature_columns=[size, width]", "--trainer.max_epochs=1")
    with pytest.raises(SystemExit) as stop:
        run_cli("test", *base, f"--data.feature_columns=[{', '.join(other)}]", "--ckpt_path",
                metrics["best_model_path"])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "features ['size', 'width']" in last and f"{other}" in last
    run_cli("test", *base, "--data.feature_columns=[size, width]", "--ckpt_path", metrics["best_model_path"])


def test_a_csv_checkpoint_of_another_label_column_is_refused(workdir, capsys):
    """Same file, width and classes (0, 1), another label column: refused, naming the checkpoint's label."""
    frame = pd.read_csv(_csv_with_categories(workdir / "table.csv"))
    frame["flag"] = np.arange(len(frame)) // 2 % 2
    frame.to_csv(workdir / "table.csv", index=False)
    base = ["--config", config("csv"), "--data.path", str(workdir / "table.csv"), "--data.feature_columns=[size]"]
    metrics = run_cli("fit", *base, "--data.label_column=label", "--trainer.max_epochs=1")
    with pytest.raises(SystemExit) as stop:
        run_cli("test", *base, "--data.label_column=flag", "--ckpt_path", metrics["best_model_path"])
    assert stop.value.code == 2
    assert "label 'label'" in capsys.readouterr().err.strip().splitlines()[-1]


def test_resuming_a_run_with_the_max_epochs_it_finished_at_is_refused(workdir, capsys):
    """A run of 1 epoch resumed with max_epochs=1 has nothing to do: one line saying how to extend it."""
    metrics = run_cli("fit", "--config", config("iris"), "--trainer.max_epochs=1")
    with pytest.raises(SystemExit) as stop:
        run_cli("fit", "--config", config("iris"), "--trainer.max_epochs=1", "--ckpt_path", metrics["best_model_path"])
    assert stop.value.code == 2
    assert "already finished at epoch 1 (max_epochs=1)" in capsys.readouterr().err.strip().splitlines()[-1]


def _stop_epoch(losses: list[float], patience: int, min_delta: float) -> int:
    """Lightning's EarlyStopping rule (mode min): an epoch improves when its loss is below the best by more
    than min_delta; training stops after `patience` epochs without one. Returns the epochs that run."""
    best, waited = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        if loss < best - min_delta:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return len(losses)


def test_the_batched_engines_min_delta_stops_as_lightnings_rule_says():
    """min_delta makes small improvements count as none: the run stops earlier, where the rule says."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 4), torch.randint(0, 3, (120,))
    rows = torch.arange(120)
    spec = ModelSpec(train_rows=rows[:90], val_rows=rows[90:], lr=0.01, seed=1)
    epochs = {}
    for min_delta in (0.0, 0.02):
        out = fit_group(x, y, [spec], [16], 3, batch_size=16, max_epochs=60,
                        stopping=Stopping(patience=3, min_delta=min_delta))
        losses = [row["val/loss"] for row in out.history[0]]
        assert out.epochs[0] == len(losses) == _stop_epoch(losses, 3, min_delta) < 60
        epochs[min_delta] = out.epochs[0]
    assert epochs[0.02] < epochs[0.0]


def test_multiclass_mse_is_the_mean_over_classes_of_the_squared_probability_errors():
    """Uniform logits over 4 classes, label 0: ((1 - 1/4)^2 + 3 (1/4)^2) / 4 = 0.1875 per sample."""
    from lit_basics.models.losses import LOSSES

    logits = torch.zeros(2, 4)
    values = LOSSES["mse"].per_sample(logits, torch.tensor([0, 3]), 4)
    assert values.tolist() == pytest.approx([0.1875, 0.1875])


def test_model_momentum_reaches_the_optimizer_in_both_engines():
    """`model.momentum` 0.5 (not the default 0.9): LitFNN's SGD and the batched engine's update use it."""
    from lit_basics.data.batching import epoch_permutation
    from lit_basics.models.fnn import FNN
    from lit_basics.models.optimizers import make_optimizer

    optimizer = make_optimizer("momentum", nn.Linear(3, 2), lr=0.1, momentum=0.5)
    assert [group["momentum"] for group in optimizer.param_groups] == [0.5]
    torch.manual_seed(0)
    x, y = torch.randn(1, 40, 3), torch.randint(0, 2, (40,))
    rows = torch.arange(40)
    spec = ModelSpec(train_rows=rows[:32], val_rows=rows[32:], lr=0.1, momentum=0.5, seed=4)
    out = fit_group(x, y, [spec], [5], 2, optimizer="momentum", batch_size=8, max_epochs=2)
    torch.manual_seed(4)  # the model's seed: the batched engine starts from this FNN's weights
    reference = FNN(3, [5], 1)
    sgd = make_optimizer("momentum", reference, lr=0.1, momentum=0.5)
    for epoch in range(2):
        order = rows[:32][epoch_permutation(32, 4, epoch)]
        for batch in order.split(8):
            sgd.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(reference(x[0, batch]).squeeze(-1),
                                                           y[batch].float()).backward()
            sgd.step()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(out.states[0][key], value, rtol=1e-5, atol=1e-6)


def test_trials_csv_holds_each_trials_fold_statistics_and_best_yaml_its_architecture(workdir):
    """mean and std (population: the folds are all there is) of the fold scores, the mean best validation loss,
    and depth x width as hidden_sizes in best.yaml, for a grid whose depths differ."""
    import statistics

    import yaml

    from lit_basics.experiments.commands import tune_main

    search = workdir / "tiny.yaml"
    search.write_text(f"name: tiny\nbase: {config('iris')}\nsampler: grid\nfolds: 2\n"
                      "common:\n  trainer.max_epochs: 3\nspace:\n  depth: [1, 3]\n  width: [4]\n")
    out = tune_main(["--config", str(search), "--no-progress"])
    trials = pd.read_csv(out / "trials.csv")
    assert sorted(trials["depth"]) == [1, 3]
    for _, row in trials.iterrows():
        folds = [row["fold_0"], row["fold_1"]]
        assert row["mean"] == pytest.approx(statistics.fmean(folds))
        assert row["std"] == pytest.approx(statistics.pstdev(folds))
    best = trials[trials["rank"] == 1].iloc[0]
    model = yaml.safe_load((out / "best.yaml").read_text())["model"]
    assert model["hidden_sizes"] == [int(best["width"])] * int(best["depth"])


def test_the_mutation_runner_tells_caught_from_crash_only_survived_and_stale(tmp_path):
    """On a tiny tree: an assertion failing is caught, only an exception is crash-only, passing is survived,
    and a mutation whose original text is gone is stale (the file left as it was)."""
    import shutil

    from tests.mutation.mutations import Mutation
    from tests.mutation.run import classify, run_mutation, run_tests

    here = Path(__file__).resolve().parent
    (tmp_path / "tests" / "mutation").mkdir(parents=True)
    for name in ("__init__.py", "mutation/__init__.py", "mutation/plugin.py"):
        shutil.copyfile(here / name, tmp_path / "tests" / name)
    (tmp_path / "tests" / "test_fake.py").write_text(
        "def test_check():\n    assert 1 + 1 == 3\n\n\ndef test_crash():\n    raise ValueError('boom')\n\n\n"
        "def test_fine():\n    assert True\n")
    statuses = {name: classify(*run_tests(tmp_path, [f"tests/test_fake.py::test_{name}"])).status
                for name in ("check", "crash", "fine")}
    assert statuses == {"check": "caught", "crash": "crash-only", "fine": "survived"}
    assert classify(*run_tests(tmp_path, ["tests/test_fake.py"])).status == "caught"
    before = (tmp_path / "tests" / "test_fake.py").read_text()
    gone = Mutation("gone", "tests/test_fake.py", "no such line", "x", ["tests/test_fake.py"], "stale")
    assert run_mutation(tmp_path, gone).status == "stale"
    flip = Mutation("flip", "tests/test_fake.py", "assert True", "assert False", ["tests/test_fake.py::test_fine"], "")
    assert run_mutation(tmp_path, flip).status == "caught"
    assert (tmp_path / "tests" / "test_fake.py").read_text() == before
