"""scikit-learn estimators on the batched engine."""

from lit_basics.estimators.fnn import FNNClassifier, FNNRegressor

__all__ = ["FNNClassifier", "FNNRegressor"]
