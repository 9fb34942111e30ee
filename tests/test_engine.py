"""The fast path changes speed, not results: chunked steps and direct optimizer calls."""

import subprocess
import sys

import lightning as L
import pytest
import torch

from lit_basics.data import DigitsDataModule, MoonsDataModule
from lit_basics.engine import chunked_steps, lightning_patches
from lit_basics.models import LitFNN


def _fit(epochs: int = 3, batches_per_step: int = 1, drop_last: bool = False, **model_kwargs):
    L.seed_everything(7, verbose=False)
    dm = DigitsDataModule(batch_size=50, batches_per_step=batches_per_step, drop_last=drop_last)
    model = LitFNN(input_dim=64, num_classes=10, hidden_sizes=[32], **model_kwargs)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, dm)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return model, trainer, metrics


def _assert_same_run(a, b):
    (model_a, _, metrics_a), (model_b, _, metrics_b) = a, b
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert metrics_a == metrics_b


@pytest.mark.parametrize("batches_per_step", [0, 4])
def test_chunked_steps_give_identical_results(batches_per_step):
    _assert_same_run(_fit(batches_per_step=1), _fit(batches_per_step=batches_per_step))


def test_direct_optimizer_calls_match_lightning_wrappers(monkeypatch):
    direct = _fit(batches_per_step=0, optimizer="momentum", lr=0.05)
    monkeypatch.setattr(chunked_steps, "plain_fp32_single_device", lambda trainer: False)
    wrapped = _fit(batches_per_step=0, optimizer="momentum", lr=0.05)
    assert direct[0]._direct_steps is True and wrapped[0]._direct_steps is False
    _assert_same_run(direct, wrapped)


@pytest.mark.parametrize(("drop_last", "steps_per_epoch"), [(False, 22), (True, 21)])
def test_global_step_counts_every_minibatch(drop_last, steps_per_epoch):
    # digits: 1077 training rows / 50 = 21.54 -> 22 minibatches, 21 with drop_last
    _, trainer, metrics = _fit(epochs=2, batches_per_step=0, drop_last=drop_last)
    assert trainer.global_step == 2 * steps_per_epoch


def test_scheduler_steps_once_per_epoch():
    model, _, _ = _fit(epochs=3, scheduler="step", scheduler_kwargs={"step_size": 1, "gamma": 0.5}, lr=0.01)
    assert model.optimizers().param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)


def test_gradient_clipping_bounds_the_update():
    L.seed_everything(0, verbose=False)
    clipped = LitFNN(input_dim=2, num_classes=2, hidden_sizes=[8], optimizer="sgd", lr=1.0, gradient_clip_val=1e-3)
    before = [p.detach().clone() for p in clipped.parameters()]
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(clipped, MoonsDataModule(n_samples=100, batches_per_step=1))
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(clipped.parameters(), before, strict=True)])
    assert 0 < float(step.norm()) <= 1e-3 + 1e-6


class _SameOrderSampler(torch.utils.data.Sampler):
    """A torch sampler drawing the permutation TensorBatchLoader draws: seed + epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())


@pytest.mark.parametrize("drop_last", [False, True])
def test_fast_path_matches_a_plain_dataloader_path(drop_last):
    from torch.utils.data import DataLoader, TensorDataset

    fast = _fit(epochs=3, batches_per_step=0, drop_last=drop_last)
    dm = DigitsDataModule(batch_size=50, drop_last=drop_last)
    dm.setup()
    x, y = dm.tensors["train"]
    train = DataLoader(TensorDataset(x, y), batch_size=50, sampler=_SameOrderSampler(len(y), dm.seed),
                       drop_last=drop_last)
    val = DataLoader(TensorDataset(*dm.tensors["val"]), batch_size=1024)
    L.seed_everything(7, verbose=False)
    model = LitFNN(input_dim=64, num_classes=10, hidden_sizes=[32])
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    plain = (model, trainer, {k: float(v) for k, v in trainer.callback_metrics.items()})
    assert fast[1].global_step == plain[1].global_step
    _assert_same_run(fast, plain)


def test_logging_skips_a_device_move_only_when_the_state_is_already_there(monkeypatch):
    from lightning.pytorch.trainer.connectors.logger_connector import result

    assert lightning_patches.apply()["log_moves"]
    metric = result._ResultMetric(result._Metadata(fx="f", name="val/loss"), is_tensor=True)
    moves = []
    monkeypatch.setattr(result.Metric, "to", lambda self, *a, **k: moves.append((a, k)) or self)
    monkeypatch.setattr(result, "apply_to_collection", lambda *a, **k: moves.append(a) or a[0])
    assert metric.to(torch.device("cpu")) is metric and moves == []  # value and count are on the CPU already
    metric.to(torch.device("meta"))
    assert moves  # anywhere else: Lightning's own move runs


def test_lightning_patches_are_explicit_and_version_guarded():
    from lightning.pytorch.trainer.connectors.logger_connector import result

    lightning_patches.undo_log_moves()
    lightning_version = result._ResultMetric.to
    assert not getattr(lightning_version, "skips_redundant_moves", False)
    assert lightning_patches.apply(version="2.99.0") == {"nvml_probe": False, "log_moves": False}
    assert result._ResultMetric.to is lightning_version  # an untested Lightning keeps its own behaviour
    assert lightning_patches.apply()["log_moves"] and result._ResultMetric.to is not lightning_version
    lightning_patches.undo_log_moves()
    assert result._ResultMetric.to is lightning_version
    lightning_patches.apply()


def test_importing_the_models_patches_nothing():
    code = ("import lit_basics.models, lit_basics.engine.batched_fit\n"
            "from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric\n"
            "assert not getattr(_ResultMetric.to, 'skips_redundant_moves', False)")
    subprocess.run([sys.executable, "-c", code], check=True)


class _TwoArgumentError(Exception):
    def __init__(self, a, b):  # pickles as MyErr(message): cannot be rebuilt in the parent
        super().__init__(f"bad {a} {b}")


def _failing_job(index: int) -> int:
    if index == 1:
        raise _TwoArgumentError("x", "y")
    return index


def test_a_worker_error_that_cannot_be_unpickled_comes_back_instead_of_hanging_the_pool():
    """multiprocessing's result thread dies on such an error and the pool waits forever; run_jobs names it."""
    from lit_basics.engine.parallel import run_jobs

    with pytest.raises(RuntimeError, match="_TwoArgumentError: bad x y"):
        list(run_jobs(_failing_job, [1.0, 1.0, 1.0], workers=2))
    with pytest.raises(ValueError, match="plain"):  # an ordinary error keeps its type
        list(run_jobs(lambda i: (_ for _ in ()).throw(ValueError("plain")), [1.0, 1.0], workers=2))


def _worker_signals(index: int) -> tuple:
    import signal

    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, signal.SIGTERM in signal.pthread_sigmask(
        signal.SIG_BLOCK, [])


def test_workers_die_on_sigterm_even_when_the_parent_catches_it():
    """A SIGTERM handler in the parent (a fit's graceful stop) must not keep a worker alive that the pool
    terminates while it starts: SIGTERM is blocked across the fork and delivered with its default action."""
    import signal

    from lit_basics.engine.parallel import run_jobs

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        results = dict(run_jobs(_worker_signals, [1.0, 1.0], workers=2))
        assert all(default and not blocked for default, blocked in results.values())
        for _ in range(3):  # the pool ends at once on the first error, while the other worker may be starting
            with pytest.raises(RuntimeError, match="_TwoArgumentError"):
                list(run_jobs(_failing_job, [1.0, 1.0, 1.0], workers=2))
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the parent's mask restored
    finally:
        signal.signal(signal.SIGTERM, previous)
