"""The timed fits: a plain PyTorch loop and our Lightning fit on the same data, and how pairs are timed.

Each pair runs in the same process on the same data, model, epochs, batch size and seed,
alternating, best of `repeats`.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from lit_basics.data import ArrayDataModule
from lit_basics.data.base import Arrays
from lit_basics.data.batching import TensorBatchLoader
from lit_basics.engine import lightning_patches
from lit_basics.models import FNN, LitFNN
from lit_basics.models.optimizers import make_optimizer

REPO = Path(__file__).resolve().parents[3]



class SyntheticMNIST(ArrayDataModule):
    """MNIST-shaped data (60000 / 10000 / 10000 x 784, 10 classes) for timing when the files are absent."""

    name = "mnist_shaped"
    num_features = 784
    num_classes = 10

    def __init__(self, train_rows: int = 60000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_rows = train_rows

    def load_splits(self) -> dict[str, Arrays]:
        rng = np.random.default_rng(self.seed)
        centers = rng.normal(0, 1, size=(10, 784)).astype(np.float32)

        def make(n: int) -> Arrays:
            y = rng.integers(0, 10, n)
            return centers[y] + rng.normal(0, 3, size=(n, 784)).astype(np.float32), y

        held_out = max(1, self.train_rows // 6)
        return {"train": make(self.train_rows), "val": make(held_out), "test": make(held_out)}


def seconds(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def plain_loop(datamodule: ArrayDataModule, hidden: list[int], epochs: int, validate: bool = True,
               init: str = "pytorch") -> float:
    """The reference: the same model, optimizer, batches and per-epoch validation, written by hand."""
    datamodule.setup()
    x, y = datamodule.tensors["train"]
    x_val, y_val = datamodule.tensors["val"]
    torch.manual_seed(0)
    net = FNN(x.shape[1], hidden, datamodule.num_classes, init=init)
    optimizer = make_optimizer("adam", net, 1e-3)
    loader = TensorBatchLoader((x, y), datamodule.batch_size, shuffle=True, seed=datamodule.seed)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        net.train()
        for xb, yb in loader:
            loss = F.cross_entropy(net(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if validate:
            net.eval()
            with torch.no_grad():
                logits = net(x_val)
                float(F.cross_entropy(logits, y_val)), float((logits.argmax(-1) == y_val).float().mean())
    return float(loss.detach())


def lightning_fit(datamodule: ArrayDataModule, hidden: list[int], epochs: int, validate: bool = True,
                  full: bool = False, root: str = "/tmp/lit_basics_bench", init: str = "pytorch") -> LitFNN:
    """Our path: LitFNN + DataModule + Trainer.fit. `full` adds TensorBoard, checkpoints, early stopping."""
    lightning_patches.apply()  # as the CLI does
    L.seed_everything(0, verbose=False)
    model = LitFNN(input_dim=datamodule.num_features, num_classes=datamodule.num_classes, hidden_sizes=hidden,
                   init=init)
    extra: dict[str, Any] = {"logger": False, "enable_checkpointing": False}
    if full:
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
        from lightning.pytorch.loggers import TensorBoardLogger

        extra = {"logger": TensorBoardLogger(root, name="bench", default_hp_metric=False),
                 "callbacks": [EarlyStopping("val/loss", patience=epochs), ModelCheckpoint(monitor="val/loss",
                                                                                         save_last=True)]}
    trainer = L.Trainer(max_epochs=epochs, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1.0 if validate else 0, **extra)
    trainer.fit(model, datamodule)
    return model


def alternate(*fns: Callable[[], Any], repeats: int) -> tuple[list[float], ...]:
    """Seconds of each of `repeats` runs of every fn, alternating, so drift of a shared machine hits all."""
    times: tuple[list[float], ...] = tuple([] for _ in fns)
    for _ in range(repeats):
        for fn, runs in zip(fns, times, strict=True):
            runs.append(seconds(fn))
    return times


def ratio(name: str, ours: Callable[[], Any], reference: Callable[[], Any], repeats: int) -> dict[str, float]:
    ours(), reference()  # warm-up: first-call allocations and lazy imports
    t_ours, t_ref = (min(runs) for runs in alternate(ours, reference, repeats=repeats))
    return {f"{name}": t_ours / t_ref, f"{name}_ours_s": t_ours, f"{name}_reference_s": t_ref}


def accuracy(model: LitFNN, datamodule: ArrayDataModule) -> float:
    x, y = datamodule.tensors["test"]
    with torch.no_grad():
        return float((model.eval()(x).argmax(-1) == y).float().mean())
