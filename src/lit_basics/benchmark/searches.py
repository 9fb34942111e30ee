"""Many models at once: one batched group against sequential Lightning fits, and 5-fold searches against
GridSearchCV (tune.py's batched folds and FNNSearchCV)."""

import time

import torch

from lit_basics.benchmark.fits import REPO, alternate, lightning_fit
from lit_basics.data import DigitsDataModule

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


def generic_vs_fast(epochs: int, folds: int = 5, repeats: int = 2) -> dict[str, float]:
    """The CV search's groups (GRID on digits, tune.py's BatchedFolds) on the generic path over on the fast
    path: the same models, the same fold scores (checked), only the program that trains them differs."""
    from lit_basics.experiments.search.batched_folds import BatchedFolds

    args = [f"--config={REPO / 'configs/digits.yaml'}", f"--trainer.max_epochs={epochs}"]
    runners = {path: BatchedFolds(args, folds, seed=0, patience=epochs + 1, path=path) for path in ("fast", "generic")}
    fits: dict[str, list] = {"fast": [], "generic": []}
    fast_runs, generic_runs = alternate(lambda: fits["fast"].append(runners["fast"].fit_many(GRID)),
                                        lambda: fits["generic"].append(runners["generic"].fit_many(GRID)),
                                        repeats=repeats)
    pairs = [(a, b) for fast, generic in zip(fits["fast"][0], fits["generic"][0], strict=True)
             for a, b in zip(fast, generic, strict=True)]
    # float rounding differs (padded widths, another summation order): over many epochs a fold's best epoch
    # may move by one; the first epoch's validation losses show the two programs compute the same model
    first_epoch = max(abs(a.history[0]["val/loss"] - b.history[0]["val/loss"]) for a, b in pairs)
    return {"generic_vs_fast_batched_digits": min(generic_runs) / min(fast_runs),
            "generic_batched_ours_s": min(generic_runs), "generic_batched_reference_s": min(fast_runs),
            "generic_vs_fast_first_epoch_val_loss_difference": first_epoch,
            "generic_vs_fast_fold_score_difference": max(abs(a.score - b.score) for a, b in pairs)}


def ensemble_comparison(epochs: int, folds: int = 5, n_ensemble: int = 5) -> dict[str, float]:
    """FNNSearchCV over GRID on digits' training portion: the ensemble of the best candidates' fold models
    against the single refit, scored on the held-out test rows; and its time against the search alone."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lit_basics.estimators import FNNClassifier, FNNSearchCV

    dm = DigitsDataModule()
    x, y = dm.arrays
    portion = dm.training_portion(y)
    test = sorted(set(range(len(y))) - set(portion.tolist()))
    grid = {"fnnclassifier__hidden_layer_sizes": [(w,) * d for d in DEPTHS for w in WIDTHS],
            "fnnclassifier__learning_rate_init": list(LRS), "fnnclassifier__batch_size": list(BATCH_SIZES)}
    fnn = FNNClassifier(max_iter=epochs, early_stopping=True, init="glorot", random_state=0, device="cpu")

    def search(refit: bool | str) -> tuple[float, float]:
        started = time.perf_counter()
        s = FNNSearchCV(make_pipeline(StandardScaler(), fnn), grid, cv=StratifiedKFold(folds, shuffle=True,
                        random_state=0), refit=refit, n_ensemble=n_ensemble).fit(x[portion], y[portion])
        seconds = time.perf_counter() - started
        return seconds, float(s.score(x[test], y[test])) if refit else 0.0

    alone_s, _ = search(False)
    refit_s, refit_acc = search(True)
    ensemble_s, ensemble_acc = search("ensemble")
    return {"ensemble_vs_refit_digits": ensemble_acc - refit_acc, "ensemble_test_acc_digits": ensemble_acc,
            "refit_test_acc_digits": refit_acc, "ensemble_overhead_digits": ensemble_s / alone_s,
            "refit_overhead_digits": refit_s / alone_s}
