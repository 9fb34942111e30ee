"""The batched engine against separate torch.optim runs, and in the k-fold search."""

import pytest
import torch
import torch.nn.functional as F

from lit_basics.engine.batched import BatchedMLP, BatchedOptimizer, per_sample_loss
from lit_basics.models.fnn import FNN
from lit_basics.models.optimizers import parameter_groups

TORCH = {
    "sgd": lambda groups, lr, mu: torch.optim.SGD(groups, lr=lr),
    "momentum": lambda groups, lr, mu: torch.optim.SGD(groups, lr=lr, momentum=mu),
    "rmsprop": lambda groups, lr, mu: torch.optim.RMSprop(groups, lr=lr),
    "adam": lambda groups, lr, mu: torch.optim.Adam(groups, lr=lr, foreach=False),
}


@pytest.mark.parametrize("optimizer", sorted(TORCH))
def test_three_models_match_three_separate_torch_optim_runs(optimizer):
    torch.manual_seed(0)
    x, y = torch.randn(200, 5), torch.randint(0, 3, (200,))
    lrs, decays, mus = [0.01, 0.003, 0.03], [0.0, 0.01, 0.1], [0.9, 0.5, 0.0]
    modules = [FNN(5, [8, 6], 3, activation="tanh") for _ in range(3)]
    separate = [FNN(5, [8, 6], 3, activation="tanh") for _ in range(3)]
    for source, copy in zip(modules, separate, strict=True):
        copy.load_state_dict(source.state_dict())
    batched = BatchedMLP.from_modules(modules, "tanh")
    opt = BatchedOptimizer(optimizer, batched, torch.tensor(lrs), torch.tensor(decays), torch.tensor(mus))
    optimizers = [TORCH[optimizer](parameter_groups(net, wd), lr, mu)
                  for net, lr, wd, mu in zip(separate, lrs, decays, mus, strict=True)]
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        idx = torch.stack([torch.randperm(200, generator=generator)[:16] for _ in range(3)])  # own order each
        losses = per_sample_loss("cross_entropy", batched(x[idx]), y[idx], 3).mean(1)
        grads = torch.autograd.grad(losses.sum(), batched.parameters)
        opt.step(grads, torch.ones(3, dtype=torch.bool))
        for i, (net, optim) in enumerate(zip(separate, optimizers, strict=True)):
            loss = F.cross_entropy(net(x[idx[i]]), y[idx[i]])
            optim.zero_grad()
            loss.backward()
            optim.step()
            torch.testing.assert_close(losses[i].detach(), loss.detach(), atol=1e-5, rtol=1e-5)
    for i, net in enumerate(separate):
        layers = [m for m in net.net if isinstance(m, torch.nn.Linear)]
        for layer, w, b in zip(layers, batched.weights, batched.biases, strict=True):
            torch.testing.assert_close(w[i].detach(), layer.weight.detach().T, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(b[i, 0].detach(), layer.bias.detach(), atol=1e-5, rtol=1e-5)


def test_inactive_models_do_not_move():
    modules = [FNN(3, [4], 1) for _ in range(2)]  # binary: one logit
    batched = BatchedMLP.from_modules(modules, "relu")
    opt = BatchedOptimizer("adam", batched, torch.tensor([0.1, 0.1]), torch.zeros(2), torch.zeros(2))
    before = [p.detach().clone() for p in batched.parameters]
    x, y = torch.randn(2, 8, 3), torch.randint(0, 2, (2, 8))
    grads = torch.autograd.grad(per_sample_loss("cross_entropy", batched(x), y, 2).sum(), batched.parameters)
    opt.step(grads, torch.tensor([True, False]))
    for p, b in zip(batched.parameters, before, strict=True):
        assert not torch.equal(p[0], b[0]) and torch.equal(p[1], b[1])


def test_padded_narrow_models_train_as_if_alone():
    from lit_basics.engine.batched import ModelSpec
    from lit_basics.engine.batched_fit import fit_group

    torch.manual_seed(0)
    x, y = torch.randn(1, 120, 4), torch.randint(0, 3, (120,))
    rows = torch.arange(120)

    def spec(seed: int) -> ModelSpec:
        return ModelSpec(train_rows=rows[:90], val_rows=rows[90:], lr=0.01, seed=seed)

    together = fit_group(x, y, [spec(1), spec(2)], [[4, 3], [9, 7]], 3, batch_size=16, max_epochs=5)
    alone = [fit_group(x, y, [spec(s)], [w], 3, batch_size=16, max_epochs=5) for s, w in ((1, [4, 3]), (2, [9, 7]))]
    for i, single in enumerate(alone):
        for a, b in zip(together.history[i], single.history[0], strict=True):
            assert a["val/loss"] == pytest.approx(b["val/loss"], abs=1e-5)
            assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-5)
