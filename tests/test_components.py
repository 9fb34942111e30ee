"""Both engines against one declaration per component: LitFNN and the batched engine train the same model.

Every test here is parametrized over the registries (models/activations.py, losses.py, optimizers.py),
so a new entry is tested in both engines, or refused by the batched engine with its documented error.
"""

import inspect

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from lit_basics.data.batching import epoch_permutation
from lit_basics.engine import hyperparameters
from lit_basics.engine.batched import BatchedMLP, ModelSpec, fast_path
from lit_basics.engine.batched_fit import Stopping, fit_group
from lit_basics.engine.dropout import DropoutMasks
from lit_basics.engine.kernels import ACTIVATION_KERNELS, OPTIMIZER_UPDATES, activation_kernel
from lit_basics.errors import ConfigError
from lit_basics.models import LitFNN, hparams
from lit_basics.models.activations import ACTIVATIONS
from lit_basics.models.fnn import skips_single_row
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import OPTIMIZERS, SCHEDULERS

BATCHED_ACTIVATIONS = sorted(ACTIVATION_KERNELS)  # the fast path's
GENERIC_ONLY_ACTIVATIONS = sorted(set(ACTIVATIONS) - set(ACTIVATION_KERNELS))
BATCHED_OPTIMIZERS = sorted(OPTIMIZER_UPDATES)
CLASSIFICATION_LOSSES = sorted(n for n, loss in LOSSES.items() if "classification" in loss.tasks)


class RecordedDropout(nn.Module):
    """nn.Dropout with its keep masks taken from a recording: x * keep / (1 - p) in training, x otherwise."""

    def __init__(self, p: float, masks: list[torch.Tensor]) -> None:
        super().__init__()
        self.p, self.masks = p, masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = self.masks.pop(0)[0, : x.shape[0], : x.shape[1]]
        return x * keep / (1 - self.p)


def test_recorded_dropout_is_what_nn_dropout_computes():
    x = torch.rand(50, 30) + 0.5
    dropped = nn.Dropout(0.3).train()(x)
    keep = (dropped != 0).float()[None]
    torch.testing.assert_close(RecordedDropout(0.3, [keep])(x), dropped)


def data(classes: int, rows: int = 48, features: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(classes)
    x = torch.randn(rows, features, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() if classes == 2 else torch.randint(0, classes, (rows,), generator=generator)
    return x, y


def litfnn_history(settings: dict, x: torch.Tensor, y: torch.Tensor, spec: ModelSpec, epochs: int, batch: int,
                   masks: list[torch.Tensor]) -> tuple[list[float], LitFNN]:
    """LitFNN's own steps (its optimizer, loss, L1, clipping) over the batched engine's batch order."""
    torch.manual_seed(spec.seed)
    model = LitFNN(input_dim=x.shape[1], **settings)
    for name, module in list(model.net.named_modules()):  # every dropout, however deep
        if isinstance(module, nn.Dropout):
            parent, _, attr = name.rpartition(".")
            setattr(model.net.get_submodule(parent) if parent else model.net, attr, RecordedDropout(module.p, masks))
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    model._direct_steps = True
    train_rows, val_rows = spec.train_rows, spec.val_rows
    history = []
    for epoch in range(epochs):
        model.train()
        order = train_rows[epoch_permutation(len(train_rows), spec.seed, epoch)]
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            if not skips_single_row(model.net, len(rows)):  # as LitFNN.training_step
                model.optimizer_step_on(optimizer, x[rows], y[rows])
        model.eval()
        with torch.no_grad():
            val_loss = float(model.loss_fn(model(x[val_rows]), y[val_rows]))
        history.append(val_loss)
        if scheduler is not None:
            scheduler.step(val_loss) if settings["scheduler"] == "plateau" else scheduler.step()
    return history, model


def batched_history(settings: dict, x, y, spec: ModelSpec, epochs: int, batch: int, monkeypatch,
                    masks: list[torch.Tensor], path: str = "auto"):
    original = DropoutMasks.scale

    def recording(self, site, shape, rows):
        scale = original(self, site, shape, rows)
        if rows is None or any(n for _, n, _ in rows):  # a step no model trains on (a skipped row) draws none
            masks.append((scale != 0).float())
        return scale

    monkeypatch.setattr(DropoutMasks, "scale", recording)
    shared = {k: settings[k] for k in hparams.names(hparams.SHARED) if k in settings}
    result = fit_group(x[None], y, [spec], settings["hidden_sizes"], settings["num_classes"], batch_size=batch,
                       max_epochs=epochs, path=path, **shared)
    return [row["val/loss"] for row in result.history[0]], result.states[0]


def assert_engines_agree(monkeypatch, classes: int, settings: dict, epochs: int = 4, batch: int = 8,
                         path: str = "auto", train_rows: int = 36) -> None:
    """Same initial weights, batch order and dropout masks: the same validation losses and final state_dict
    (parameters and buffers such as BatchNorm's running statistics) in LitFNN and the batched engine."""
    x, y = data(classes)
    rows = torch.arange(len(y))
    settings = {"num_classes": classes, "hidden_sizes": [7, 5], "leaky_relu_alpha": 0.2, "dropout": 0.0,
                "momentum": 0.9, "weight_decay": 0.0, "l1": 0.0, "gradient_clip_val": 0.0, "optimizer_kwargs": None,
                "scheduler": "none", "scheduler_kwargs": None, **settings}
    spec = ModelSpec(train_rows=rows[:train_rows], val_rows=rows[train_rows:], seed=3,
                     **hyperparameters.model_spec_values(settings))
    masks: list[torch.Tensor] = []
    batched, state = batched_history(settings, x, y, spec, epochs, batch, monkeypatch, masks, path)
    reference, model = litfnn_history(settings, x, y, spec, epochs, batch, masks)
    assert not masks  # every recorded mask was used once, in the same order
    assert batched == pytest.approx(reference, abs=2e-5)
    expected = model.net.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(state[key].to(value.dtype), value, atol=5e-5, rtol=1e-4, msg=key)


TWO_LAYER = {"class_path": "tests.test_models.TwoLayer", "init_args": {"width": 6}}
ARCHITECTURES = {  # every architecture option, and an injected net
    "plain": {}, "batch_norm": {"norm": "batch"}, "layer_norm": {"norm": "layer"}, "residual": {"residual": True},
    "residual_batch_norm": {"residual": True, "norm": "batch", "hidden_sizes": [7, 7, 5]},
    **{f"activation_{name}": {"activation": name} for name in GENERIC_ONLY_ACTIVATIONS},  # no fast-path kernel
    "injected": {"net": TWO_LAYER, "activation": "relu", "hidden_sizes": [64, 64], "leaky_relu_alpha": 0.01},
    "injected_batch_norm": {"net": {**TWO_LAYER, "class_path": "tests.test_models.NormedTwoLayer"},
                            "activation": "relu", "hidden_sizes": [64, 64], "leaky_relu_alpha": 0.01},
}


@pytest.mark.parametrize("path", ["fast", "generic"])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_trains_alike_in_both_engines_and_paths(monkeypatch, name, path):
    """Dropout, L2, L1 and clipping on; BatchNorm's running statistics and eval mode included."""
    settings = {"activation": "tanh", "loss": "cross_entropy", "optimizer": "adam", "lr": 0.02, "dropout": 0.25,
                "weight_decay": 0.05, "l1": 0.002, "gradient_clip_val": 0.5, **ARCHITECTURES[name]}
    arch = hparams.split(settings)[0]
    if path == "fast" and not fast_path(arch):
        with pytest.raises(ConfigError, match="the batched fast path has no kernel"):
            assert_engines_agree(monkeypatch, 3, settings, path=path)
        return
    assert_engines_agree(monkeypatch, 3, settings, path=path)


def test_a_batch_of_one_row_is_skipped_alike_with_batch_norm(monkeypatch):
    """33 training rows in batches of 8: BatchNorm cannot normalise the last row alone; neither engine trains on it."""
    with pytest.warns(UserWarning, match="a training batch of one row is skipped"):
        assert_engines_agree(monkeypatch, 3, {"activation": "relu", "loss": "cross_entropy", "optimizer": "adam",
                                              "lr": 0.02, "norm": "batch", "dropout": 0.25}, train_rows=33)


@pytest.mark.parametrize("optimizer", BATCHED_OPTIMIZERS)
@pytest.mark.parametrize("loss", CLASSIFICATION_LOSSES)
@pytest.mark.parametrize("activation", BATCHED_ACTIVATIONS)
def test_one_batched_model_trains_as_litfnn(monkeypatch, activation, loss, optimizer):
    """Same initial weights and batch order, injected dropout masks; L2, L1, clipping and a leaky slope on."""
    settings = {"activation": activation, "loss": loss, "optimizer": optimizer, "lr": 0.02, "dropout": 0.25,
                "weight_decay": 0.05, "l1": 0.002, "gradient_clip_val": 0.5}
    assert_engines_agree(monkeypatch, 3, settings, path="fast")


@pytest.mark.parametrize("loss", CLASSIFICATION_LOSSES)
def test_binary_heads_agree(monkeypatch, loss):
    assert_engines_agree(monkeypatch, 2, {"activation": "leaky_relu", "loss": loss, "optimizer": "adam", "lr": 0.02,
                                          "dropout": 0.25, "l1": 0.002})


@pytest.mark.parametrize("scheduler", sorted(set(SCHEDULERS) - {"none"}))
def test_learning_rate_schedules_agree(monkeypatch, scheduler):
    kwargs = {"step": {"step_size": 2, "gamma": 0.3}, "plateau": {"patience": 0, "factor": 0.2},
              "cosine": {"T_max": 6}}.get(scheduler)  # a Trainer gives cosine its max_epochs; there is none here
    assert_engines_agree(monkeypatch, 3, {"activation": "tanh", "loss": "cross_entropy", "optimizer": "momentum",
                                          "lr": 0.3, "scheduler": scheduler, "scheduler_kwargs": kwargs}, epochs=6)


@pytest.mark.parametrize("optimizer", sorted(n for n, o in OPTIMIZERS.items() if o.defaults))
def test_optimizer_hyperparameters_agree(monkeypatch, optimizer):
    declaration = OPTIMIZERS[optimizer]
    changed = {key: value * 0.5 for key, value in declaration.defaults.items()}  # each away from its default
    assert_engines_agree(monkeypatch, 3, {"activation": "relu", "loss": "cross_entropy", "optimizer": optimizer,
                                          "lr": 0.02, "optimizer_kwargs": changed})


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("num_classes", [0, 2, 4])
def test_a_loss_mean_is_the_mean_of_its_per_sample_values(loss, num_classes):
    declaration = LOSSES[loss]
    if ("regression" if num_classes == 0 else "classification") not in declaration.tasks:
        pytest.skip(f"{loss} does not fit this head")
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 1 if num_classes <= 2 else num_classes)
    y = torch.randn(3, 6) if num_classes == 0 else torch.randint(0, num_classes, (3, 6))
    per_sample = declaration.per_sample(logits, y, num_classes)
    assert per_sample.shape == y.shape
    torch.testing.assert_close(declaration.mean(logits, y, num_classes), per_sample.mean())


def test_the_leaky_slope_changes_the_network():
    x = -torch.rand(4, 3)
    torch.manual_seed(0)
    a = LitFNN(input_dim=3, hidden_sizes=[4], activation="leaky_relu", leaky_relu_alpha=0.3)
    torch.manual_seed(0)
    b = LitFNN(input_dim=3, hidden_sizes=[4], activation="leaky_relu", leaky_relu_alpha=0.01)
    linear = a.net.blocks[0].linear
    torch.testing.assert_close(a.net.blocks[0].activation(linear(x)), nn.functional.leaky_relu(linear(x), 0.3))
    assert not torch.allclose(a(x), b(x))


def test_every_litfnn_hyperparameter_is_classified_for_the_batched_engine():
    arguments = set(inspect.signature(LitFNN.__init__).parameters) - {"self"}
    assert arguments == set(hyperparameters.LITFNN_HYPERPARAMETERS)


@pytest.mark.parametrize("activation", GENERIC_ONLY_ACTIVATIONS)
def test_activations_without_a_kernel_are_refused_by_the_fast_path_and_trained_by_the_generic_one(activation):
    with pytest.raises(ConfigError, match=f"the batched engine cannot train activation '{activation}'"):
        activation_kernel(activation)
    with pytest.raises(ConfigError, match=f"cannot train activation '{activation}'"):
        BatchedMLP.from_modules([LitFNN(input_dim=3, activation=activation).net], activation)
    x, y = data(2)
    rows = torch.arange(len(y))
    result = fit_group(x[None], y, [ModelSpec(train_rows=rows[:36], val_rows=rows[36:], lr=0.05, seed=0)], [8], 2,
                       activation=activation, max_epochs=20)
    assert result.history[0][-1]["train/loss"] < 0.7 * result.history[0][0]["train/loss"]


@pytest.mark.parametrize("activation", GENERIC_ONLY_ACTIVATIONS)
def test_litfnn_trains_the_activations_the_batched_engine_lacks(activation):
    L.seed_everything(0)
    x, y = data(2)
    model = LitFNN(input_dim=x.shape[1], activation=activation, lr=0.05)
    optimizer = model.configure_optimizers()
    model._direct_steps = True
    losses = [float(model.optimizer_step_on(optimizer, x, y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("batch_sizes", [[16, 16, 16], [8, 16, 32]])
def test_a_model_with_dropout_trains_alike_alone_and_in_any_group(batch_sizes):
    """Its masks come from its own seed: not from its neighbours, its padding or the steps its batch is split into."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 5), torch.randint(0, 3, (120,))
    rows = torch.arange(120)
    specs = [ModelSpec(train_rows=rows[:n], val_rows=rows[100:], lr=0.01, dropout=p, seed=s)
             for s, n, p in ((7, 90, 0.3), (8, 100, 0.5), (9, 77, 0.0))]
    widths = [[12, 6], [20, 9], [5, 5]]

    def fit(members):
        return fit_group(x, y, [specs[i] for i in members], [widths[i] for i in members], 3,
                         batch_size=[batch_sizes[i] for i in members], max_epochs=3)

    def losses(history):
        return [value for row in history for value in (row["train/loss"], row["val/loss"])]

    together = fit([0, 1, 2])
    reversed_group = fit([2, 1, 0])
    for i in range(3):
        alone = losses(fit([i]).history[0])
        assert losses(together.history[i]) == pytest.approx(alone, abs=1e-5)
        assert losses(reversed_group.history[2 - i]) == pytest.approx(alone, abs=1e-5)


def test_no_model_stepping_in_a_step_is_not_a_crash():
    """Mixed batch sizes with L2 and L1 after the small-batch model stopped: steps where nobody steps."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 90, 4), torch.randint(0, 3, (90,))
    rows = torch.arange(90)
    specs = [ModelSpec(train_rows=rows[:64], val_rows=rows[64:], lr=lr, weight_decay=0.01, l1=0.001, seed=s)
             for s, lr in ((0, 5.0), (1, 1e-3))]  # the first diverges and stops at once
    result = fit_group(x, y, specs, [6], 3, batch_size=[8, 32], max_epochs=6, stopping=Stopping(patience=1))
    assert result.epochs[0] < result.epochs[1] == 6


def test_a_fold_scores_its_best_loss_epoch_not_its_last_or_its_highest_accuracy():
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 4), torch.randint(0, 3, (120,))  # noise: validation accuracy wanders
    rows = torch.arange(120)
    result = fit_group(x, y, [ModelSpec(train_rows=rows[:90], val_rows=rows[90:], lr=0.05, seed=1)], [32], 3,
                       batch_size=8, max_epochs=30)
    accuracies = [row["val/acc"] for row in result.history[0]]
    losses = [row["val/loss"] for row in result.history[0]]
    best = int(np.argmin(losses))
    assert max(accuracies) > accuracies[best] != accuracies[-1]  # best, last and most accurate differ here
    assert result.best_val_acc[0] == pytest.approx(accuracies[best])
    assert result.best_val_loss[0] == pytest.approx(min(losses))
    assert result.best_epoch[0] == int(np.argmin(losses)) + 1


def test_fit_group_leaves_the_callers_random_generator_alone():
    x, y, rows = torch.randn(1, 20, 3), torch.randint(0, 2, (20,)), torch.arange(20)
    torch.manual_seed(123)
    fit_group(x, y, [ModelSpec(train_rows=rows[:16], val_rows=rows[16:], seed=5)], [4], 2, max_epochs=1)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_keep_best_returns_the_parameters_of_the_best_epoch():
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 4), torch.randint(0, 3, (120,))
    rows = torch.arange(120)
    spec = ModelSpec(train_rows=rows[:90], val_rows=rows[90:], lr=0.05, seed=1)
    for options in ({}, {"norm": "batch"}):  # with BatchNorm, its running statistics of that epoch too
        best = fit_group(x, y, [spec], [32], 3, batch_size=8, max_epochs=30, stopping=Stopping(keep_best=True),
                         **options)
        again = fit_group(x, y, [spec], [32], 3, batch_size=8, max_epochs=best.best_epoch[0], **options)
        last = fit_group(x, y, [spec], [32], 3, batch_size=8, max_epochs=30, **options)
        assert best.best_epoch[0] < 30 and set(best.states[0]) == set(again.states[0])
        for key, value in best.states[0].items():
            assert torch.equal(value, again.states[0][key]), key
        assert not torch.equal(best.states[0]["head.weight"], last.states[0]["head.weight"])


@pytest.mark.parametrize("params", [
    {"model.optimizer": "adamw", "model.weight_decay": 0.1, "model.activation": "leaky_relu",
     "model.leaky_relu_alpha": 0.3, "model.l1": 0.001},
    {"model.optimizer": "rmsprop", "model.scheduler": "plateau", "model.gradient_clip_val": 0.5,
     "model.loss": "hinge", "model.activation": "sigmoid"},
    {"model.norm": "batch", "model.residual": True},  # the generic path (dropout masks: the harness above)
    {"model.norm": "layer", "model.activation": "gelu", "model.hidden_sizes": [8, 4]},
    {"model.net": TWO_LAYER, "model.hidden_sizes": [64, 64]},
])
def test_both_search_engines_score_every_fold_alike(params):
    """tune.py's two fold runners, through the real configs: same fold seeds, data, order and semantics."""
    from lit_basics.experiments.search.batched_folds import BatchedFolds
    from lit_basics.experiments.search.folds import LightningFolds
    from lit_basics.experiments.search.space import SearchSpec

    from .conftest import config

    spec = SearchSpec(name="agree", base=config("iris"), space=[], folds=3, seed=5,
                      common={"trainer.max_epochs": 4, "model.hidden_sizes": [8], "model.lr": 0.01})
    args = spec.run_args(params)
    batched = BatchedFolds(spec.run_args({}), 3, seed=5, patience=10, workers=1).fit_folds(args, lambda r: None, params)
    lightning = LightningFolds(3, seed=5, patience=10).fit_folds(args, lambda r: None, params)
    for a, b in zip(batched, lightning, strict=True):
        assert [row["val/loss"] for row in a.history] == pytest.approx([row["val/loss"] for row in b.history],
                                                                        abs=1e-4)
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert b.score == pytest.approx(min(b.history, key=lambda row: row["val/loss"])["val/acc"])


def test_the_readme_tables_list_every_component():
    from pathlib import Path

    from lit_basics.readme_tables import readme_with_components

    readme = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    assert readme_with_components(readme) == readme, "docs/models.md component tables are stale: run make docs"


def test_a_diverging_configuration_fails_its_trial_in_both_search_engines(workdir):
    """A learning rate far too large: the trial is recorded as failed (not ranked), the search goes on."""
    import pandas as pd

    from lit_basics.experiments.commands import tune_main

    from .conftest import config

    for engine in ("batched", "lightning"):
        search = workdir / f"{engine}.yaml"
        search.write_text(f"name: diverge_{engine}\nbase: {config('iris')}\nsampler: grid\nfolds: 2\n"
                          "common:\n  trainer.max_epochs: 3\n  model.optimizer: sgd\n"
                          "space:\n  model.lr: [0.05, 1.0e+12]\n")
        out = tune_main(["--config", str(search), "--engine", engine, "--no-refit"])
        trials = pd.read_csv(out / "trials.csv")
        failed = trials[trials["state"] == "fail"]
        assert len(failed) == 1 and failed["lr"].iloc[0] == 1e12, engine
        assert failed["diverged"].iloc[0].startswith("fold"), engine
        assert "0.05" in (out / "summary.md").read_text()
        assert not (workdir / "config.yaml").exists(), engine  # fold fits write nothing in the working folder


def test_every_configuration_diverging_is_one_line(workdir):
    from lit_basics.experiments.commands import tune_main

    from .conftest import config

    search = workdir / "all.yaml"
    search.write_text(f"name: all_diverge\nbase: {config('iris')}\nsampler: grid\nfolds: 2\n"
                      "common:\n  trainer.max_epochs: 2\n  model.optimizer: sgd\nspace:\n  model.lr: [1.0e+12]\n")
    with pytest.raises(SystemExit) as stop:
        tune_main(["--config", str(search)])
    assert stop.value.code == 2


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_models_of_two_batch_sizes_train_alike_alone_and_together_on_the_generic_path(norm):
    """A model with a twice larger batch sums its gradient over two steps of the smaller (autograd's path too);
    BatchNorm's statistics count each model's own rows only (their row counts differ: a step holds padding)."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 5), torch.randint(0, 3, (120,))
    rows = torch.arange(120)
    specs = [ModelSpec(train_rows=rows[:n], val_rows=rows[100:], lr=0.01, seed=s) for s, n in ((1, 90), (2, 77))]

    def fit(members, sizes):
        return fit_group(x, y, [specs[i] for i in members], [8, 8], 3, batch_size=sizes, max_epochs=3,
                         norm=norm, path="generic")

    if norm == "batch":  # its statistics are per forward: a batch summed over steps would differ
        with pytest.raises(ValueError, match="cannot share a group with BatchNorm"):
            fit([0, 1], [8, 16])
        together = fit([0, 1], [8, 8])
        sizes = ((0, 8), (1, 8))
    else:
        together = fit([0, 1], [8, 16])
        sizes = ((0, 8), (1, 16))
    for i, size in sizes:
        alone = fit([i], [size])
        assert [r["val/loss"] for r in together.history[i]] == pytest.approx(
            [r["val/loss"] for r in alone.history[0]], abs=1e-5)


def test_only_networks_of_known_layers_run_their_own_forward_on_stacked_inputs():
    from lit_basics.engine.stacked_layers import leading_dim_safe
    from lit_basics.models.fnn import FNN

    from .test_models import TwoLayer

    assert leading_dim_safe(FNN(4, [8, 8], 3, norm="batch", residual=True, activation="gelu"))
    assert not leading_dim_safe(TwoLayer(4, 3))  # its own forward code: vmap runs it


def test_batch_norm_groups_never_mix_batch_sizes_even_when_merging():
    from lit_basics.engine.grouping import group_members
    from lit_basics.models import hparams as schema

    base = {**schema.defaults(), "max_epochs": 5, "hidden_sizes": [8]}
    settings = [{**base, "batch_size": b, "norm": norm} for norm in ("none", "batch") for b in (32, 64)]
    groups = group_members(settings, [0], merge_groups=True)
    members = sorted(sorted(c for c, _ in m) for m in groups.values())
    assert members == [[0, 1], [2], [3]]  # plain MLPs merge 32 and 64; BatchNorm ones do not
