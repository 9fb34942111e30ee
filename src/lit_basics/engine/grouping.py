"""Which configurations x folds can train as one batched group: the rule tune.py and FNNSearchCV share.

A configuration is a dict of LitFNN-named settings (every LitFNN hyperparameter, batch_size and
max_epochs), classified in engine/hyperparameters.py. Models in one group must
agree on SHARED; PER_MODEL values may differ model by model. MERGEABLE ones split groups unless
`merge_groups`: then narrower layers are zero-padded and batch sizes that are multiples of a
group's smallest share it (see engine/batched_fit.py).
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from lit_basics.engine import hyperparameters
from lit_basics.engine.batched import fast_path
from lit_basics.models import hparams

PER_MODEL = hyperparameters.names(hyperparameters.PER_MODEL)
SHARED = ("depth", *hyperparameters.names(hyperparameters.SHARED))  # a padded group still shares its depth
MERGEABLE = hyperparameters.names(hyperparameters.MERGEABLE)  # split groups unless merge_groups

Member = tuple[int, int]  # (configuration, fold)


def group_members(settings: Sequence[dict[str, Any]], folds: Iterable[int], merge_groups: bool,
                  shared: Sequence[str] = SHARED) -> dict[tuple, list[Member]]:
    """(configuration, fold) pairs grouped by what a stacked network must share; `folds` are fold ids."""
    folds = list(folds)
    keys = tuple(shared) + (() if merge_groups else MERGEABLE)
    groups: dict[tuple, list[Member]] = defaultdict(list)
    for c, s in enumerate(settings):
        # the fast path pads narrower layers; the generic path stacks modules of one shape only
        arch = hparams.split(s)[0]
        values = {**s, "depth": len(s["hidden_sizes"]) if fast_path(arch) else list(s["hidden_sizes"])}
        if arch.norm == "batch" or arch.net is not None:  # BatchNorm's statistics are per batch: never summed
            values["depth"] = (values["depth"], int(s["batch_size"]))
        groups[tuple(str(values[k]) for k in keys)] += [(c, f) for f in folds]
    if not merge_groups:
        return dict(groups)
    return {(key, smallest): members for key, by_key in groups.items()
            for smallest, members in by_batch_size(by_key, settings).items()}


def by_batch_size(members: list[Member], settings: Sequence[dict[str, Any]]) -> dict[int, list[Member]]:
    """Split (config, fold) members into sets whose batch sizes are multiples of the set's smallest, keyed by it."""
    out: dict[int, list[Member]] = {}
    for c, f in sorted(members, key=lambda m: int(settings[m[0]]["batch_size"])):
        size = int(settings[c]["batch_size"])
        smallest = next((s for s in out if size % s == 0), size)
        out.setdefault(smallest, []).append((c, f))
    return out


def chunk_groups(groups: dict[tuple, list[Member]], workers: int, max_models: int) -> list[list[Member]]:
    """Enough chunks to keep every worker busy, none over `max_models` models."""
    chunks = []
    for members in groups.values():
        size = min(max_models, math.ceil(len(members) / max(1, math.ceil(workers / len(groups)))))
        chunks += [members[start : start + size] for start in range(0, len(members), size)]
    return chunks
