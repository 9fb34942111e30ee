"""Dropout masks of a batched group: each model draws its own from its own seed, whatever path trains it."""

import torch

DROPOUT_STREAM = 0x5DEECE66D  # added to a model's seed for its dropout generator: a stream apart from its init


class DropoutMasks:
    """Per model and dropout site (in forward order): drop probability, width, and the model's generator.

    A model's masks do not depend on the group it trains in (its neighbours, padding, the path, or the
    steps its batch is split into): at the start of each of its batches it draws, from its own generator,
    every site's mask for that batch's real rows and its own units; steps take their rows from them.
    """

    def __init__(self, p: list[list[float]], widths: list[list[int]], device: torch.device) -> None:
        self.p, self.widths, self.device = p, widths, device  # (models, sites)
        self.generators: list[torch.Generator | None] = [None] * len(p)
        self._masks: list[list[torch.Tensor]] = [[] for _ in p]  # each model's current batch, per site

    @property
    def dropping(self) -> bool:
        return any(q > 0 for sites in self.p for q in sites)

    def seed(self, seeds: list[int]) -> None:
        """One generator per model that drops units, seeded from the model's own seed."""
        self.generators = [torch.Generator(device=self.device).manual_seed((seed + DROPOUT_STREAM) % 2**63)
                           if any(q > 0 for q in p) else None for seed, p in zip(seeds, self.p, strict=True)]

    def keep(self, rows: list[int]) -> None:
        self.p = [self.p[i] for i in rows]
        self.widths = [self.widths[i] for i in rows]
        self.generators = [self.generators[i] for i in rows]
        self._masks = [self._masks[i] for i in rows]

    def scale(self, site: int, shape: torch.Size, rows: list[tuple[int, int, int]] | None) -> torch.Tensor:
        """(M, batch, width) inverted-dropout factors at `site`: kept units 1 / (1 - p), dropped ones 0, as nn.Dropout.

        `rows`: per model (offset of this step in its batch, real rows in this step, real rows in its batch);
        None: each model's batch is this step.
        """
        scale = torch.ones(shape, device=self.device)
        for i, generator in enumerate(self.generators):
            offset, n, batch = (0, shape[1], shape[1]) if rows is None else rows[i]
            if generator is None or n == 0:
                continue
            if site == 0 and offset == 0:
                self._masks[i] = [torch.rand((batch, width), device=self.device, generator=generator) >= p
                                  if p > 0 else None for p, width in zip(self.p[i], self.widths[i], strict=True)]
            kept, p = self._masks[i][site], self.p[i][site]
            if kept is not None:
                kept = kept[offset : offset + n]
                scale[i, :n, : kept.shape[1]] = kept / (1.0 - p)
        return scale


class DropoutSites:
    """What both batched paths expose of their DropoutMasks (`self.masks`)."""

    masks: DropoutMasks

    @property
    def dropping(self) -> bool:
        return self.masks.dropping

    def seed_dropout(self, seeds: list[int]) -> None:
        """One dropout generator per model that drops units, seeded from the model's own seed."""
        self.masks.seed(seeds)
