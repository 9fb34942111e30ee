"""ArrayDataModule: the shared in-memory path for every dataset family.

A subclass only says how to load its arrays (`load_arrays`); this class makes seeded stratified
train/val/test splits, fits standardisation on the training rows only, holds the splits as tensors
on the training device and batches them with TensorBatchLoader.
"""

import contextlib
import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split

from lit_basics.data.batching import TensorBatchLoader
from lit_basics.data.folds import KFoldSplits
from lit_basics.data.targets import TargetScaling
from lit_basics.errors import ConfigError, check_choice

SPLITS = ("train", "val", "test")
Arrays = tuple[np.ndarray, np.ndarray]


PROGRESS_STEPS = 50  # Lightning steps per epoch of a big table (its progress bar's updates)


class ArrayDataModule(KFoldSplits, TargetScaling, L.LightningDataModule):
    """Base DataModule for data sets that fit in memory.

    Args:
        batch_size: training batch size.
        val_fraction, test_fraction: shares of all rows held out for validation and test.
        standardize: scale features to zero mean and unit variance, fitted on the training split.
        seed: seeds the split (and the per-epoch shuffling unless `shuffle_seed` is set).
        shuffle_seed: seeds only the order of training batches, so repeated runs can differ in
            order while keeping the same split.
        eval_batch_size: batch size for validation, test and predict (larger is faster; no gradients).
        drop_last: drop the last partial training batch of each epoch.
        predict_split: the split `predict` runs on (train, val, test).
        batches_per_step: minibatches handed to one Lightning training step (each still gets its own
            optimizer step, so results do not change); 0 means a whole epoch. Larger values pay
            Lightning's per-step overhead less often, at the cost of a coarser progress bar.
        folds, fold: k-fold cross-validation over the train + val rows (the test rows stay out): fold f's
            training rows train, its held-out rows validate; fold -1 trains on all of them (a refit).
        fold_features: with fold=-1, each row's features as each fold's preprocessing gives them, side by
            side (k blocks): the input of an ensemble of fold models (`tune.py --ensemble`).
    """

    name: ClassVar[str] = "data"
    task: str = "classification"
    per_feature_scaling: ClassVar[bool] = True

    def __init__(
        self,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        standardize: bool = True,
        seed: int = 42,
        eval_batch_size: int = 1024,
        drop_last: bool = False,
        predict_split: str = "test",
        batches_per_step: int = 0,
        shuffle_seed: int | None = None,
        folds: int = 0,
        fold: int = 0,
        fold_features: bool = False,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or eval_batch_size <= 0:
            raise ConfigError(f"batch_size={batch_size} and eval_batch_size={eval_batch_size} must be >= 1")
        for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 < fraction < 1.0:
                raise ConfigError(f"{label}={fraction!r} is outside the allowed range (0, 1)")
        if val_fraction + test_fraction >= 1.0:
            raise ConfigError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} must be < 1")
        check_choice("predict_split", predict_split, SPLITS)
        if batches_per_step < 0:
            raise ConfigError(f"batches_per_step={batches_per_step} must be >= 0 (0: a whole epoch per step)")
        self.save_hyperparameters()  # collects the arguments of subclass __init__s too
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.seed = seed
        self.drop_last = drop_last
        self.predict_split = predict_split
        self.batches_per_step = batches_per_step
        self.shuffle_seed = seed if shuffle_seed is None else shuffle_seed
        if folds == 1 or folds < 0:
            raise ConfigError(f"folds={folds} must be 0 (no cross-validation) or >= 2")
        if folds and not -1 <= fold < folds:
            raise ConfigError(f"fold={fold} must be in -1..{folds - 1} for folds={folds}")
        if fold_features and not (folds and fold == -1):
            raise ConfigError(f"fold_features=true needs folds >= 2 and fold=-1 (every fold's preprocessing of "
                              f"the whole training portion); got folds={folds}, fold={fold}")
        self.folds, self.fold, self.fold_features = folds, fold, fold_features
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.block_widths: list[int] = []  # the widths of the fold blocks (fold_features), set with the features
        self.classes: np.ndarray | None = None
        self.scaler: tuple[np.ndarray, np.ndarray] | None = None
        self.target_scaler: tuple[float, float] | None = None  # (mean, std) of the training targets
        self.target_restored = False  # target_scaler came from a checkpoint (TargetScaling)

    @classmethod
    def run_name(cls, init_args: Any) -> str:
        """The folder under logs/ for runs of this data set (init_args: the config's data arguments)."""
        return cls.name

    # --- what a subclass provides -------------------------------------------------------------
    def load_arrays(self) -> Arrays:
        """Features (n, d) and labels (n,) of the whole data set."""
        raise NotImplementedError

    def load_splits(self) -> dict[str, Arrays]:
        """Train, val and test arrays; data sets with an official split override this."""
        return self.make_splits(*self.arrays)

    def make_splits(self, x: Any, y: np.ndarray) -> dict[str, Arrays]:
        """Seeded train/val/test split, stratified by class for classification; a fold of it with `folds`."""
        return {split: (take_rows(x, rows), y[rows]) for split, rows in self.split_rows(y).items()}

    def split_indices(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Disjoint row indices per split; stratified so each split keeps the class proportions."""
        rows = np.arange(len(y))
        stratify = y if self.task == "classification" else None
        try:
            rest, test = train_test_split(
                rows, test_size=self.test_fraction, random_state=self.seed, stratify=stratify
            )
            val_share = self.val_fraction / (1.0 - self.test_fraction)
            train, val = train_test_split(
                rest, test_size=val_share, random_state=self.seed, stratify=None if stratify is None else y[rest]
            )
        except ValueError as err:
            raise ConfigError(f"{self.name}: cannot split {len(y)} rows into train/val/test: "
                              f"{self.too_small_classes(y) or err}") from None
        return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}

    def too_small_classes(self, y: np.ndarray) -> str | None:
        """The classes too small for a stratified split, by their names (not their codes), or None."""
        if self.task != "classification" or self.classes is None:
            return None
        counts = np.bincount(y, minlength=len(self.classes))
        small = np.flatnonzero(counts <= max(2, counts.min()))
        shown = ", ".join(f"{_plain(self.classes[c])!r} ({counts[c]} row{'s' if counts[c] != 1 else ''})"
                          for c in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        return (f"classes with too few rows to stratify into train, val and test: {shown}{more}; each class "
                "needs at least 3 rows (drop or merge those rows)")

    @cached_property
    def arrays(self) -> Arrays:
        """The loaded data set, labels encoded to 0..C-1 for classification."""
        x, y = self.load_arrays()
        x = self.check_features(x, len(y))
        if self.task == "classification":
            self.classes, y = np.unique(y, return_inverse=True)
            return x, y.astype(np.int64)
        return x, np.asarray(y, dtype=np.float32)

    def check_features(self, x: Any, rows: int) -> Any:
        """The loaded features as float32 (rows, features), refused when NaN, inf or misshapen."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or len(x) != rows:
            raise ConfigError(f"{self.name}: features must be (rows, features) with one label per row")
        if not np.isfinite(x).all():
            raise ConfigError(f"{self.name}: features contain NaN or inf values")
        return x

    @property
    def num_features(self) -> int:
        """The model's input width: the features, or with fold_features one block of them per fold."""
        return int(self.arrays[0].shape[1]) * (self.folds if self.fold_features else 1)

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for regression."""
        if self.task == "regression":
            return 0
        return int(self.arrays[1].max()) + 1

    def fit_scaler(self, x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std from the training rows only (per feature, or one pair for pixel data)."""
        if self.per_feature_scaling:
            mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        else:
            mean, std = np.asarray(x_train.mean()), np.asarray(x_train.std())
        return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)

    def fit_features(self, train_rows: np.ndarray, x: Any = None) -> np.ndarray:
        """Fit this data set's preprocessing on `train_rows` of `x` only; return all rows of `x` transformed.

        `x` defaults to the whole data set (`arrays[0]`). Here the preprocessing is the standardisation
        (per feature or one pair, none with `standardize=False`); CSVDataModule fits its ColumnTransformer.
        Returns float32 (rows, width); setup() and the batched k-fold search both go through it.
        """
        x = self.arrays[0] if x is None else x
        self.scaler = self.fit_scaler(x[train_rows]) if self.standardize else None
        if self.scaler is None:
            return np.asarray(x, dtype=np.float32)
        return ((x - self.scaler[0]) / self.scaler[1]).astype(np.float32)

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        splits = self.load_splits()
        parts = [splits[split][0] for split in SPLITS]
        bounds = np.cumsum([0, *(len(part) for part in parts)])
        features = self.fit_split_features(np.arange(bounds[1]), concat_rows(parts))
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.standardize and self.task == "regression":
            self.fit_target_scaler(splits["train"][1])
        for i, split in enumerate(SPLITS):
            x, y = features[bounds[i] : bounds[i + 1]], splits[split][1]
            if self.target_scaler is not None:
                y = ((y - self.target_scaler[0]) / self.target_scaler[1]).astype(np.float32)
            self.tensors[split] = (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))

    def _loader(self, split: str, train: bool) -> TensorBatchLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        rows = len(self.tensors[split][1])
        if not train and 0 < rows < world:  # a rank without a row would miss DDP's first-batch buffer sync
            raise ConfigError(f"the {split} split has {rows} row{'s' if rows != 1 else ''}, fewer than the {world} "
                              f"processes (each needs one); use fewer devices or a larger {split}_fraction")
        return TensorBatchLoader(
            self.tensors[split],
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            seed=self.shuffle_seed,
            rank=rank,
            world_size=world,
            batches_per_step=self._batches_per_step(split) if train else 1,
            pad_shards=train,  # evaluation counts each row once: uneven shards, no repeated rows
        )

    def _batches_per_step(self, split: str) -> int:
        """0 (the default): a whole epoch per Lightning step when it has at most PROGRESS_STEPS minibatches; a
        bigger table in PROGRESS_STEPS chunks, so the progress bar moves (rows done, loss, time left) at a
        Lightning overhead of PROGRESS_STEPS steps an epoch (~10 ms)."""
        if self.batches_per_step > 0:
            return self.batches_per_step
        batches = max(1, -(-len(self.tensors[split][1]) // self.batch_size))
        return batches if batches <= PROGRESS_STEPS else -(-batches // PROGRESS_STEPS)

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorBatchLoader:
        self._check_not_empty("val", "validate")
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorBatchLoader:
        self._check_not_empty("test", "test")
        return self._loader("test", train=False)

    def predict_dataloader(self) -> TensorBatchLoader:
        self._check_not_empty(self.predict_split, "predict")
        return TensorBatchLoader(self.tensors[self.predict_split], self.eval_batch_size)

    def _check_not_empty(self, split: str, command: str) -> None:
        """validate/test/predict on a split without rows (fold=-1 has no val rows) stop in one line, not with 0 rows."""
        state = getattr(self.trainer, "state", None)  # None outside a Trainer (a loader built by hand)
        if getattr(state, "fn", None) == command and not len(self.tensors[split][1]):
            why = " (fold=-1 trains on the whole training portion)" if self.folds and self.fold == -1 else ""
            raise ConfigError(f"{command}: the {split} split has no rows{why}; use another split")

    def split_sizes(self) -> dict[str, int]:
        return {split: int(t[0].shape[0]) for split, t in self.tensors.items()}

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: class labels for predictions, and the identity a reader checks."""
        return {
            "classes": None if self.classes is None else self.classes.tolist(),
            "target_scaler": self.target_scaler,
            "identity": self.identity(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint's target scaler replaces the one fitted here (predictions come back in its units)."""
        if self.restore_target_scaler(state) and self.tensors:
            self.tensors = {}
            self.setup()

    def source(self) -> str | None:
        """The file the rows come from (`self.path`), named with a hash of its first line (the header)."""
        path = Path(str(getattr(self, "path", "")))
        if not getattr(self, "path", None) or not path.is_file():
            return None
        with path.open("rb") as file:
            header = file.readline().strip()
        return f"{path.name} header {hashlib.sha256(header).hexdigest()[:10]}"

    def feature_names(self) -> list[str] | None:
        return None

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records about this data (plain values): lit_basics.checkpoints compares it."""
        if self.classes is None and self.task == "classification":
            with contextlib.suppress(NotImplementedError):  # data sets with an official split set them later
                _ = self.arrays  # sets self.classes
        return {
            "dataset": self.name,
            "source": self.source(),
            "task": self.task,
            "num_features": int(self.num_features),
            "feature_names": self.feature_names(),
            "classes": None if self.classes is None else np.asarray(self.classes).tolist(),
            "split": self.split_settings(),
        }

    def split_settings(self) -> dict[str, Any] | None:
        """What decides the test rows and the rows preprocessing is fitted on (None: an official split)."""
        if type(self).load_splits is not ArrayDataModule.load_splits:
            return None
        return {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "standardize": self.standardize, "folds": self.folds, "fold": self.fold if self.folds else 0,
                **({"fold_features": True} if self.fold_features else {})}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: 7, not np.int64(7))."""
    return value.item() if isinstance(value, np.generic) else value


def take_rows(x: Any, rows: np.ndarray) -> Any:
    """Rows of an array or (for tables) a DataFrame, by position."""
    return x.iloc[rows] if hasattr(x, "iloc") else x[rows]


def concat_rows(parts: list[Any]) -> Any:
    """Stack the row blocks of arrays or DataFrames."""
    if parts and hasattr(parts[0], "iloc"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)
