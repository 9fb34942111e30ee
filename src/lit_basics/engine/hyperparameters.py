"""How the batched engine treats each LitFNN hyperparameter: per model, shared by a group, or refused.

The kinds are declared with the fields themselves (models/hparams.py); this module reads them and adds
what the engine refuses. Every argument of `LitFNN.__init__` has a kind (a test checks it), so a new
hyperparameter is classified before any search can use it: never silently ignored by one engine.
- per model: may differ between the models of one stacked group (a value per row of the stack);
- shared by a group: models that differ in it train in separate groups;
- mergeable: shared unless the search merges groups (widths are zero-padded, batch sizes summed);
- from the data: linked from the DataModule, the same for every model of a search.
Every architecture trains: plain MLPs on the fast path's kernels, the rest (norm, residual, gelu, an
injected net) on the generic path (engine/generic.py). What the engine cannot train (an optimizer without a
batched update, a trainer or data setting it would not apply, a module vmap cannot batch) is refused by
`check_batched` and `check_base_settings` before anything is written.
"""

from typing import Any

from lit_basics.engine.kernels import optimizer_update
from lit_basics.errors import ConfigError
from lit_basics.models import hparams
from lit_basics.models.optimizers import get_optimizer

PER_MODEL, SHARED, MERGEABLE, FROM_DATA = hparams.PER_MODEL, hparams.SHARED, hparams.MERGEABLE, hparams.FROM_DATA
LITFNN_HYPERPARAMETERS: dict[str, str] = hparams.kinds()
SEARCHABLE_SETTINGS = hparams.TRAINING_SETTINGS


# Trainer and data settings whose effect the batched engine does not reproduce: any value but these is refused.
UNSUPPORTED_SETTINGS: dict[str, tuple[Any, ...]] = {
    "trainer.min_epochs": (None, 0),
    "trainer.max_steps": (-1, None),
    "trainer.max_time": (None,),
    "trainer.check_val_every_n_epoch": (1, None),
    "trainer.val_check_interval": (None, 1.0),
    "trainer.accumulate_grad_batches": (1,),
    "trainer.gradient_clip_val": (None, 0, 0.0),  # model.gradient_clip_val is the supported one
    "trainer.limit_train_batches": (None, 1.0),
    "trainer.limit_val_batches": (None, 1.0),
    "trainer.overfit_batches": (0, 0.0),
    "data.init_args.drop_last": (False, None),
}


def check_base_settings(config: Any) -> None:
    """Refuse, with one line, a trainer or data setting (parsed config) the batched engine would not apply."""
    for key, allowed in UNSUPPORTED_SETTINGS.items():
        value = config
        for part in key.split("."):
            value = value.get(part) if value is not None else None
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed if a is not None)
            raise ConfigError(f"the batched engine does not apply {key}={value!r} (allowed: {shown}); "
                              "use --engine lightning")


names = hparams.names


def check_batched(settings: dict[str, Any], input_dim: int = 0, output_dim: int = 0) -> None:
    """Refuse, with one line, a configuration the batched engine cannot train as LitFNN would; with the
    widths, also a network vmap cannot batch (built once and probed, before anything is written)."""
    if not int(settings["max_epochs"]) >= 1:
        raise ConfigError(f"the batched engine trains a fixed number of epochs: max_epochs={settings['max_epochs']} "
                          "must be >= 1")
    arch, optimization, _ = hparams.split(settings)
    optimizer_update(optimization.optimizer)
    get_optimizer(optimization.optimizer).hyperparameters(optimization.momentum, optimization.optimizer_kwargs)
    if input_dim and output_dim:
        from lit_basics.engine.batched import fast_path
        from lit_basics.engine.generic import check_batchable
        from lit_basics.models.fnn import build_network

        if not fast_path(arch):
            check_batchable(build_network(arch, input_dim, output_dim), input_dim)


model_spec_values = hparams.per_model_values
