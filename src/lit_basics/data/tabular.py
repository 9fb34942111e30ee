"""The small real data sets that ship inside scikit-learn (no download): exercise 3's defaults."""

from collections.abc import Callable
from typing import Any

from sklearn import datasets

from lit_basics.data.base import ArrayDataModule, Arrays


class _SklearnDataModule(ArrayDataModule):
    loader: Callable[..., Any]

    def load_arrays(self) -> Arrays:
        return type(self).loader(return_X_y=True)


class IrisDataModule(_SklearnDataModule):
    """Iris: 150 flowers, 4 features, 3 species."""

    name, loader = "iris", datasets.load_iris


class DigitsDataModule(_SklearnDataModule):
    """Digits: 1797 8x8 images of handwritten digits, 64 features, 10 classes."""

    name, loader = "digits", datasets.load_digits


class BreastCancerDataModule(_SklearnDataModule):
    """Breast cancer Wisconsin: 569 tumours, 30 features, benign vs malignant (binary)."""

    name, loader = "breast_cancer", datasets.load_breast_cancer


class WineDataModule(_SklearnDataModule):
    """Wine: 178 wines, 13 chemical features, 3 cultivars."""

    name, loader = "wine", datasets.load_wine


class DiabetesDataModule(_SklearnDataModule):
    """Diabetes: 442 patients, 10 features, disease progression after one year (regression, MSE)."""

    name, loader, task = "diabetes", datasets.load_diabetes, "regression"
