"""The CLI as a user runs it: every shipped config, fit/test/predict, TensorBoard files, bad input."""

import contextlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_basics.cli import cli_main
from lit_basics.errors import ConfigError
from lit_basics.models import ACTIVATIONS, load_model

from .conftest import CONFIGS, config, run_cli

SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def _extra_args(name: str, tiny_mnist: Path, tmp_path: Path) -> list[str]:
    if name == "mnist":
        return ["--data.root", str(tiny_mnist), "--data.download", "false"]
    if name == "csv":
        path = tmp_path / "mine.csv"
        rows = [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(60)]
        path.write_text("a,b,label\n" + "\n".join(rows))
        return ["--data.path", str(path)]
    return []


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_fits_and_tests(name, workdir, tiny_mnist):
    extra = _extra_args(name, tiny_mnist, workdir)
    metrics = run_cli("fit", "--config", config(name), "--trainer.max_epochs=2", *extra)
    assert metrics["epochs"] == 2
    assert Path(metrics["best_model_path"]).name == "best.ckpt"
    run = Path(metrics["log_dir"])
    assert run.parent.parent == Path("logs") and (run / "checkpoints" / "last.ckpt").is_file()
    test_metric = "test/rmse" if name == "diabetes" else "test/acc"
    assert test_metric in metrics


def test_shipped_configs_cover_every_dataset():
    from lit_basics.data import DATAMODULES

    assert set(DATAMODULES) <= set(SHIPPED) and "default" in SHIPPED


def test_classic_xor_reaches_100_percent(workdir):
    metrics = run_cli("fit", "--config", config("xor"))
    assert metrics["test/acc"] == 1.0


def test_moons_reaches_95_percent_validation_accuracy(workdir):
    metrics = run_cli("fit", "--config", config("moons"))
    assert metrics["hp/best_val_acc"] >= 0.95


def test_iris_reaches_93_percent_test_accuracy(iris_run):
    assert iris_run["test/acc"] >= 0.93


def test_run_folder_has_tensorboard_curves_and_hparams(iris_run):
    run = iris_run["root"] / iris_run["log_dir"]
    assert run.parent.name == "iris"
    tags, plugins = set(), set()
    for events in run.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        with contextlib.suppress(KeyError):  # an event file without an hparams summary
            plugins |= set(acc.PluginTagToContent("hparams"))
    assert {"train/loss", "val/loss", "val/acc", "val/f1", "test/acc"} <= tags
    assert "_hparams_/session_start_info" in plugins and "_hparams_/experiment" not in plugins  # hparams_tab.py
    hparams = (run / "hparams.yaml").read_text()
    assert "hidden_sizes" in hparams and "batch_size" in hparams


def _hparams_tab(logs: Path, runs_in_order: list[str]) -> tuple[dict[str, set[str]], set[str], set[str]]:
    """What TensorBoard's HPARAMS tab shows for these runs of `logs`, found in this order: each run's hparams
    summaries, the hparams columns and the metric columns, from the hparams plugin's own code (the experiment
    it serves the table from)."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.context import RequestContext
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    runs = plugin_event_multiplexer.EventMultiplexer()
    for run in runs_in_order:
        runs.AddRun(str(logs / run), name=run)
    runs.Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(logs))
    context = backend_context.Context(base_plugin.TBContext(data_provider=provider, multiplexer=runs, logdir=str(logs)))
    request = RequestContext()
    content = context.hparams_metadata(request, "")
    experiment = context.experiment_from_metadata(request, "", True, content,
                                                  context.hparams_from_data_provider(request, "", None))
    return ({run: set(tags) for run, tags in content.items()}, {h.name for h in experiment.hparam_infos},
            {m.name.tag for m in experiment.metric_infos})


def test_hparams_tab_shows_the_data_options_of_every_run(iris_run, workdir):
    shutil.copytree(iris_run["root"] / "logs", workdir / "logs")  # an embedded data set's run ...
    table = workdir / "prices.csv"  # ... and a CSV's, in one logs/
    table.write_text("size,kind,label\n" + "\n".join(f"{i % 7},{'ab'[i % 2]},{i % 3 % 2}" for i in range(40)))
    run_cli("fit", "--config", config("csv"), "--data.path", str(table), "--data.label_column", "label",
            "--trainer.max_epochs=1")
    for order in (["iris/version_0", "prices_label/version_0"], ["prices_label/version_0", "iris/version_0"]):
        summaries, columns, metrics = _hparams_tab(workdir / "logs", order)  # the plugin used the first run's
        assert all("_hparams_/experiment" not in tags for tags in summaries.values())  # experiment summary
        assert {"data/path", "data/label_column", "data/test_fraction", "lr", "hidden_sizes"} <= columns
        assert {"hp/best_val_loss", "hp/best_val_acc", "test/acc"} <= metrics


def test_checkpoint_reloads_to_identical_predictions(iris_run):
    from lit_basics.data import IrisDataModule

    path = iris_run["root"] / iris_run["best_model_path"]
    model = load_model(str(path)).eval()
    reloaded = load_model(str(path)).eval()
    dm = IrisDataModule(test_fraction=0.3)
    dm.setup()
    x = dm.tensors["test"][0]
    with torch.no_grad():
        torch.testing.assert_close(model(x), reloaded(x), rtol=0, atol=0)
        accuracy = (model(x).argmax(-1) == dm.tensors["test"][1]).float().mean()
    assert float(accuracy) == pytest.approx(iris_run["test/acc"])


def test_test_subcommand_scores_a_checkpoint(iris_run, workdir):
    path = str(iris_run["root"] / iris_run["best_model_path"])
    metrics = run_cli("test", "--config", config("iris"), "--ckpt_path", path)
    assert metrics["test/acc"] == pytest.approx(iris_run["test/acc"])


def test_predict_writes_a_csv_with_labels_and_probabilities(iris_run, workdir):
    path = str(iris_run["root"] / iris_run["best_model_path"])
    out = workdir / "preds.csv"
    run_cli(
        "predict", "--config", config("iris"), "--ckpt_path", path,
        "--trainer.callbacks+=lit_basics.callbacks.PredictionCSVWriter", f"--trainer.callbacks.output_path={out}",
    )
    table = pd.read_csv(out)
    assert len(table) == 45 and {"row", "target", "prediction", "p_0", "p_1", "p_2"} <= set(table.columns)
    assert (table["prediction"] == table["target"]).mean() == pytest.approx(iris_run["test/acc"])
    assert table[["p_0", "p_1", "p_2"]].sum(axis=1).round(5).eq(1).all()


def test_validate_and_predict_add_no_tensorboard_run_and_predict_writes_into_the_checkpoints_run(iris_run, workdir):
    shutil.copytree(iris_run["root"] / "logs", workdir / "logs")
    run = workdir / iris_run["log_dir"]
    (run / "predictions.csv").unlink(missing_ok=True)  # another test's predict of the shared run may have left one
    before = {p: p.read_bytes() for p in (workdir / "logs").rglob("*") if p.is_file()}
    metrics = run_cli("validate", "--config", config("iris"), "--ckpt_path", "last")  # resolves to the run's folder
    assert 0 < metrics["val/loss"] < 1
    run_cli("predict", "--config", config("iris"), "--ckpt_path", str(run / "checkpoints/best.ckpt"))
    after = {p: p.read_bytes() for p in (workdir / "logs").rglob("*") if p.is_file()}
    assert set(after) - set(before) == {run / "predictions.csv"}  # no version_N, no event file, no config.yaml
    assert all(after[p] == content for p, content in before.items())  # the run's own files untouched
    assert len(pd.read_csv(run / "predictions.csv")) == 45
    assert not Path("config.yaml").exists() and not Path("lightning_logs").exists()


def test_several_configs_compose_and_dotted_overrides_win(workdir, tmp_path):
    piece = tmp_path / "wide.yaml"
    piece.write_text("model:\n  hidden_sizes: [40, 20, 10]\n  activation: leaky_relu\n")
    metrics = run_cli(
        "fit", "--config", config("digits"), "--config", str(piece), "--model.dropout", "0.2",
        "--trainer.max_epochs=1",
    )
    model = load_model(metrics["best_model_path"])
    assert model.hparams.hidden_sizes == [40, 20, 10]
    assert model.hparams.activation == "leaky_relu" and model.hparams.dropout == 0.2
    assert model.hparams.input_dim == 64 and model.hparams.num_classes == 10


def test_print_config_shows_linked_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["fit", "--config", config("moons"), "--print_config"])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    assert "MoonsDataModule" in printed and "EarlyStopping" in printed and "accelerator: auto" in printed


def test_help_lists_the_model_options(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    printed = capsys.readouterr().out
    for option in ("--model.hidden_sizes", "--model.activation", "--model.l1", "--data"):
        assert option in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.activation", "swish"], f"unknown activation 'swish'; allowed: {', '.join(sorted(ACTIVATIONS))}"),
        (["--model.dropout", "1.5"], "dropout=1.5 is outside the allowed range [0, 1)"),
        (["--model.lr", "0"], "lr=0.0 must be > 0"),
        (["--model.hidden_sizes", "[]"], "hidden_sizes=[] must be a non-empty list"),
        (["--model.optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
        (["--data.batch_size", "0"], "batch_size=0"),
    ],
)
def test_bad_values_exit_2_with_one_line_and_no_run_folder(args, message, workdir, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli("fit", "--config", config("moons"), *args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not Path("logs").exists()


def test_failure_during_setup_leaves_no_run_folder(workdir, tmp_path):
    from lit_basics.errors import ConfigError

    missing = tmp_path / "absent"
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", config("mnist"), "--data.root", str(missing), "--data.download", "false")
    assert not any(Path("logs").glob("mnist/version_*"))
    assert issubclass(ConfigError, ValueError)


def test_load_model_names_a_corrupt_file_in_one_short_line(tmp_path):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError) as error:
        load_model(str(path))
    message = str(error.value)
    assert "broken.ckpt" in message and "corrupt" in message and "\n" not in message and len(message) < 200
    assert "weights_only=False" not in message


def test_regression_rmse_is_reported_in_the_targets_units(workdir):
    """diabetes' target (disease progression, std ~77) is standardised for training; RMSE comes back in its units."""
    metrics = run_cli("fit", "--config", config("diabetes"), "--trainer.max_epochs=3")
    assert metrics["test/rmse"] == pytest.approx(metrics["test/rmse_standardised"] * 77.0, rel=0.15)
    assert metrics["test/rmse"] > 30  # in standard deviations it would be about 1


@pytest.mark.parametrize("options", [["--model.norm=batch"], ["--model.residual=true", "--model.norm=layer"],
                                     ["--config", str(CONFIGS / "models" / "two_layer.yaml")]])
def test_architecture_options_and_an_injected_net_fit_test_and_reload(options, workdir):
    metrics = run_cli("fit", "--config", config("iris"), *options, "--trainer.max_epochs=40")
    assert metrics["test/acc"] > 0.8
    model = load_model(metrics["best_model_path"]).eval()
    again = run_cli("test", "--config", config("iris"), *options, "--ckpt_path", metrics["best_model_path"])
    assert again["test/acc"] == pytest.approx(metrics["test/acc"])
    if "--model.norm=batch" in options:  # its running statistics travel in the checkpoint
        assert float(model.net.blocks[0].norm.running_var.sub(1).abs().max()) > 0
