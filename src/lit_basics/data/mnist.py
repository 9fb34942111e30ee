"""MNIST through torchvision's loader, decoded once into one normalised float tensor."""

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from lit_basics.data.base import ArrayDataModule, Arrays
from lit_basics.errors import ConfigError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class MNISTDataModule(ArrayDataModule):
    """MNIST handwritten digits: 60000 training and 10000 test images of 28x28 pixels, 10 classes.

    Validation rows are a stratified `val_fraction` of the official training set; the official test
    set is the test split. Pixels are scaled by one mean and std fitted on the training rows.

    Args:
        root: folder holding MNIST/raw/ with the four IDX files (torchvision's layout).
        download: let torchvision download the files when they are absent.
    """

    name = "mnist"
    per_feature_scaling = False
    num_features = 28 * 28
    num_classes = 10

    def __init__(self, root: str = "data", download: bool = True, batch_size: int = 128, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.root, self.download = root, download

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / "MNIST" / "raw"

    def _dataset(self, train: bool):
        from torchvision.datasets import MNIST  # torchvision costs ~1 s to import: only when MNIST is used

        try:
            return MNIST(self.root, train=train, download=self.download)
        except RuntimeError as err:
            reason = "download failed" if self.download else "download is off"
            raise ConfigError(
                f"mnist: files not found and {reason}; put the four uncompressed IDX files "
                f"{', '.join(IDX_FILES)} into {self.raw_folder}/ ({str(err).splitlines()[0]})"
            ) from None

    def prepare_data(self) -> None:
        self._dataset(train=True)
        self._dataset(train=False)

    def load_splits(self) -> dict[str, Arrays]:
        if self.folds:
            raise ConfigError("mnist: k-fold cross-validation is not supported (60000 images: use the val split)")
        x, y = _flatten(self._dataset(train=True))
        try:
            train, val = train_test_split(
                np.arange(len(y)), test_size=self.val_fraction, random_state=self.seed, stratify=y
            )
        except ValueError as err:
            raise ConfigError(f"mnist: cannot split {len(y)} training rows: {err}") from None
        self.classes = np.arange(10)
        train, val = np.sort(train), np.sort(val)
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": _flatten(self._dataset(train=False))}


def _flatten(dataset: Any) -> Arrays:
    """(n, 28, 28) uint8 images -> (n, 784) float32 in [0, 1], and the labels."""
    images = dataset.data.reshape(len(dataset.data), -1).numpy().astype(np.float32) / 255.0
    return images, dataset.targets.numpy().astype(np.int64)
