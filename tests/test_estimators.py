"""FNNClassifier, FNNRegressor and FNNSearchCV: scikit-learn's own estimator checks, composition, search, bridge."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from lit_basics.estimators import FNNClassifier, FNNRegressor

TINY = {"hidden_layer_sizes": (16,), "max_iter": 20, "learning_rate_init": 0.02, "batch_size": 32,
        "random_state": 0, "device": "cpu"}


@parametrize_with_checks([FNNClassifier(**TINY), FNNRegressor(**TINY)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
