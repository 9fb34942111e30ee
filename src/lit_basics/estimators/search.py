"""FNNSearchCV: GridSearchCV's API, with all candidates x folds of the FNN step trained as batched groups.

Preprocessing (the steps of a Pipeline before the FNN estimator) is fitted once per fold and
parameter setting; the FNN candidates then train on those copies in groups formed by the rule
tune.py uses (engine/grouping.py), in worker processes on a CPU, on the GPU when there is one. The
scores, `cv_results_`, best candidate and refit are GridSearchCV's own code.
"""

import numbers
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.validation import check_array

from lit_basics.engine.batched_fit import fit_configurations
from lit_basics.engine.grouping import SHARED, chunk_groups, group_members
from lit_basics.engine.hyperparameters import check_batched
from lit_basics.engine.parallel import default_workers, run_jobs
from lit_basics.estimators.ensemble import fold_ensemble, out_of_fold_score
from lit_basics.estimators.fnn import FNNEstimator, Plan
from lit_basics.models.losses import output_dim

# block: (preprocessing setting, width)
GROUP_SHARED = (*SHARED, "patience", "min_delta", "keep_best", "device", "block")


class FNNSearchCV(GridSearchCV):
    """Exhaustive search over `param_grid` for an FNN estimator or a Pipeline ending in one.

    `n_jobs`: worker processes for independent groups (None: one per CPU core; 1 on a GPU).
    `merge_groups` (None: on a GPU only) and `max_models` as tune.py's batched engine. Each model
    draws its dropout masks from its own seed, so a candidate's fold scores are those of a separate
    fit up to float rounding. `error_score`: only "raise" (a failed fit stops the search with its
    error); scoring a failed candidate as a number would hide it.
    """

    def __init__(self, estimator, param_grid, *, scoring=None, n_jobs=None, refit=True, cv=None, verbose=0,
                 error_score="raise", return_train_score=False, merge_groups=None, max_models=256, n_ensemble=5):
        super().__init__(estimator, param_grid, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv, verbose=verbose,
                         error_score=error_score, return_train_score=return_train_score)
        self.merge_groups = merge_groups
        self.max_models = max_models
        self.n_ensemble = n_ensemble

    def _split_estimator(self) -> tuple[Pipeline | None, str, FNNEstimator]:
        """(preprocessing pipeline or None, the FNN step's name, the FNN estimator)."""
        if isinstance(self.estimator, Pipeline):
            name, final = self.estimator.steps[-1]
            prep = Pipeline(self.estimator.steps[:-1]) if len(self.estimator.steps) > 1 else None
        else:
            name, final, prep = "", self.estimator, None
        if not isinstance(final, FNNEstimator):
            raise ValueError(f"FNNSearchCV needs an FNNClassifier, FNNRegressor or a Pipeline ending in one; "
                             f"got {type(final).__name__}")
        return prep, name, final

    def _split_params(self, params: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(parameters of the preprocessing steps, parameters of the FNN estimator) of one candidate."""
        if not name:
            return {}, params
        prefix = f"{name}__"
        fnn = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        other = {k: v for k, v in params.items() if not k.startswith(prefix)}
        replaced = sorted(k for k in other if "__" not in k)
        if replaced:
            raise ValueError(f"FNNSearchCV cannot search {replaced[0]!r} (a whole step or a Pipeline setting); "
                             f"search the parameters of the steps, such as '{name}__hidden_layer_sizes'")
        return other, fnn

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters: preprocessing once per fold, the FNN candidates in batched groups."""
        if params:
            raise ValueError(f"FNNSearchCV.fit takes no fit parameters; got {', '.join(sorted(params))}")
        if y is None:
            raise ValueError("FNNSearchCV requires y to be passed, but the target y is None")
        if not (isinstance(self.error_score, str) and self.error_score == "raise"):
            raise ValueError(f"error_score={self.error_score!r} is not supported; allowed: 'raise'")
        if self.n_jobs is not None and (isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, numbers.Integral)
                                        or self.n_jobs == 0):
            raise ValueError(f"n_jobs={self.n_jobs!r} must be None, a positive integer or a negative one "
                             "(-1: every core), as GridSearchCV's")
        ensemble = isinstance(self.refit, str) and self.refit == "ensemble"
        if ensemble and not (isinstance(self.n_ensemble, int | np.integer) and not isinstance(self.n_ensemble, bool)
                             and self.n_ensemble >= 1):
            raise ValueError(f"n_ensemble={self.n_ensemble!r} must be an integer >= 1")
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        prep, name, fnn = self._split_estimator()
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y))
        self.n_splits_ = len(splits)
        candidates = list(ParameterGrid(self.param_grid))
        split = [self._split_params(c, name) for c in candidates]
        targets, labels, classes = _targets(fnn, np.asarray(y), splits)
        data = _Folds(X, y, prep, splits)
        models = [(c, k) for c in range(len(candidates)) for k in range(len(splits))]
        planned = [data.plan(clone(fnn).set_params(**split[c][1]), split[c][0], k, labels) for c, k in models]
        plans, blocks = [p for p, _ in planned], [b for _, b in planned]
        task = "regression" if classes is None else "classification"
        for c, k in models[:: len(splits)]:  # an injected module vmap cannot batch: one line before training
            if plans[c * len(splits)].settings.get("net") is not None:
                check_batched(plans[c * len(splits)].settings, data.width(split[c][0], k),
                              output_dim(task, 0 if classes is None else len(classes)))
        if self.verbose > 0:
            print(f"Fitting {len(splits)} folds for each of {len(candidates)} candidates, totalling "
                  f"{len(models)} fits in batched groups")

        def evaluate(i: int, state: dict, history: list[dict], diverged: bool, seconds: float) -> dict:
            """Model i (candidate c on fold k) as a fitted estimator, scored as GridSearchCV's _fit_and_score."""
            c, k = models[i]
            est = clone(fnn).set_params(**split[c][1])
            if classes is not None:
                est.classes_ = classes
            est.n_features_in_ = data.width(split[c][0], k)
            spec = plans[i].spec
            try:
                est.set_result(state, history, len(spec.train_rows), targets[spec.val_rows], diverged)
            except ValueError as err:  # error_score "raise"
                raise ValueError(f"candidate {candidates[c]} on fold {k}: {err}") from None
            model = est if prep is None else Pipeline([*data.prep(split[c][0], k).steps, (name, est)])
            scores = self._score(model, X, y, splits[k], scorers, seconds + data.seconds(split[c][0], k))
            return {**scores, "estimator": model} if ensemble else scores

        out = self._train(plans, blocks, data, targets, 0 if classes is None else len(classes), evaluate)
        fitted = {model: result.pop("estimator") for model, result in zip(models, out, strict=True)
                  if "estimator" in result}
        self._finish(X, y, candidates, out, scorers, refit_metric)
        if ensemble:
            self._ensemble(X, y, fitted, splits, refit_metric)
        return self

    def _ensemble(self, X: Any, y: Any, fitted: dict[tuple[int, int], Any], splits: list, metric: str) -> None:
        """best_estimator_: the fold models of the n_ensemble best-ranked candidates, averaged."""
        ranks = self.cv_results_[f"rank_test_{metric}"]
        order = sorted(range(len(ranks)), key=lambda c: (ranks[c], c))
        chosen = order[: int(self.n_ensemble)]
        self.ensemble_candidates_ = chosen
        self.ensemble_score_ = out_of_fold_score(fitted, chosen, X, y, splits)
        self.best_estimator_ = fold_ensemble([(f"candidate{c}_fold{k}", fitted[(c, k)]) for c in chosen
                                              for k in range(len(splits))])
        self.refit_time_ = 0.0

    def _train(self, plans: list[Plan], blocks: list[tuple], data: "_Folds", targets: np.ndarray, num_classes: int,
               evaluate: Callable[..., dict]) -> list[dict]:
        """Train every model in batched groups; each group's worker also scores its models (`evaluate`, on the
        fitted layers, history, divergence and the model's share of its group's seconds), so scoring runs on
        every core and nothing but scores comes back. The results in the order of `plans`."""
        merge = torch.cuda.is_available() if self.merge_groups is None else self.merge_groups
        settings = [{**p.settings, "patience": p.stopping.patience, "min_delta": p.stopping.min_delta,
                     "keep_best": p.stopping.keep_best, "block": block} for p, block in zip(plans, blocks, strict=True)]
        workers = default_workers() if self.n_jobs is None else (
            self.n_jobs if self.n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + self.n_jobs))  # joblib's rule
        chunks = chunk_groups(group_members(settings, [0], merge, shared=GROUP_SHARED), workers, self.max_models)
        y = torch.as_tensor(targets)

        def job(j: int) -> list[dict]:
            members = [i for i, _ in chunks[j]]
            first, s = plans[members[0]], settings[members[0]]
            started = time.perf_counter()
            device = torch.device(s["device"])
            result = fit_configurations(data.x(s["block"], device), y.to(device), [plans[i].spec for i in members],
                                        [settings[i] for i in members], num_classes, first.stopping)
            share = (time.perf_counter() - started) / len(members)
            return [evaluate(i, {k: v.cpu() for k, v in state.items()}, history, diverged, share)
                    for i, state, history, diverged in zip(members, result.states, result.history, result.diverged,
                                                           strict=True)]

        costs = [len(c) * settings[c[0][0]]["max_epochs"] * sum(settings[c[0][0]]["hidden_sizes"]) for c in chunks]
        out: list[Any] = [None] * len(plans)
        for j, results in run_jobs(job, costs, min(workers, len(chunks))):
            for (i, _), result in zip(chunks[j], results, strict=True):
                out[i] = result
        return out

    def _score(self, model: Any, X: Any, y: Any, split: tuple, scorers: Any, fit_time: float) -> dict[str, Any]:
        """One candidate x fold as sklearn's _fit_and_score reports it."""
        train, test = split
        started = time.perf_counter()
        result = {"fit_error": None, "test_scores": scorers(model, _safe_indexing(X, test), _safe_indexing(y, test)),
                  "n_test_samples": len(test), "fit_time": fit_time}
        result["score_time"] = time.perf_counter() - started
        if self.return_train_score:
            result["train_scores"] = scorers(model, _safe_indexing(X, train), _safe_indexing(y, train))
        return result

    def _finish(self, X: Any, y: Any, candidates: list[dict], out: list[dict], scorers: Any, refit_metric: str) -> None:
        """cv_results_, best_* and the refit, as GridSearchCV.fit ends."""
        results = self._format_results(candidates, self.n_splits_, out, defaultdict(list))
        self.multimetric_ = isinstance(out[0]["test_scores"], dict)
        if self.multimetric_ and self.refit == "ensemble":
            raise ValueError("refit='ensemble' needs one scorer (it ranks candidates by it); got several")
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(out[0]["test_scores"])
            refit_metric = self.refit
        refit = True if self.refit == "ensemble" else self.refit
        if refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(refit, refit_metric, results)
            if not callable(refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit and self.refit != "ensemble":
            self.best_estimator_ = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
            started = time.perf_counter()
            self.best_estimator_.fit(X, y)
            self.refit_time_ = time.perf_counter() - started
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results


def _targets(fnn: FNNEstimator, y: np.ndarray, splits: list[tuple]) -> tuple[np.ndarray, np.ndarray, Any]:
    """(engine targets for all rows, the labels a validation split stratifies, classes or None)."""
    if fnn._task == "regression":
        targets = check_array(y, ensure_2d=False, dtype=np.float32).ravel()
        return targets, targets, None
    classes, codes = np.unique(y, return_inverse=True)
    for k, (train, _) in enumerate(splits):
        if len(np.unique(codes[train])) < len(classes):
            raise ValueError(f"fold {k}'s training rows lack some of the {len(classes)} classes; FNNSearchCV needs "
                             "every class in every training fold (use a stratified cv)")
    codes = codes.astype(np.int64)
    return codes, codes, classes


class _Folds:
    """The preprocessed copies of X: one per (preprocessing setting, fold), fitted on the fold's training rows."""

    def __init__(self, X: Any, y: Any, prep: Pipeline | None, splits: list[tuple]) -> None:
        self.X, self.y, self.prep_base, self.splits = X, y, prep, splits
        self._fitted: dict[tuple, tuple[Any, np.ndarray, float]] = {}  # (setting, fold) -> (prep, data, seconds)
        self._blocks: dict[tuple, list[tuple]] = defaultdict(list)  # (setting, width) -> [(setting, fold)]

    def _get(self, setting: dict[str, Any], k: int) -> tuple[Any, np.ndarray, float]:
        key = (repr(sorted(setting.items())), k)
        if key not in self._fitted:
            started = time.perf_counter()
            train = self.splits[k][0]
            prep = None
            if self.prep_base is None:
                xt = self.X
            else:
                prep = clone(self.prep_base).set_params(**setting)
                prep.fit(_safe_indexing(self.X, train), _safe_indexing(self.y, train))
                xt = prep.transform(self.X)
            xt = check_array(xt, dtype=np.float32)
            self._fitted[key] = (prep, xt, time.perf_counter() - started)
            self._blocks[(key[0], xt.shape[1])].append(key)
        return self._fitted[key]

    def plan(self, est: FNNEstimator, setting: dict[str, Any], k: int, labels: np.ndarray) -> tuple[Plan, tuple]:
        """The estimator's plan for fold k (its rows mapped to rows of X, its fold to its place in its block),
        and the block: the folds of one preprocessing setting and output width, which share one data tensor."""
        _, xt, _ = self._get(setting, k)
        train = self.splits[k][0]
        plan = est.plan(labels[train])
        key = (repr(sorted(setting.items())), k)
        block = (key[0], xt.shape[1])
        plan.spec.train_rows = torch.as_tensor(train[plan.spec.train_rows.numpy()])
        plan.spec.val_rows = torch.as_tensor(train[plan.spec.val_rows.numpy()])
        plan.spec.fold = self._blocks[block].index(key)
        return plan, block

    def x(self, block: tuple, device: torch.device) -> torch.Tensor:
        """(folds in the block, rows, features) on `device`."""
        return torch.stack([torch.from_numpy(self._fitted[key][1]) for key in self._blocks[block]]).to(device)

    def width(self, setting: dict[str, Any], k: int) -> int:
        return self._get(setting, k)[1].shape[1]

    def prep(self, setting: dict[str, Any], k: int) -> Pipeline:
        return self._get(setting, k)[0]

    def seconds(self, setting: dict[str, Any], k: int) -> float:
        return self._get(setting, k)[2]
