"""scikit-learn estimators on the batched engine."""

from lit_basics.estimators.fnn import FNNClassifier, FNNRegressor
from lit_basics.estimators.search import FNNSearchCV

__all__ = ["FNNClassifier", "FNNRegressor", "FNNSearchCV"]
