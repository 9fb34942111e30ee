"""The FNN, its named parts and the LightningModule, tested without the CLI."""

import lightning as L
import pytest
import torch
from torch import nn

from lit_basics.data.batching import TensorBatchLoader
from lit_basics.errors import ConfigError
from lit_basics.models import ACTIVATIONS, FNN, LOSSES, OPTIMIZERS, LitFNN, make_activation
from lit_basics.models.fnn import INITS, weight_matrices
from lit_basics.models.losses import make_loss
from lit_basics.models.optimizers import make_optimizer, parameter_groups


def test_fnn_matches_hand_built_sequential():
    torch.manual_seed(0)
    fnn = FNN(4, [8, 6], 3, activation="tanh")
    reference = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))
    reference.load_state_dict(dict(zip(reference.state_dict(), fnn.state_dict().values(), strict=True)))
    x = torch.randn(5, 4)
    torch.testing.assert_close(fnn(x), reference(x))


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_fnn_depth_is_the_length_of_hidden_sizes(depth):
    fnn = FNN(3, [7] * depth, 2, dropout=0.3)
    assert len(weight_matrices(fnn)) == len(fnn.linears()) == depth + 1
    assert sum(isinstance(m, nn.Dropout) for m in fnn.modules()) == depth


def test_leaky_relu_uses_alpha():
    act = make_activation("leaky_relu", alpha=0.2)
    assert act(torch.tensor([-1.0])).item() == pytest.approx(-0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, f"unknown activation 'swish'; allowed: {', '.join(sorted(ACTIVATIONS))}"),
        ({"loss": "kl"}, f"unknown loss 'kl'; allowed: {', '.join(sorted(LOSSES))}"),
        ({"optimizer": "lbfgs"}, f"unknown optimizer 'lbfgs'; allowed: {', '.join(sorted(OPTIMIZERS))}"),
        ({"dropout": 1.0}, "dropout=1.0 is outside the allowed range [0, 1)"),
        ({"dropout": -0.1}, "dropout=-0.1 is outside the allowed range [0, 1)"),
        ({"lr": 0.0}, "lr=0.0 must be > 0"),
        ({"lr": -1.0}, "lr=-1.0 must be > 0"),
        ({"hidden_sizes": []}, "hidden_sizes=[] must be a non-empty list"),
        ({"hidden_sizes": [8, 0]}, "has non-positive sizes [0]"),
        ({"leaky_relu_alpha": -0.5}, "leaky_relu_alpha=-0.5 must be >= 0"),
        ({"task": "regression", "loss": "hinge"}, "loss 'hinge' does not fit task 'regression'"),
        ({"scheduler": "warmup"}, "unknown scheduler 'warmup'"),
        ({"init": "uniform"}, f"unknown init 'uniform'; allowed: {', '.join(sorted(INITS))}"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        LitFNN(input_dim=4, num_classes=3, **kwargs)
    assert isinstance(info.value, ConfigError)
    assert message in str(info.value)


@pytest.mark.parametrize(("init", "activation"), [("glorot", "relu"), ("glorot", "sigmoid"), ("he", "relu")])
def test_weight_initialisations_draw_from_their_ranges(init, activation):
    torch.manual_seed(0)
    net = FNN(200, [300], 100, activation=activation, init=init)
    for layer in net.linears():
        fan_in, fan_out = layer.in_features, layer.out_features
        if init == "glorot":  # scikit-learn's: sqrt(6 / (fan_in + fan_out)), sqrt(2 / ...) for sigmoid
            bound = ((2.0 if activation == "sigmoid" else 6.0) / (fan_in + fan_out)) ** 0.5
            assert 0.95 * bound < layer.bias.abs().max() <= bound
        else:  # He: sqrt(6 / fan_in), zero biases
            bound = (6.0 / fan_in) ** 0.5
            assert not layer.bias.any()
        assert 0.95 * bound < layer.weight.abs().max() <= bound  # fills the range, and not beyond


def test_binary_cross_entropy_is_bce_with_logits_on_one_logit():
    logits, y = torch.tensor([[2.0], [-1.0]]), torch.tensor([1, 0])
    loss = make_loss("cross_entropy", "classification", 2)(logits, y)
    expected = nn.BCEWithLogitsLoss()(logits.squeeze(-1), y.float())
    torch.testing.assert_close(loss, expected)


def test_binary_hinge_maps_labels_to_plus_minus_one():
    logits, y = torch.tensor([[2.0], [0.5], [-0.25]]), torch.tensor([1, 0, 0])
    loss = make_loss("hinge", "classification", 2)(logits, y)
    # margins: 1-2 -> 0; 1+0.5 -> 1.5; 1-0.25 -> 0.75
    assert loss.item() == pytest.approx((0 + 1.5 + 0.75) / 3)


def test_multiclass_mse_compares_softmax_with_one_hot():
    logits, y = torch.tensor([[10.0, -10.0, -10.0]]), torch.tensor([0])
    assert make_loss("mse", "classification", 3)(logits, y).item() < 1e-6


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_and_loss_trains_one_step(activation, loss, num_classes):
    _train_one_step(LitFNN(input_dim=4, num_classes=num_classes, activation=activation, loss=loss))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_trains_one_step(optimizer):
    _train_one_step(LitFNN(input_dim=4, num_classes=3, optimizer=optimizer, lr=0.1))


def _train_one_step(model: LitFNN, regression: bool = False) -> None:
    """One real Lightning training step (manual optimization needs a Trainer); parameters must move."""
    x = torch.randn(16, model.hparams.input_dim)
    y = torch.randn(16) if regression else torch.randint(0, model.hparams.num_classes, (16,))
    loader = TensorBatchLoader((x, y), batch_size=8, batches_per_step=2)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=TensorBatchLoader((x, y), batch_size=16))
    assert trainer.global_step == 2  # one optimizer step per minibatch of the chunk
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_momentum_is_sgd_with_momentum_and_sgd_has_none():
    net = FNN(2, [3], 1)
    assert make_optimizer("momentum", net, 0.1, momentum=0.8).defaults["momentum"] == 0.8
    assert make_optimizer("sgd", net, 0.1, momentum=0.8).defaults["momentum"] == 0


def test_weight_decay_applies_to_weights_not_biases():
    groups = parameter_groups(FNN(2, [3], 1), weight_decay=0.1)
    assert all(p.ndim == 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0


def _fit_weight_norm(**kwargs) -> tuple[float, float]:
    from lit_basics.data import MoonsDataModule

    L.seed_everything(0)
    model = LitFNN(input_dim=2, num_classes=2, hidden_sizes=[32], lr=0.01, **kwargs)
    trainer = L.Trainer(max_epochs=15, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, MoonsDataModule(n_samples=300))
    weights = torch.cat([w.detach().flatten() for w in weight_matrices(model.net)])
    return float(weights.norm()), float((weights.abs() < 1e-3).float().mean())


def test_larger_weight_decay_gives_smaller_weights_and_l1_gives_sparsity():
    plain_norm, plain_zeros = _fit_weight_norm()
    l2_norm, _ = _fit_weight_norm(weight_decay=0.5)
    l1_norm, l1_zeros = _fit_weight_norm(l1=0.01)
    assert l2_norm < 0.8 * plain_norm
    assert l1_norm < plain_norm
    assert l1_zeros > plain_zeros + 0.1


def test_regression_head_has_one_output_and_mse():
    model = LitFNN(input_dim=3, num_classes=0, task="regression", loss="mse")
    assert model.net(torch.zeros(2, 3)).shape == (2, 1)
    _train_one_step(model, regression=True)


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_classification_scores_equal_torchmetrics_accuracy_and_f1(num_classes):
    from torchmetrics.classification import Accuracy, F1Score

    from lit_basics.models.metrics import make_metrics

    task = "binary" if num_classes == 2 else "multiclass"
    ours = make_metrics("classification", num_classes, prefix="val/")
    accuracy = Accuracy(task=task, num_classes=num_classes)
    f1 = F1Score(task=task, num_classes=num_classes, average="macro")
    generator = torch.Generator().manual_seed(num_classes)
    for _ in range(3):  # several batches; class 4 of 5 never occurs, class 0 is never predicted
        target = torch.randint(0, min(num_classes, 4), (50,), generator=generator)
        preds = torch.randint(1 if num_classes > 2 else 0, num_classes, (50,), generator=generator)
        for metric in (ours, accuracy, f1):
            metric.update(preds, target)
    values = ours.compute()
    assert set(values) == {"val/acc", "val/f1"}
    torch.testing.assert_close(values["val/acc"], accuracy.compute())
    torch.testing.assert_close(values["val/f1"], f1.compute())
    ours.reset()
    ours.update(torch.tensor([1, 1]), torch.tensor([1, 1]))
    assert float(ours.compute()["val/acc"]) == 1.0  # reset forgot the batches before


def test_norm_and_residual_match_a_hand_built_network():
    torch.manual_seed(0)
    fnn = FNN(4, [8, 8, 6], 3, activation="tanh", norm="batch", residual=True)
    blocks = [(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.Linear(4, 8, bias=False)),
              (nn.Linear(8, 8, bias=False), nn.BatchNorm1d(8), nn.Identity()),
              (nn.Linear(8, 6, bias=False), nn.BatchNorm1d(6), nn.Linear(8, 6, bias=False))]
    head = nn.Linear(6, 3)
    assert all(block.linear.bias is None for block in fnn.blocks)  # BatchNorm's mean removes a bias before it
    reference = nn.ModuleList([*(nn.ModuleList(b) for b in blocks), head])
    reference.load_state_dict(dict(zip(reference.state_dict(), fnn.state_dict().values(), strict=True)))

    def forward(x):
        for linear, norm, skip in reference[:-1]:
            x = torch.tanh(norm(linear(x))) + skip(x)
        return reference[-1](x)

    x = torch.randn(5, 4)
    for mode in (True, False):  # batch statistics in training, running statistics in evaluation
        fnn.train(mode)
        reference.train(mode)
        torch.testing.assert_close(fnn(x), forward(x))
    layer = FNN(4, [8], 2, norm="layer")
    assert isinstance(layer.blocks[0].norm, nn.LayerNorm) and layer.blocks[0].skip is None


class TwoLayer(nn.Module):
    """An injected network: what a researcher writes (tests/test_models.py::TwoLayer)."""

    def __init__(self, input_dim: int, output_dim: int, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(input_dim, width), nn.SiLU(), nn.Dropout(dropout))
        self.out = nn.Linear(width, output_dim)

    def forward(self, x):
        return self.out(self.body(x))


class NormedTwoLayer(TwoLayer):
    """An injected network with BatchNorm1d: its own forward code, so the batched engine runs it through vmap."""

    def __init__(self, input_dim: int, output_dim: int, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__(input_dim, output_dim, width, dropout)
        # no bias before BatchNorm: it gets no gradient and Adam would move it by rounding noise
        self.body = nn.Sequential(nn.Linear(input_dim, width, bias=False), nn.BatchNorm1d(width), nn.SiLU(),
                                  nn.Dropout(dropout))


class DataDependent(nn.Module):
    """An injected network whose forward branches on its data: vmap cannot batch it."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.out(x) if x.sum() > 0 else -self.out(x)


def test_an_injected_net_is_built_with_linked_sizes_and_the_fields_it_takes():
    net = {"class_path": "tests.test_models.TwoLayer", "init_args": {"width": 5}}
    model = LitFNN(input_dim=4, num_classes=3, net=net, dropout=0.25)
    assert isinstance(model.net, TwoLayer) and model.net.out.out_features == 3
    assert model.net.body[0].in_features == 4 and model.net.body[2].p == 0.25  # dropout reached it
    assert model.hparams.net == net  # recorded in checkpoints as plain values
    assert len(weight_matrices(model.net)) == 2
    _train_one_step(model)


@pytest.mark.parametrize(("net", "kwargs", "message"), [
    ({"class_path": "tests.test_models.TwoLayer"}, {"norm": "batch"},
     "model.norm='batch' has no effect on net tests.test_models.TwoLayer"),
    ({"class_path": "tests.test_models.Missing"}, {}, "net class_path 'tests.test_models.Missing' cannot be imported"),
    ({"class_path": "torch.nn.Linear"}, {}, "must take input_dim and output_dim"),
    ({"path": "x.Y"}, {}, "must be {class_path: package.module.Class"),
])
def test_an_injected_net_that_cannot_take_the_settings_is_refused(net, kwargs, message):
    with pytest.raises(ConfigError, match=None) as info:
        LitFNN(input_dim=4, num_classes=3, net=net, **kwargs)
    assert message in str(info.value)


def test_litfnn_arguments_are_the_schema_fields():
    import inspect
    from dataclasses import fields

    from lit_basics.models import hparams

    signature = inspect.signature(LitFNN.__init__).parameters
    schema = {f.name: f.default if f.default is not dataclasses_missing() else f.default_factory()
              for cls in hparams.SCHEMA for f in fields(cls)}
    ours = {k: v.default for k, v in signature.items() if k not in ("self", *hparams.DATA_LINKED)}
    assert set(ours) == set(schema)
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in ours.items()} == schema


def dataclasses_missing():
    from dataclasses import MISSING

    return MISSING


def test_the_loss_follows_the_task_unless_given():
    import torch.nn.functional as F

    from lit_basics.models import hparams

    assert hparams.Optimization().loss_for("regression") == "mse"
    assert hparams.Optimization().loss_for("classification") == "cross_entropy"
    assert hparams.Optimization(loss="hinge").loss_for("classification") == "hinge"

    regression = LitFNN(input_dim=3, num_classes=0, task="regression")
    logits, y = torch.randn(5, 1), torch.randn(5)
    torch.testing.assert_close(regression.loss_fn(logits, y), F.mse_loss(logits.squeeze(-1), y))
    classifier = LitFNN(input_dim=3, num_classes=3)
    logits, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    torch.testing.assert_close(classifier.loss_fn(logits, y), F.cross_entropy(logits, y))
