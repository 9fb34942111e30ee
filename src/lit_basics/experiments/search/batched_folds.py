"""k-fold search fits on the batched engine: all folds of many configurations as one program.

Configurations are grouped by what must be equal inside one stacked network (depth, widths,
activation, loss, optimizer, batch size, epochs); each group trains folds x configurations
models at once, in chunks of at most `max_models`. Values that may differ per model (learning
rate, weight decay, L1, dropout, momentum) do not split groups. With `merge_groups` (the default
on a GPU) widths and batch sizes do not split groups either: narrower layers are zero-padded, and
a batch size that is a multiple of the group's smallest sums its gradient over several steps of
the smallest. That trades arithmetic for fewer steps; on a small CPU the arithmetic costs more
than the steps save (merging batch sizes 32 and 128 measured no gain for 32-wide networks on a
2-core CPU, and 9 % more time for 128-wide ones).
On a CPU the groups run in parallel worker processes, one per core (engine/parallel.py).
"""

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from lit_basics.engine.batched import ModelSpec
from lit_basics.engine.batched_fit import Stopping, fit_configurations
from lit_basics.engine.grouping import chunk_groups, group_members
from lit_basics.engine.hyperparameters import (
    SEARCHABLE_SETTINGS,
    check_base_settings,
    check_batched,
    model_spec_values,
)
from lit_basics.engine.parallel import default_workers, run_jobs
from lit_basics.errors import ConfigError
from lit_basics.experiments.runs import check_args
from lit_basics.experiments.search.folds import FoldResult, fold_args, fold_seed
from lit_basics.experiments.search.space import architecture_overrides
from lit_basics.models.losses import output_dim


class BatchedFolds:
    """Fits configurations given as `train.py` arguments; the base config is parsed only once."""

    def __init__(self, base_args: list[str], folds: int, seed: int = 0, patience: int = 10,
                 max_models: int = 256, merge_groups: bool | None = None, workers: int = 0, path: str = "auto",
                 keep_states: bool = False) -> None:
        self.folds, self.seed, self.patience, self.max_models = folds, seed, patience, max_models
        self.keep_states = keep_states  # FoldResult.state: each model at its best epoch (tune.py --ensemble)
        self.path = path  # the batched path: auto (fast where every layer has a kernel), fast or generic
        self.workers = workers  # processes for independent groups; 0: one per CPU core (1 on a GPU)
        self.merge_groups = torch.cuda.is_available() if merge_groups is None else merge_groups
        cli = check_args("batched engine", [*base_args, *fold_args(folds, 0, seed, patience)])
        datamodule, model = cli.datamodule, cli.model
        if model.hparams.task != "classification" or not hasattr(datamodule, "fold_indices"):
            raise ConfigError("--engine batched supports in-memory classification data; use --engine lightning")
        if str(cli.trainer.precision) not in ("32-true", "32"):
            raise ConfigError(f"--engine batched trains in 32-bit precision, not {cli.trainer.precision!r}; "
                              "use --engine lightning for other precisions")
        check_base_settings(cli.config)
        self.base = {**dict(model.hparams), "batch_size": datamodule.batch_size,
                     "max_epochs": cli.trainer.max_epochs}
        y = datamodule.arrays[1]
        if folds:
            self.folds_rows = datamodule.fold_indices(y)
        else:  # folds=0: one split, the data module's own train and val rows (tune.py --pack)
            rows = datamodule.split_rows(y)
            self.folds_rows, self.folds = [(rows["train"], rows["val"])], 1
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # Each fold's preprocessing is fitted on its own training rows, once. A CSV's one-hot width can differ
        # between folds (a category absent from one fold's training rows): its models start from weights
        # drawn for its own width (as LitFNN's), zero-padded; a zero column there adds nothing.
        features = [torch.as_tensor(datamodule.fit_features(train)) for train, _ in self.folds_rows]
        self.widths = [f.shape[1] for f in features]
        width = max(self.widths)
        self.x = torch.stack([torch.nn.functional.pad(f, (0, width - f.shape[1])) for f in features]).to(device)
        self.y = torch.as_tensor(y).to(device)
        self.num_classes = datamodule.num_classes
        self.task = model.hparams.task

    def settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """The base hyperparameters with one configuration's searched values."""
        out = dict(self.base)
        for key, value in architecture_overrides(params).items():
            if key.startswith("model."):
                out[key.removeprefix("model.")] = value
            elif key in SEARCHABLE_SETTINGS:
                out[SEARCHABLE_SETTINGS[key][0]] = value
            else:
                allowed = ", ".join(["model.*", *SEARCHABLE_SETTINGS])
                raise ConfigError(f"--engine batched cannot vary {key!r}; allowed: {allowed}; use --engine lightning")
        unknown = sorted(set(out) - set(self.base))
        if unknown:
            raise ConfigError(f"--engine batched: unknown model hyperparameter {unknown[0]!r}; "
                              f"allowed: {', '.join(sorted(self.base))}")
        check_batched(out, self.x.shape[-1], output_dim("classification", self.num_classes))
        return out

    def fit_many(self, configs: list[dict[str, Any]]) -> list[list[FoldResult]]:
        """Fold results for each configuration (given as searched parameters), in order."""
        settings = [self.settings(params) for params in configs]
        groups = group_members(settings, range(self.folds), self.merge_groups)
        workers = self.workers or default_workers()
        chunks = chunk_groups(groups, workers, self.max_models)
        results: list[list[FoldResult | None]] = [[None] * self.folds for _ in configs]
        costs = [self._cost(chunk, settings) for chunk in chunks]
        for i, fold_results in run_jobs(lambda i: self._fit_chunk(chunks[i], settings), costs, workers):
            for (c, f), result in zip(chunks[i], fold_results, strict=True):
                results[c][f] = result
        return results  # type: ignore[return-value]

    def _cost(self, members: list[tuple[int, int]], settings: list[dict[str, Any]]) -> float:
        """Rough seconds of a chunk, to start the longest first: per-step overhead plus multiply-adds."""
        s = settings[members[0][0]]
        rows = len(self.folds_rows[0][0])
        sizes = [self.x.shape[-1], *max((settings[c]["hidden_sizes"] for c, _ in members), key=sum), self.num_classes]
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        steps = math.ceil(rows / min(int(settings[c]["batch_size"]) for c, _ in members))
        return int(s["max_epochs"]) * (steps * 5e-4 + 3 * macs * rows * len(members) / 5e10)

    def _fit_chunk(self, members, settings) -> list[FoldResult]:
        specs = [
            ModelSpec(
                train_rows=torch.as_tensor(self.folds_rows[f][0]),
                val_rows=torch.as_tensor(self.folds_rows[f][1]),
                fold=f,
                seed=fold_seed(self.seed, f),
                input_dim=self.widths[f],
                **model_spec_values(settings[c]),
            )
            for c, f in members
        ]
        started = time.perf_counter()
        out = fit_configurations(self.x, self.y, specs, [settings[c] for c, _ in members], self.num_classes,
                                 Stopping(patience=self.patience, keep_best=self.keep_states), self.path)
        seconds = (time.perf_counter() - started) / len(members)
        return [FoldResult(fold=f, score=out.best_val_acc[i], val_loss=out.best_val_loss[i],
                           best_epoch=out.best_epoch[i], epochs=out.epochs[i], seconds=seconds,
                           history=out.history[i], diverged=out.diverged[i],
                           state=out.states[i] if self.keep_states else None)
                for i, (_, f) in enumerate(members)]

    def fit_folds(self, args: list[str], on_fold: Callable[[FoldResult], None], params: dict[str, Any] | None = None
                  ) -> list[FoldResult]:
        """FoldRunner interface: one configuration, its folds as one batched group."""
        if params is None:
            raise ConfigError("--engine batched needs the searched parameters of the trial")
        results = self.fit_many([params])[0]
        for result in results:
            on_fold(result)
        return results

