"""Batches as index slices of tensors already in memory: no Dataset, no collate, no workers."""

import math
from collections.abc import Iterator, Sequence

import torch

from lit_basics.errors import ConfigError


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of n rows in one epoch: a permutation seeded by seed + epoch, the same wherever it is drawn."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


class TensorBatchLoader:
    """Yield tuples of row slices of `tensors`, one seeded permutation per epoch when shuffling.

    Lightning calls `loader.sampler.set_epoch(epoch)` before each epoch, so the order depends only on
    (seed, epoch) and a resumed run sees the same batches as an uninterrupted one. With
    `world_size > 1` (DDP) each rank takes every `world_size`-th index of the same permutation. Training
    shards are padded with repeated rows so all ranks run the same number of steps (their gradients
    are averaged in lockstep), as torch's DistributedSampler does; evaluation shards (`pad_shards=False`)
    are not, so every row counts once, as Lightning's UnrepeatedDistributedSampler does: ranks may then
    differ by one row and one batch, which evaluation allows (no gradient sync; DDP syncs buffers on
    the first batch only, so each rank needs a row: ArrayDataModule refuses fewer rows than ranks).

    With `batches_per_step > 1` each item is a chunk `(x, y, batch_size)` of that many consecutive
    minibatches of the same permutation; LitFNN splits it and takes one optimizer step per
    minibatch, so results are identical while Lightning's per-step overhead is paid once per chunk.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batches_per_step: int = 1,
        pad_shards: bool = True,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size={batch_size} must be >= 1")
        if batches_per_step <= 0:
            raise ConfigError(f"batches_per_step={batches_per_step} must be >= 1")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("all tensors must have the same number of rows")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_step = batches_per_step
        self.pad_shards = pad_shards
        self.epoch = 0
        self.sampler = self  # where Lightning looks for set_epoch
        self.batch_sampler = None

    @property
    def num_rows(self) -> int:
        """Rows this rank sees per epoch (padded: the same on every rank)."""
        n = self.tensors[0].shape[0]
        if self.pad_shards:
            return math.ceil(n / self.world_size)
        return len(range(self.rank, n, self.world_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_batches(self) -> int:
        """Minibatches (optimizer steps) per epoch."""
        if self.drop_last:
            return self.num_rows // self.batch_size
        return math.ceil(self.num_rows / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.batches_per_step)

    def _indices(self) -> torch.Tensor | None:
        n = self.tensors[0].shape[0]
        if not self.shuffle and self.world_size == 1:
            return None  # contiguous slices: views, no copies
        order = epoch_permutation(n, self.seed, self.epoch) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            padded = math.ceil(n / self.world_size) * self.world_size if self.pad_shards else n
            order = torch.cat([order, order[: padded - n]])[self.rank :: self.world_size]
        return order.to(self.tensors[0].device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self._indices()
        self.epoch += 1
        stop = self.num_batches * self.batch_size if self.drop_last else self.num_rows
        rows = self.batch_size * self.batches_per_step
        for start in range(0, stop, rows):
            end = min(start + rows, stop)
            if order is None:
                batch = tuple(t[start:end] for t in self.tensors)
            else:
                idx = order[start:end]
                batch = tuple(t.index_select(0, idx) for t in self.tensors)
            yield batch if self.batches_per_step == 1 else (*batch, self.batch_size)
