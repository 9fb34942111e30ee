"""The batched engine against separate torch.optim runs, and in the k-fold search."""

import pytest
import torch
import torch.nn.functional as F

from lit_basics.engine.batched import ALIGN, BatchedMLP, ModelSpec
from lit_basics.engine.batched_fit import Stopping, fit_group
from lit_basics.engine.batched_optimizer import BatchedOptimizer
from lit_basics.engine.kernels import ACTIVATION_KERNELS, OPTIMIZER_UPDATES
from lit_basics.models.fnn import FNN
from lit_basics.models.losses import LOSSES
from lit_basics.models.optimizers import make_optimizer

BATCHED_ACTIVATIONS = sorted(ACTIVATION_KERNELS)  # the fast path's
BATCHED_OPTIMIZERS = sorted(OPTIMIZER_UPDATES)
CLASSIFICATION_LOSSES = sorted(name for name, loss in LOSSES.items() if "classification" in loss.tasks)


def backpropagate(batched: BatchedMLP, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One training forward and backward of the batch-mean cross-entropy; the (M,) losses."""
    with torch.no_grad():
        per_sample, d_logits = LOSSES["cross_entropy"].values_and_logit_grad(batched(x, train=True), y, num_classes)
        batched.backward(d_logits / y.shape[1])
    return per_sample.mean(1)


@pytest.mark.parametrize("activation", BATCHED_ACTIVATIONS)  # widths 8 and 6 are padded to 16: sigmoid's
@pytest.mark.parametrize("optimizer", BATCHED_OPTIMIZERS)  # padded units output 0.5, and must still change nothing
def test_three_models_match_three_separate_torch_optim_runs(optimizer, activation):
    torch.manual_seed(0)
    x, y = torch.randn(200, 5), torch.randint(0, 3, (200,))
    lrs, decays, mus = [0.01, 0.003, 0.03], [0.0, 0.01, 0.1], [0.9, 0.5, 0.0]
    modules = [FNN(5, [8, 6], 3, activation=activation) for _ in range(3)]
    separate = [FNN(5, [8, 6], 3, activation=activation) for _ in range(3)]
    for source, copy in zip(modules, separate, strict=True):
        copy.load_state_dict(source.state_dict())
    batched = BatchedMLP.from_modules(modules, activation)
    rows = torch.arange(1)
    specs = [ModelSpec(train_rows=rows, val_rows=rows, lr=lr, weight_decay=wd, momentum=mu)
             for lr, wd, mu in zip(lrs, decays, mus, strict=True)]
    opt = BatchedOptimizer(optimizer, batched, specs)
    optimizers = [make_optimizer(optimizer, net, lr, mu, wd)  # what LitFNN builds
                  for net, lr, wd, mu in zip(separate, lrs, decays, mus, strict=True)]
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        idx = torch.stack([torch.randperm(200, generator=generator)[:16] for _ in range(3)])  # own order each
        losses = backpropagate(batched, x[idx], y[idx], 3)
        opt.step(torch.ones(3, dtype=torch.bool))
        for i, (net, optim) in enumerate(zip(separate, optimizers, strict=True)):
            loss = F.cross_entropy(net(x[idx[i]]), y[idx[i]])
            optim.zero_grad()
            loss.backward()
            optim.step()
            torch.testing.assert_close(losses[i].detach(), loss.detach(), atol=1e-5, rtol=1e-5)
    for i, net in enumerate(separate):
        layers = net.linears()
        for layer, (w, b) in zip(layers, batched.layers(i), strict=True):
            torch.testing.assert_close(w.detach(), layer.weight.detach(), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(b.detach(), layer.bias.detach(), atol=1e-5, rtol=1e-5)


def test_inactive_models_do_not_move():
    modules = [FNN(3, [4], 1) for _ in range(2)]  # binary: one logit
    batched = BatchedMLP.from_modules(modules, "relu")
    rows = torch.arange(1)
    opt = BatchedOptimizer("adam", batched, [ModelSpec(train_rows=rows, val_rows=rows, lr=0.1, momentum=0.0)] * 2)
    before = [p.detach().clone() for p in batched.parameters]
    x, y = torch.randn(2, 8, 3), torch.randint(0, 2, (2, 8))
    backpropagate(batched, x, y, 2)
    opt.step(torch.tensor([True, False]))
    for p, b in zip(batched.parameters, before, strict=True):
        assert not torch.equal(p[0], b[0]) and torch.equal(p[1], b[1])


@pytest.mark.parametrize("activation", BATCHED_ACTIVATIONS)
@pytest.mark.parametrize("loss", CLASSIFICATION_LOSSES)
def test_handwritten_backward_matches_autograd(activation, loss):
    torch.manual_seed(0)
    modules = [FNN(5, [20, 7], 3, activation=activation, leaky_relu_alpha=0.2),
               FNN(5, [9, 7], 3, activation=activation, leaky_relu_alpha=0.2)]  # padded to 32, 16, 16
    batched = BatchedMLP.from_modules(modules, activation, alpha=0.2, dropout=torch.tensor([0.4, 0.0]))
    x, y = torch.randn(2, 6, 5), torch.randint(0, 3, (2, 6))

    def forward() -> torch.Tensor:  # the same dropout masks both times
        batched.seed_dropout([3, 4])
        return batched(x, train=True)

    for parameter in batched.parameters:  # the engine's own tensors build no graph: ask for one here
        parameter.requires_grad_(True)
    expected = torch.autograd.grad(LOSSES[loss].per_sample(forward(), y, 3).mean(1).sum(), batched.parameters)
    with torch.no_grad():
        _, d_logits = LOSSES[loss].values_and_logit_grad(forward(), y, 3)
        batched.backward(d_logits / 6)
    got = [g for pair in zip(batched.weight_grads, batched.bias_grads, strict=True) for g in pair]
    assert any(bool((g != 0).any()) for g in got)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])  # sigmoid(0) != 0: the padding needs its mask
def test_padded_narrow_models_train_as_if_alone(activation):
    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 4), torch.randint(0, 3, (120,))
    rows = torch.arange(120)

    def spec(seed: int) -> ModelSpec:
        return ModelSpec(train_rows=rows[:90], val_rows=rows[90:], lr=0.01, seed=seed)

    def fit(specs, widths):
        return fit_group(x, y, specs, widths, 3, activation=activation, batch_size=16, max_epochs=5)

    together = fit([spec(1), spec(2)], [[4, 3], [9, 7]])
    alone = [fit([spec(s)], [w]) for s, w in ((1, [4, 3]), (2, [9, 7]))]
    for i, single in enumerate(alone):
        for a, b in zip(together.history[i], single.history[0], strict=True):
            assert a["val/loss"] == pytest.approx(b["val/loss"], abs=1e-5)
            assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-5)


@pytest.mark.parametrize("optimizer", BATCHED_OPTIMIZERS)
def test_models_of_several_batch_sizes_train_together_as_if_alone(optimizer):
    """Larger batches sum their gradient over several steps of the smallest; L2 and L1 added once a step."""
    torch.manual_seed(0)
    x, y = torch.randn(1, 150, 4), torch.randint(0, 3, (150,))
    rows = torch.arange(150)
    specs = [ModelSpec(train_rows=rows[:n], val_rows=rows[120:], lr=0.01, weight_decay=0.01, l1=0.001, seed=s)
             for s, n in ((1, 120), (2, 101), (3, 77))]  # partial last batches of several lengths
    sizes = [8, 32, 16]

    def fit(specs, batch_size):
        return fit_group(x, y, specs, [6], 3, optimizer=optimizer, batch_size=batch_size, max_epochs=4)

    together = fit(specs, sizes)
    for i, (spec, size) in enumerate(zip(specs, sizes, strict=True)):
        alone = fit([spec], size)
        assert len(together.history[i]) == 4
        for a, b in zip(together.history[i], alone.history[0], strict=True):
            assert a["val/loss"] == pytest.approx(b["val/loss"], abs=1e-5)
            assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-5)


def test_batch_sizes_that_are_not_multiples_of_the_smallest_are_refused():
    rows = torch.arange(20)
    specs = [ModelSpec(train_rows=rows[:16], val_rows=rows[16:], seed=s) for s in (1, 2)]
    with pytest.raises(ValueError, match=r"batch sizes \[4, 6\] must be multiples of the smallest, 4"):
        fit_group(torch.randn(1, 20, 3), torch.randint(0, 2, (20,)), specs, [4], 2, batch_size=[4, 6])


@pytest.mark.parametrize("loss", sorted(n for n, loss in LOSSES.items() if loss.with_logit_grad))
@pytest.mark.parametrize("num_classes", [2, 10])
def test_closed_form_logit_gradients_match_autograd(num_classes, loss):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 1 if num_classes == 2 else num_classes, requires_grad=True)
    y = torch.randint(0, num_classes, (3, 7))
    expected = LOSSES[loss].per_sample(logits, y, num_classes)
    (grad,) = torch.autograd.grad(expected.sum(), logits)
    values, closed_grad = LOSSES[loss].with_logit_grad(logits.detach(), y, num_classes)
    torch.testing.assert_close(values, expected.detach())
    torch.testing.assert_close(closed_grad, grad)


def test_layers_are_padded_to_round_widths_and_read_back_unpadded():
    modules = [FNN(5, [20, 7], 3), FNN(5, [9, 7], 3)]
    batched = BatchedMLP.from_modules(modules, "relu")
    assert [w.shape[1:] for w in batched.weights] == [(5, 2 * ALIGN), (2 * ALIGN, ALIGN), (ALIGN, ALIGN)]
    assert batched(torch.randn(2, 4, 5)).shape == (2, 4, 3)  # the output cut back to 3 classes
    for module, i in zip(modules, range(2), strict=True):
        linears = module.linears()
        for layer, (w, b) in zip(linears, batched.layers(i), strict=True):
            assert torch.equal(w, layer.weight) and torch.equal(b, layer.bias)


def test_worker_processes_give_the_same_results_as_one_process():
    from lit_basics.experiments.search.batched_folds import BatchedFolds

    from .conftest import config

    grid = [{"depth": d, "width": w, "model.lr": 0.01} for d in (1, 2) for w in (4, 8)]
    base = [f"--config={config('iris')}", "--trainer.max_epochs=3"]
    one, two = (BatchedFolds(base, 3, seed=0, patience=2, workers=n).fit_many(grid) for n in (1, 2))
    assert [[r.score for r in folds] for folds in one] == [[r.score for r in folds] for folds in two]
    assert [[r.val_loss for r in folds] for folds in one] == [[r.val_loss for r in folds] for folds in two]


def test_rows_gathered_per_step_give_the_same_fit_as_one_gather_per_epoch(monkeypatch):
    import lit_basics.engine.batched_fit as batched_fit

    torch.manual_seed(0)
    x, y = torch.randn(2, 100, 6), torch.randint(0, 3, (100,))
    rows = torch.arange(100)
    specs = [ModelSpec(train_rows=rows[:70 - 7 * f], val_rows=rows[70:], fold=f, lr=0.01, seed=f) for f in (0, 1)]
    per_epoch = fit_group(x, y, specs, [8], 3, batch_size=16, max_epochs=3)
    monkeypatch.setattr(batched_fit, "EPOCH_GATHER_LIMIT", 0)  # as for data too large to gather per epoch
    per_step = fit_group(x, y, specs, [8], 3, batch_size=16, max_epochs=3)
    assert per_step.history == per_epoch.history and per_step.best_val_loss == per_epoch.best_val_loss


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop"])
def test_models_that_stopped_early_leave_the_stack_without_changing_any_result(monkeypatch, optimizer):
    import lit_basics.engine.batched_fit as batched_fit

    torch.manual_seed(0)
    x, y = torch.randn(2, 150, 5), torch.randint(0, 3, (150,))
    rows = torch.arange(150)
    # learning rates from far too small to far too large: the models stop at different epochs
    specs = [ModelSpec(train_rows=rows[: 100 - 5 * (i % 2)], val_rows=rows[100:], fold=i % 2, lr=lr, seed=i,
                       weight_decay=0.01 * (i % 3), l1=0.001 * (i % 2))
             for i, lr in enumerate([1e-4, 0.3, 0.003, 1.0, 0.03, 0.1])]

    def fit():
        return fit_group(x, y, specs, [12, 6], 3, optimizer=optimizer, batch_size=16, max_epochs=25,
                         stopping=Stopping(patience=2))

    sizes = []
    keep = BatchedMLP.keep
    monkeypatch.setattr(BatchedMLP, "keep", lambda net, rows: sizes.append(len(rows)) or keep(net, rows))
    compacted = fit()
    assert len(sizes) >= 2 and sizes == sorted(sizes, reverse=True)  # the stack shrank more than once
    shrinks = len(sizes)
    monkeypatch.setattr(batched_fit, "COMPACT_BELOW", 0.0)  # stopped models stay in the stack, frozen
    frozen = fit()
    assert len(sizes) == shrinks and len(set(compacted.epochs)) > 2
    assert compacted.epochs == frozen.epochs and compacted.best_epoch == frozen.best_epoch
    for a, b in ((compacted.best_val_loss, frozen.best_val_loss), (compacted.best_val_acc, frozen.best_val_acc)):
        assert a == pytest.approx(b, abs=1e-6)
    for mine, theirs in zip(compacted.history, frozen.history, strict=True):
        assert [row["val/loss"] for row in mine] == pytest.approx([row["val/loss"] for row in theirs], abs=1e-6)


def test_merged_groups_give_the_results_of_separate_groups():
    """merge_groups (a GPU's default): padded widths and summed gradients of larger batches change no score."""
    from lit_basics.experiments.search.batched_folds import BatchedFolds

    from .conftest import config

    grid = [{"width": w, "data.init_args.batch_size": b, "model.lr": 0.01} for w in (4, 8) for b in (8, 24)]
    base = [f"--config={config('iris')}", "--trainer.max_epochs=3"]
    separate, merged = (BatchedFolds(base, 3, seed=0, patience=5, merge_groups=m, workers=1).fit_many(grid)
                        for m in (False, True))
    for a, b in zip(separate, merged, strict=True):
        assert [r.val_loss for r in a] == pytest.approx([r.val_loss for r in b], abs=1e-5)
        assert [r.history[-1]["train/loss"] for r in a] == pytest.approx([r.history[-1]["train/loss"] for r in b],
                                                                            abs=1e-5)
