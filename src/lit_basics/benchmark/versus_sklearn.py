"""Our fits against scikit-learn's MLPClassifier: the Lightning fit and FNNClassifier (the batched engine)."""

from collections.abc import Callable
from typing import Any

import torch

from lit_basics.benchmark.fits import accuracy, lightning_fit, plain_loop, ratio
from lit_basics.data import DigitsDataModule
from lit_basics.models import LitFNN


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
