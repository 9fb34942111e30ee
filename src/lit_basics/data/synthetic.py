"""Generated data sets for exercise 1: XOR and scikit-learn's moons, circles and make_classification."""

from typing import Any

import numpy as np
from sklearn import datasets

from lit_basics.data.base import ArrayDataModule, Arrays
from lit_basics.errors import ConfigError, check_choice

XOR_POINTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_LABELS = np.array([0, 1, 1, 0])
DATA_SEED = 42  # the generator's seed: the split seed's old default, so the shipped configs make the same points


class GeneratedDataModule(ArrayDataModule):
    """A data set drawn by a generator: `data_seed` draws the points, `seed` only splits them (and orders
    batches), so a search or a seed-averaged run over `seed` keeps one data set.

    Args:
        data_seed: seeds the generator (the same points whatever the split seed).
    """

    def __init__(self, data_seed: int = DATA_SEED, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_seed = data_seed

    def source(self) -> str | None:
        """What a checkpoint records of the points (compared when tested or predicted): the generator's seed."""
        return f"generated with data_seed={self.data_seed}"


class XORDataModule(GeneratedDataModule):
    """XOR: the classic 4 points (train = val = test, nothing to hold out) or n noisy copies of them.

    Args:
        variant: "classic" (the 4 corners of the unit square) or "noisy" (n_samples points drawn
            around the corners with Gaussian `noise`, labelled by their corner).
    """

    name = "xor"

    def __init__(self, variant: str = "classic", n_samples: int = 400, noise: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choice("xor variant", variant, ("classic", "noisy"))
        if n_samples < 8 or noise < 0:
            raise ConfigError(f"xor: n_samples={n_samples} must be >= 8 and noise={noise} >= 0")
        self.variant, self.n_samples, self.noise = variant, n_samples, noise

    def load_arrays(self) -> Arrays:
        if self.variant == "classic":
            return XOR_POINTS, XOR_LABELS
        rng = np.random.default_rng(self.data_seed)
        corners = rng.integers(0, 4, size=self.n_samples)
        x = XOR_POINTS[corners] + rng.normal(0.0, self.noise, size=(self.n_samples, 2))
        return x, XOR_LABELS[corners]

    def make_splits(self, x: np.ndarray, y: np.ndarray) -> dict[str, Arrays]:
        if self.variant == "classic":
            return {split: (x, y) for split in ("train", "val", "test")}
        return super().make_splits(x, y)

    def split_indices(self, y: np.ndarray) -> dict[str, np.ndarray]:
        if self.variant == "classic":
            return {split: np.arange(len(y)) for split in ("train", "val", "test")}
        return super().split_indices(y)

    def training_portion(self, y: np.ndarray) -> np.ndarray:
        if self.variant == "classic":
            return np.arange(len(y))
        return super().training_portion(y)

    def fold_indices(self, y: np.ndarray, portion: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Classic XOR holds nothing out: each fold trains and scores on the 4 points (folds differ by seed)."""
        if self.variant == "classic":
            rows = np.arange(len(y))
            return [(rows, rows)] * self.folds
        return super().fold_indices(y, portion)


class MoonsDataModule(GeneratedDataModule):
    """Two interleaving half circles (sklearn.datasets.make_moons)."""

    name = "moons"

    def __init__(self, n_samples: int = 1000, noise: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.noise = n_samples, noise

    def load_arrays(self) -> Arrays:
        return datasets.make_moons(n_samples=self.n_samples, noise=self.noise, random_state=self.data_seed)


class CirclesDataModule(GeneratedDataModule):
    """A small circle inside a large one (sklearn.datasets.make_circles)."""

    name = "circles"

    def __init__(self, n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.noise, self.factor = n_samples, noise, factor

    def load_arrays(self) -> Arrays:
        return datasets.make_circles(
            n_samples=self.n_samples, noise=self.noise, factor=self.factor, random_state=self.data_seed
        )


class ClassificationDataModule(GeneratedDataModule):
    """Gaussian clusters per class (sklearn.datasets.make_classification), binary or multi-class."""

    name = "classification"

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 20,
        n_informative: int = 5,
        n_redundant: int = 2,
        n_classes: int = 3,
        class_sep: float = 1.0,
        flip_y: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.params = {
            "n_samples": n_samples,
            "n_features": n_features,
            "n_informative": n_informative,
            "n_redundant": n_redundant,
            "n_classes": n_classes,
            "class_sep": class_sep,
            "flip_y": flip_y,
        }

    def load_arrays(self) -> Arrays:
        try:
            return datasets.make_classification(**self.params, random_state=self.data_seed)
        except ValueError as err:
            raise ConfigError(f"classification: {err}") from None
