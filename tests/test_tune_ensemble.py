"""tune.py --ensemble: the fold models of the best configurations as one checkpoint (issue 22)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lit_basics.cli import cli_main
from lit_basics.data import CSVDataModule
from lit_basics.experiments.commands import tune_main
from lit_basics.experiments.runs import check_args
from lit_basics.experiments.search.batched_folds import BatchedFolds
from lit_basics.experiments.search.ensemble import greedy_weights, out_of_fold_outputs, score
from lit_basics.experiments.search.folds import LightningFolds
from lit_basics.experiments.search.pack import sample_configurations
from lit_basics.experiments.search.space import load_search
from lit_basics.models.ensemble import Ensemble, combine

from .conftest import config, run_cli

ARCH = {"hidden_sizes": [5], "activation": "tanh"}


def _search(tmp: Path, base: str, space: str, epochs: int = 5, folds: int = 3, patience: int = 3) -> Path:
    path = tmp / "search.yaml"
    path.write_text(f"name: ens\nbase: {base}\nfolds: {folds}\nseed: 42\nsampler: grid\npatience: {patience}\n"
                    f"common:\n  trainer.max_epochs: {epochs}\nspace:\n{space}")
    return path


def _ensemble_cli(out: Path):
    """The saved ensemble, rebuilt from ensemble.yaml with ensemble.ckpt's weights."""
    cli = check_args("ensemble", ["--config", str(out / "ensemble.yaml"), "--trainer.logger=false"])
    state = torch.load(out / "ensemble.ckpt", weights_only=False)["state_dict"]
    cli.model.load_state_dict(state)
    return cli


@pytest.mark.parametrize("task", ["multi-class", "binary", "regression"])
def test_a_one_member_ensemble_equals_its_member_and_two_average_probabilities(task):
    outputs = {"multi-class": 3, "binary": 1, "regression": 1}[task]
    kind = "regression" if task == "regression" else "classification"
    extra = {"output_scale": 2.0, "output_shift": -1.0} if kind == "regression" else {}
    torch.manual_seed(0)
    one = Ensemble(4, outputs, [{"architecture": ARCH, "columns": [0, 4], **extra}], task=kind).eval()
    x = torch.randn(7, 4)
    member = one.members[0](x)
    if kind == "regression":
        torch.testing.assert_close(one(x), member * 2.0 - 1.0)
    elif outputs == 1:
        torch.testing.assert_close(one(x), member, atol=1e-5, rtol=1e-5)  # logit(sigmoid(z)) = z
    else:
        torch.testing.assert_close(torch.softmax(one(x), -1), torch.softmax(member, -1))
    two = Ensemble(8, outputs, [{"architecture": ARCH, "columns": [0, 4], "weight": 3.0},
                                {"architecture": ARCH, "columns": [4, 8], "weight": 1.0}], task=kind).eval()
    x = torch.randn(7, 8)
    a, b = two.members[0](x[:, :4]), two.members[1](x[:, 4:])
    if kind == "regression":
        torch.testing.assert_close(two(x), 0.75 * a + 0.25 * b)
    elif outputs == 1:
        torch.testing.assert_close(torch.sigmoid(two(x)), 0.75 * torch.sigmoid(a) + 0.25 * torch.sigmoid(b))
    else:
        torch.testing.assert_close(torch.softmax(two(x), -1), 0.75 * torch.softmax(a, -1) + 0.25 * torch.softmax(b, -1))


def test_greedy_selection_weighs_the_configuration_that_predicts_out_of_fold():
    y = torch.arange(60) % 3
    right = torch.nn.functional.one_hot(y, 3).float() * 4  # confident and right
    noise = torch.randn(2, 60, 3, generator=torch.Generator().manual_seed(0)) * 4
    oof = torch.stack([noise[0], right, noise[1]])
    weights = greedy_weights(oof, y, "classification")
    assert weights[1] > 0 and weights[1] >= weights[0] + weights[2]
    assert score(combine(oof, torch.tensor(weights), "classification"), y, "classification") == 1.0


@pytest.mark.parametrize("engine", ["batched", "lightning"])
def test_the_ensemble_checkpoint_predicts_what_its_fold_models_predict(workdir, capsys, engine):
    """Independently of the ensemble code: each fold model on its own fold's preprocessing, probabilities averaged."""
    search = _search(workdir, config("iris"), "  width: [4, 8]\n  model.lr: [0.03]\n")
    out = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2", "--engine", engine])
    summary = (out / "summary.md").read_text()
    assert "ensemble: 2 configurations x 3 folds = 6 networks" in summary
    spec = load_search(search)
    runner = BatchedFolds(spec.run_args({}), spec.folds, spec.seed, spec.patience, keep_states=True, workers=1)
    expected = []
    for width in (4, 8):  # both configurations: K = the whole grid
        params = {"width": width, "model.lr": 0.03}
        for fold, result in enumerate(runner.fit_many([params])[0]):
            cli = check_args("member", [*spec.run_args(params), f"--data.init_args.folds={spec.folds}",
                                        f"--data.init_args.fold={fold}", "--data.init_args.seed=42"])
            cli.datamodule.setup()
            net = cli.model.net.eval()
            net.load_state_dict(result.state)
            with torch.no_grad():
                expected.append(torch.softmax(net(cli.datamodule.tensors["test"][0]), -1))
    expected = torch.stack(expected).mean(0).numpy()
    run_cli("predict", "--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt"))
    predictions = pd.read_csv(out / "predictions.csv")  # beside the checkpoint
    np.testing.assert_allclose(predictions[["p_0", "p_1", "p_2"]].to_numpy(), expected, atol=2e-4)
    tested = run_cli("test", "--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt"))
    row = next(line for line in summary.splitlines() if line.startswith("| ensemble"))
    assert f"{tested['test/acc']:.4g}" in row and f"{tested['test/loss']:.4g}" in row  # the summary's figures
    with pytest.raises(SystemExit) as info:  # the fold blocks' data has no val rows: one line, not 0 rows scored
        cli_main(["validate", "--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt")])
    assert info.value.code == 2
    assert "validate: the val split has no rows (fold=-1" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nor trained again from scratch
        cli_main(["fit", "--config", str(out / "ensemble.yaml")])


def test_the_out_of_fold_score_comes_from_models_that_did_not_train_on_the_row(workdir):
    """Each training-portion row is scored by the fold models that held it out: on noise labels that is chance."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(240, 6)), columns=[f"x{i}" for i in range(6)])
    table["label"] = rng.integers(0, 2, size=240)
    table.to_csv(workdir / "noise.csv", index=False)
    (workdir / "noise.yaml").write_text(
        "data:\n  class_path: lit_basics.data.CSVDataModule\n  init_args:\n"
        f"    path: {workdir / 'noise.csv'}\n    label_column: label\n    batch_size: 16\n"
        "model:\n  hidden_sizes: [128]\n")
    search = _search(workdir, str(workdir / "noise.yaml"), "  model.lr: [0.01, 0.02]\n", epochs=20, patience=200)
    out = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2"])
    cli = _ensemble_cli(out)
    oof, y = out_of_fold_outputs(cli, 3, 2)
    data = cli.datamodule
    with torch.no_grad():
        member = cli.model.net.member_outputs(data.tensors["train"][0])
    assert score(combine(oof, torch.ones(2), "classification"), y, "classification") < 0.65
    train_split = data.split_rows(data.arrays[1])["train"]  # dataset rows, in the order of the train tensor
    for fold, (fold_train, held_out) in enumerate(data.fold_indices(data.arrays[1])):
        rows = np.flatnonzero(np.isin(train_split, held_out))
        assert not set(train_split[rows]) & set(fold_train)
        for c in range(2):  # a row's out-of-fold output is the output of configuration c's fold model that held it out
            torch.testing.assert_close(oof[c][rows], member[c * 3 + fold][rows])


def test_fold_blocks_are_each_folds_own_preprocessing_of_a_table_with_gaps_and_categories(workdir):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"a": rng.normal(size=90), "c": rng.choice(["u", "v", "w"], size=90, p=[.6, .37, .03]),
                          "label": rng.choice(["p", "q"], size=90)})
    table.loc[rng.random(90) < 0.15, "a"] = np.nan
    table.to_csv(workdir / "t.csv", index=False)
    stacked = CSVDataModule(str(workdir / "t.csv"), folds=3, fold=-1, fold_features=True)
    stacked.setup()
    assert stacked.num_features == sum(stacked.block_widths) == stacked.tensors["test"][0].shape[1]
    start = 0
    for fold, width in enumerate(stacked.block_widths):
        own = CSVDataModule(str(workdir / "t.csv"), folds=3, fold=fold)
        own.setup()
        assert own.num_features == width
        torch.testing.assert_close(stacked.tensors["test"][0][:, start:start + width], own.tensors["test"][0])
        start += width


def test_a_pack_draws_distinct_configurations_seeded_and_takes_a_small_grid_whole(workdir):
    ranges = _search(workdir, config("iris"), "  width: [4, 8, 16]\n  model.lr: {low: 0.001, high: 0.1, log: true}\n")
    spec = load_search(ranges, sampler="random", n_trials=6)
    drawn = sample_configurations(spec, 6)
    assert len({repr(sorted(p.items())) for p in drawn}) == 6 and drawn == sample_configurations(spec, 6)
    assert all(0.001 <= p["model.lr"] <= 0.1 and p["width"] in (4, 8, 16) for p in drawn)
    grid = load_search(_search(workdir, config("iris"), "  width: [4, 8]\n  model.lr: [0.01, 0.03]\n"),
                       sampler="random", n_trials=9)
    assert sorted(repr(sorted(p.items())) for p in sample_configurations(grid, 9)) == sorted(
        repr(sorted({"width": w, "model.lr": lr}.items())) for w in (4, 8) for lr in (0.01, 0.03))


@pytest.mark.parametrize("selection", ["top", "greedy"])
def test_a_pack_keeps_the_lowest_validation_losses_and_its_checkpoint_tests_as_reported(workdir, selection):
    search = _search(workdir, config("iris"), "  width: [4, 8, 16]\n  model.lr: {low: 0.003, high: 0.1, log: true}\n",
                     epochs=8)
    out = tune_main(["--config", str(search), "--no-progress", "--pack", "5", "--ensemble", "3",
                     "--ensemble-selection", selection])
    assert out.name == "ens_pack"
    table = pd.read_csv(out / "pack.csv")
    assert len(table) == 5
    kept = table[table["weight"] > 0]
    assert set(kept["rank"]) <= {0, 1, 2}  # only the three lowest validation losses are candidates
    if selection == "top":
        assert list(kept["weight"]) == [1.0, 1.0, 1.0]
    assert table.sort_values("val_loss")["rank"].tolist() == sorted(table["rank"].tolist())
    tested = run_cli("test", "--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt"))
    row = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| ensemble of"))
    assert f"{tested['test/acc']:.4g}" in row and f"{tested['test/loss']:.4g}" in row


def test_a_regression_ensemble_predicts_the_mean_of_its_fold_models_in_the_targets_units(workdir):
    """Each fold model standardised its target with its own fold's statistics: the checkpoint maps them back."""
    search = _search(workdir, config("diabetes"), "  width: [8]\n  model.lr: [0.01, 0.03]\n", epochs=4, folds=2)
    out = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2",
                     "--engine", "lightning"])
    spec = load_search(search)
    runner = LightningFolds(spec.folds, spec.seed, spec.patience, keep_states=True)
    expected = []
    for lr in (0.01, 0.03):
        params = {"width": 8, "model.lr": lr}
        for fold, result in enumerate(runner.fit_folds(spec.run_args(params), lambda r: None, params)):
            cli = check_args("member", [*spec.run_args(params), "--data.init_args.folds=2",
                                        f"--data.init_args.fold={fold}", "--data.init_args.seed=42"])
            cli.datamodule.setup()
            net = cli.model.net.eval()
            net.load_state_dict(result.state)
            with torch.no_grad():
                expected.append(cli.datamodule.target_to_units(net(cli.datamodule.tensors["test"][0]).squeeze(-1)))
    run_cli("predict", "--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt"))
    predictions = pd.read_csv(out / "predictions.csv")["prediction"]
    np.testing.assert_allclose(predictions, torch.stack(expected).mean(0).numpy(), rtol=1e-4)


def test_a_resumed_search_trains_its_top_configurations_again_into_the_same_ensemble(workdir):
    search = _search(workdir, config("iris"), "  width: [4, 8, 16]\n  model.lr: [0.03]\n")
    first = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2"])
    row = next(line for line in (first / "summary.md").read_text().splitlines() if line.startswith("| ensemble"))
    again = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2", "--resume"])
    assert row in (again / "summary.md").read_text()  # nothing kept in memory: the same networks, retrained


def test_an_interrupted_pack_stops_with_one_line_and_leaves_no_report(workdir, monkeypatch, capsys):
    def interrupted(self, configs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchedFolds, "fit_many", interrupted)
    search = _search(workdir, config("iris"), "  width: [4, 8]\n")
    with pytest.raises(SystemExit) as stop:
        tune_main(["--config", str(search), "--no-progress", "--pack", "2"])
    assert stop.value.code == 130
    assert "interrupted: search 'ens' stopped; a pack keeps nothing unfinished" in capsys.readouterr().err
    assert not Path("reports/ens_pack").exists()


def test_a_csv_ensemble_predicts_new_rows_with_its_saved_fold_preprocessing(workdir, capsys):
    """The checkpoint holds each fold's fitted transformer: a training file changed since predicts alike (a note)."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"a": rng.normal(size=120), "c": rng.choice(["u", "v", "w"], size=120),
                          "label": rng.choice(["p", "q", "r"], size=120)})
    table.loc[rng.random(120) < 0.15, "a"] = np.nan
    table.to_csv(workdir / "t.csv", index=False)
    table.drop(columns="label").head(9).assign(c=["u", "zz", None] * 3).to_csv(workdir / "new.csv", index=False)
    (workdir / "t.yaml").write_text("data:\n  class_path: lit_basics.data.CSVDataModule\n  init_args:\n"
                                    f"    path: {workdir / 't.csv'}\n    label_column: label\n")
    search = _search(workdir, str(workdir / "t.yaml"), "  width: [4, 8]\n", epochs=3)
    out = tune_main(["--config", str(search), "--no-progress", "--no-refit", "--ensemble", "2"])
    args = ["--config", str(out / "ensemble.yaml"), "--ckpt_path", str(out / "ensemble.ckpt"),
            f"--data.init_args.predict_path={workdir / 'new.csv'}"]
    run_cli("predict", *args)
    before = pd.read_csv(out / "predictions.csv")
    table.assign(a=table["a"] * 10 + 5).to_csv(workdir / "t.csv", index=False)
    run_cli("predict", *args)
    assert "rows differ" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), before)
