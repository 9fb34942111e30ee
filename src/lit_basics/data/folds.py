"""k-fold cross-validation over a data module's training portion, and the fold blocks of a fold ensemble.

A mixin of ArrayDataModule: `split_rows` turns its train/val/test split into fold `fold` of `folds`
(fold -1: the whole training portion, a refit), `fold_indices` gives every fold's rows (scikit-learn's
StratifiedKFold, or KFold for regression), and with `fold_features` each row is given as every fold's
preprocessing gives it, side by side (`tune.py --ensemble`: each member reads its fold's block).
"""

from typing import Any

import numpy as np

from lit_basics.errors import ConfigError


class KFoldSplits:
    """Needs `split_indices`, `fit_features`, `arrays`, `task`, `seed`, `folds`, `fold`, `fold_features`."""

    folds: int
    fold: int
    fold_features: bool
    block_widths: list[int]

    def split_rows(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """The row indices `make_splits` uses: the train/val/test split, or fold `fold` of its training portion."""
        idx = self.split_indices(y)
        if not self.folds:
            return idx
        portion = _portion(idx)
        folds = self.fold_indices(y, portion)  # also checks k against the smallest class
        if self.fold == -1:
            return {"train": portion, "val": portion[:0], "test": idx["test"]}
        return {"train": folds[self.fold][0], "val": folds[self.fold][1], "test": idx["test"]}

    def training_portion(self, y: np.ndarray) -> np.ndarray:
        """The train and val rows together (all but the test rows): what k-fold CV splits."""
        return _portion(self.split_indices(y))

    def fold_indices(self, y: np.ndarray, portion: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, val rows) of each fold over the training portion; test rows never appear."""
        from sklearn.model_selection import KFold, StratifiedKFold

        portion = self.training_portion(y) if portion is None else portion
        if self.task == "classification":
            smallest = int(np.bincount(y[portion]).min())
            if self.folds > smallest:
                raise ConfigError(
                    f"folds={self.folds} is larger than the smallest class of the training portion "
                    f"({smallest} rows); use folds <= {smallest}"
                )
            splitter = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        else:
            if self.folds > len(portion):
                raise ConfigError(f"folds={self.folds} is larger than the training portion ({len(portion)} rows)")
            splitter = KFold(self.folds, shuffle=True, random_state=self.seed)
        return [(portion[tr], portion[va]) for tr, va in splitter.split(portion, y[portion])]

    # --- shared machinery ---------------------------------------------------------------------

    def fit_split_features(self, train_rows: np.ndarray, x: Any = None) -> np.ndarray:
        """fit_features on the training split's rows `train_rows` of `x`; with fold_features, each fold's
        preprocessing (fitted on that fold's training rows only, as the k-fold search fitted it) side by side."""
        parts = [train_rows[p] for p in self.fold_positions()] if self.fold_features else [train_rows]
        blocks = [self.fit_features(rows, x) for rows in parts]
        self.block_widths = [block.shape[1] for block in blocks]  # a fold ensemble's members read these blocks
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    def fold_positions(self, part: int = 0) -> list[np.ndarray]:
        """Positions within the training split (fold=-1: the whole training portion) of each fold's
        training rows (part 0) or held-out rows (part 1)."""
        y = self.arrays[1]
        train = self.split_rows(y)["train"]
        order = np.argsort(train, kind="stable")
        positions = []
        for rows in self.fold_indices(y):
            found = order[np.searchsorted(train, rows[part], sorter=order)]
            if not np.array_equal(train[found], rows[part]):
                raise ConfigError(f"{self.name}: fold rows outside the training split (fold_features needs fold=-1)")
            positions.append(found)
        return positions


def _portion(idx: dict[str, np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate([idx["train"], idx["val"]]))
