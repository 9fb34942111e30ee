"""Side-by-side timings: our Lightning fit vs a plain PyTorch loop, vs scikit-learn, start-up, memory.

Each pair runs in the same process on the same data, model, epochs, batch size and seed,
alternating, best of `repeats`; the ratios are what `scripts/benchmark.py` prints.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from lit_basics.data import ArrayDataModule, DigitsDataModule
from lit_basics.data.base import Arrays
from lit_basics.data.batching import TensorBatchLoader
from lit_basics.engine import lightning_patches
from lit_basics.engine.runtime import machine_description
from lit_basics.models import FNN, LitFNN
from lit_basics.models.optimizers import make_optimizer

REPO = Path(__file__).resolve().parents[2]


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


def _digits_mlpclassifier(epochs: int) -> tuple[DigitsDataModule, Any, Callable[[], Any]]:
    """The digits splits, an MLPClassifier (64-128-128-10, batch 32, Adam, lr 1e-3, no L2, no early
    stopping) and its fit with as many BLAS threads as torch uses."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    x, y = (t.numpy() for t in dm.tensors["train"])
    clf = MLPClassifier((128, 128), solver="adam", batch_size=32, learning_rate_init=1e-3, alpha=0.0,
                        max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0)

    def sklearn_fit() -> MLPClassifier:
        with warnings.catch_warnings(), threadpool_limits(limits=torch.get_num_threads()):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return clf.fit(x, y)

    return dm, clf, sklearn_fit


def sklearn_comparison(epochs: int, repeats: int) -> dict[str, float]:
    """Our fit vs MLPClassifier's at equal architecture, batch size, epochs, Adam, lr, init and threads.

    Both start from Glorot weights (scikit-learn's initialisation); no L2, no early stopping.
    `raw_vs_sklearn_digits` times the plain PyTorch loop against the same fit: the floor that any
    autograd implementation starts from on this machine.
    """
    dm, clf, sklearn_fit = _digits_mlpclassifier(epochs)
    x_test, y_test = (t.numpy() for t in dm.tensors["test"])
    holder: dict[str, LitFNN] = {}

    def ours() -> None:
        holder["model"] = lightning_fit(dm, [128, 128], epochs, validate=False, init="glorot")

    out = ratio("ours_vs_sklearn_digits", ours, sklearn_fit, repeats)
    out |= ratio("raw_vs_sklearn_digits", lambda: plain_loop(dm, [128, 128], epochs, validate=False, init="glorot"),
                 sklearn_fit, repeats)
    out["ours_acc_digits"] = accuracy(holder["model"], dm)
    out["sklearn_acc_digits"] = float(clf.score(x_test, y_test))
    return out


def estimator_comparison(epochs: int, repeats: int) -> dict[str, float]:
    """FNNClassifier.fit (the batched engine, one model) vs MLPClassifier.fit, as sklearn_comparison's pair."""
    from lit_basics.estimators import FNNClassifier

    dm, clf, sklearn_fit = _digits_mlpclassifier(epochs)
    x, y = (t.numpy() for t in dm.tensors["train"])
    x_test, y_test = (t.numpy() for t in dm.tensors["test"])
    ours = FNNClassifier((128, 128), solver="adam", batch_size=32, learning_rate_init=1e-3, alpha=0.0,
                         max_iter=epochs, n_iter_no_change=epochs + 1, init="glorot", random_state=0)
    out = ratio("estimator_vs_mlpclassifier_digits", lambda: ours.fit(x, y), sklearn_fit, repeats)
    out["estimator_acc_digits"] = float(ours.score(x_test, y_test))
    out["mlpclassifier_acc_digits"] = float(clf.score(x_test, y_test))
    return out


DEPTHS, WIDTHS, LRS, BATCH_SIZES = (1, 2, 3), (32, 128), (1e-3, 1e-2), (32, 128)  # the CV grid, both sides
GRID = [{"depth": d, "width": w, "model.lr": lr, "data.init_args.batch_size": bs}
        for d in DEPTHS for w in WIDTHS for lr in LRS for bs in BATCH_SIZES]  # 24 configurations


def batched_speedup(models: int, epochs: int, repeats: int = 2) -> dict[str, float]:
    """Per-model time of `models` sequential fast-path Lightning fits vs one batched group of as many."""
    from lit_basics.engine.batched import ModelSpec
    from lit_basics.engine.batched_fit import fit_group

    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    x, y = dm.tensors["train"]
    x_val, y_val = dm.tensors["val"]
    data = torch.cat([x, x_val]).unsqueeze(0)
    labels = torch.cat([y, y_val])
    rows = torch.arange(len(labels))
    specs = [ModelSpec(train_rows=rows[: len(y)], val_rows=rows[len(y):], lr=1e-3 * (1 + i % 5), seed=i)
             for i in range(models)]
    sequential = min(3, models)  # a few sequential fits give the per-model time

    def batched() -> None:
        fit_group(data, labels, specs, [128, 128], dm.num_classes, batch_size=32, max_epochs=epochs)

    def one_by_one() -> None:
        for _ in range(sequential):
            lightning_fit(dm, [128, 128], epochs)

    batched_runs, sequential_runs = alternate(batched, one_by_one, repeats=repeats)
    batched_s, sequential_s = min(batched_runs) / models, min(sequential_runs) / sequential
    return {"batched_per_model_speedup": sequential_s / batched_s, "batched_models": models,
            "batched_per_model_s": batched_s, "sequential_per_model_s": sequential_s}


def cv_comparison(epochs: int, folds: int = 5, repeats: int = 2) -> dict[str, float]:
    """A 5-fold search over GRID on digits: our batched engine vs GridSearchCV(MLPClassifier, n_jobs=2).

    Ours twice: tune.py's BatchedFolds, and FNNSearchCV over StandardScaler + FNNClassifier (with its
    refit; `searchcv_vs_gridsearchcv`), alternating with GridSearchCV.

    Each side uses the machine's cores: GridSearchCV two worker processes, ours a worker process per
    core. The two alternate, best of `repeats` each, as the other pairs; GridSearchCV's later runs
    reuse the worker pool its first run started, so its first run (what one search in a fresh
    process pays) is reported too.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lit_basics.engine.parallel import default_workers
    from lit_basics.estimators import FNNClassifier, FNNSearchCV
    from lit_basics.experiments.search.batched_folds import BatchedFolds

    runner = BatchedFolds([f"--config={REPO / 'configs/digits.yaml'}", f"--trainer.max_epochs={epochs}",
                           "--model.init=glorot"], folds, seed=0, patience=epochs + 1)  # scikit-learn's init
    dm = DigitsDataModule(folds=folds)
    x, y = dm.arrays
    portion = dm.training_portion(y)
    grid = {"mlpclassifier__hidden_layer_sizes": [(w,) * d for d in DEPTHS for w in WIDTHS],
            "mlpclassifier__learning_rate_init": list(LRS), "mlpclassifier__batch_size": list(BATCH_SIZES)}
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(solver="adam", max_iter=epochs, alpha=0.0,
                                                            n_iter_no_change=epochs + 1, random_state=0))
    search = GridSearchCV(pipeline, grid, cv=StratifiedKFold(folds, shuffle=True, random_state=0), n_jobs=2)

    def sklearn_search() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(x[portion], y[portion])

    fnn_grid = {k.replace("mlpclassifier__", "fnnclassifier__"): v for k, v in grid.items()}
    fnn = FNNClassifier(solver="adam", max_iter=epochs, alpha=0.0, n_iter_no_change=epochs + 1, init="glorot",
                        random_state=0)
    fnn_search = FNNSearchCV(make_pipeline(StandardScaler(), fnn), fnn_grid, cv=search.cv, refit=True)
    fits: list = []
    ours_runs, searchcv_runs, sklearn_runs = alternate(lambda: fits.append(runner.fit_many(GRID)),
                                                       lambda: fnn_search.fit(x[portion], y[portion]),
                                                       sklearn_search, repeats=repeats)
    ours_s, sklearn_s, results = min(ours_runs), min(sklearn_runs), fits[0]
    searchcv_s = min(searchcv_runs)
    sklearn_first_s = sklearn_runs[0]  # its first run also starts joblib's worker pool
    # scored as GridSearchCV scores: the accuracy after the last epoch (not the best epoch's), mean over folds
    ours_best = max(sum(r.history[-1]["val/acc"] for r in folds_) / folds for folds_ in results)
    return {"cv_speedup_vs_sklearn": sklearn_s / ours_s, "cv_ours_s": ours_s, "cv_sklearn_s": sklearn_s,
            "cv_speedup_vs_sklearn_first_run": sklearn_first_s / ours_s, "cv_sklearn_first_run_s": sklearn_first_s,
            "cv_best_acc_ours": ours_best, "cv_best_acc_sklearn": float(search.best_score_),
            "cv_configurations": len(GRID), "cv_folds": folds, "cv_epochs": epochs,
            "cv_workers": runner.workers or default_workers(), "cv_repeats": repeats,
            "searchcv_vs_gridsearchcv": sklearn_s / searchcv_s, "searchcv_s": searchcv_s,
            "searchcv_best_acc": float(fnn_search.best_score_)}


def command_seconds(args: list[str], repeats: int) -> float:
    return min(seconds(lambda: subprocess.run(args, check=True, capture_output=True, cwd=REPO))
               for _ in range(repeats))


def startup(repeats: int) -> dict[str, float]:
    help_s = command_seconds([sys.executable, "scripts/train.py", "--help"], repeats)
    import_s = command_seconds([sys.executable, "-c", "import lightning"], repeats)
    return {"help_vs_import_lightning": help_s / import_s, "help_s": help_s, "import_lightning_s": import_s}


def peak_rss_mb(epochs: int) -> float:
    """Peak resident memory (VmHWM) of a digits fit through the CLI, in a fresh process.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent, VmHWM starts anew.
    """
    code = (
        "import re; from pathlib import Path; from lit_basics.cli import cli_main; "
        f"cli_main(['fit', '--config', 'configs/digits.yaml', '--trainer.max_epochs={epochs}', "
        "'--trainer.logger=false', '--trainer.enable_progress_bar=false', '--trainer.default_root_dir=/tmp/lit_rss']); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def run(repeats: int = 3, threads: int = 1, quick: bool = False) -> dict[str, Any]:
    """All benchmarks; `quick` shrinks epochs and repeats to a smoke test of the code paths."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|smaller than the logging interval).*")
    if threads:
        torch.set_num_threads(threads)
    epochs, mnist_epochs, repeats = (2, 1, 1) if quick else (50, 2, repeats)
    digits = DigitsDataModule(batch_size=32)
    results: dict[str, Any] = {}
    results |= ratio("lightning_vs_raw_digits", lambda: lightning_fit(digits, [128, 128], epochs),
                     lambda: plain_loop(digits, [128, 128], epochs), repeats)
    results |= ratio("lightning_full_vs_raw_digits", lambda: lightning_fit(digits, [128, 128], epochs, full=True),
                     lambda: plain_loop(digits, [128, 128], epochs), repeats)
    mnist = SyntheticMNIST(train_rows=2000 if quick else 60000, batch_size=128)
    results |= ratio("lightning_vs_raw_mnist", lambda: lightning_fit(mnist, [256, 128], mnist_epochs),
                     lambda: plain_loop(mnist, [256, 128], mnist_epochs), repeats)
    results |= sklearn_comparison(epochs, repeats)
    results |= estimator_comparison(epochs, repeats)
    results |= startup(1 if quick else repeats)
    results["peak_rss_mb_digits_fit"] = peak_rss_mb(epochs)
    results |= batched_speedup(4 if quick else 24, epochs, repeats=1 if quick else 2)
    results |= cv_comparison(2 if quick else 30, repeats=1 if quick else 2)
    results["device"] = machine_description()
    results["torch_threads"] = torch.get_num_threads()
    results["repeats"] = repeats
    return results


TARGETS = {
    "lightning_vs_raw_digits": ("<=", 1.2),
    "lightning_vs_raw_mnist": ("<=", 1.2),
    "ours_vs_sklearn_digits": ("<=", 1.0),
    "help_vs_import_lightning": ("<=", 1.5),
    "batched_per_model_speedup": (">=", 4.0),
    "cv_speedup_vs_sklearn": (">=", 4.0),
    "estimator_vs_mlpclassifier_digits": ("<=", 0.6),
    "searchcv_vs_gridsearchcv": (">=", 4.0),
}


def table(results: dict[str, Any]) -> str:
    lines = [f"{'measure':<34} {'value':>10}  target", "-" * 56]
    for key, value in results.items():
        if key.endswith(("_ours_s", "_reference_s", "_per_model_s")):
            continue
        target = TARGETS.get(key)
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        verdict = ""
        if target:
            met = value <= target[1] if target[0] == "<=" else value >= target[1]
            verdict = f"{target[0]} {target[1]}  {'met' if met else 'NOT met'}"
        lines.append(f"{key:<34} {shown}  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(description="Side-by-side speed and memory ratios.")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths, not the speed")
    args = parser.parse_args(argv)
    results = run(repeats=args.repeats, threads=args.threads, quick=args.quick)
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return results
