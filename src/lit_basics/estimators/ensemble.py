"""The search is also the model: the fold models a k-fold search already trained, averaged.

scikit-learn's VotingClassifier (soft voting: the mean of the members' probabilities) and VotingRegressor
(the mean of their predictions) hold them; `fold_ensemble` sets their fitted attributes from models that are
already fitted, so nothing is retrained. Cloning the ensemble gives an unfitted VotingClassifier of the same
configurations, whose fit refits each on the rows it is given (scikit-learn's meaning of clone).
"""

from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, _safe_indexing


def fold_ensemble(members: list[tuple[str, Any]]) -> VotingClassifier | VotingRegressor:
    """A fitted soft-voting ensemble of fitted (name, estimator) members, all classifiers or all regressors."""
    first = members[0][1]
    unfitted = [(name, clone(est)) for name, est in members]
    if is_classifier(first):
        ensemble: Any = VotingClassifier(unfitted, voting="soft")
        ensemble.le_ = LabelEncoder().fit(first.classes_)
        ensemble.classes_ = ensemble.le_.classes_
    else:
        ensemble = VotingRegressor(unfitted)
    ensemble.estimators_ = [est for _, est in members]
    ensemble.named_estimators_ = Bunch(**dict(members))  # n_features_in_ and feature names: read from them
    return ensemble


def out_of_fold_score(models: dict[tuple[int, int], Any], candidates: list[int], X: Any, y: Any,
                      splits: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Accuracy (R2 for regression) of the ensemble of `candidates` on rows none of its predicting models saw:
    each row is predicted only by the candidates' models of the fold that held it out."""
    y = np.asarray(y)
    first = models[(candidates[0], 0)]
    classifier = is_classifier(first)
    predicted = np.zeros((len(y), len(first.classes_))) if classifier else np.zeros(len(y))
    for k, (_, test) in enumerate(splits):
        rows = _safe_indexing(X, test)
        outputs = [models[(c, k)].predict_proba(rows) if classifier else models[(c, k)].predict(rows)
                   for c in candidates]
        predicted[test] = np.mean(outputs, axis=0)
    if classifier:
        return float(accuracy_score(y, first.classes_[predicted.argmax(1)]))
    return float(r2_score(y, predicted))
