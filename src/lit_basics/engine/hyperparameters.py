"""How the batched engine treats each LitFNN hyperparameter: per model, shared by a group, or refused.

Every argument of `LitFNN.__init__` has a row here (a test checks it), so a new hyperparameter is
classified before any search can use it: never silently ignored by one engine.
- per model: may differ between the models of one stacked group (a value per row of the stack);
- shared by a group: models that differ in it train in separate groups;
- mergeable: shared unless the search merges groups (widths are zero-padded, batch sizes summed);
- from the data: linked from the DataModule, the same for every model of a search.
What the engine cannot train (an activation without a derivative from its output, an optimizer
without a batched update, a trainer or data setting it would not apply) is refused by `check_batched`
and `check_base_settings` before anything is written; tune.py's batched search also refuses
regression (its fold score is an accuracy).
"""

from typing import Any

from lit_basics.errors import ConfigError
from lit_basics.models.activations import batched_activation
from lit_basics.models.optimizers import batched_optimizer

PER_MODEL = "per model"
SHARED = "shared by a group"
MERGEABLE = "mergeable"
FROM_DATA = "from the data"

LITFNN_HYPERPARAMETERS: dict[str, str] = {
    "input_dim": FROM_DATA,
    "num_classes": FROM_DATA,
    "task": FROM_DATA,
    "hidden_sizes": MERGEABLE,  # the depth is shared; narrower layers are padded when merging
    "activation": SHARED,
    "leaky_relu_alpha": SHARED,
    "dropout": PER_MODEL,
    "loss": SHARED,
    "optimizer": SHARED,
    "lr": PER_MODEL,
    "momentum": PER_MODEL,
    "weight_decay": PER_MODEL,
    "l1": PER_MODEL,
    "optimizer_kwargs": PER_MODEL,
    "scheduler": SHARED,
    "scheduler_kwargs": SHARED,
    "gradient_clip_val": PER_MODEL,
    "init": SHARED,
}
# the data and trainer settings a search may vary, besides model.*
SEARCHABLE_SETTINGS = {"data.init_args.batch_size": ("batch_size", MERGEABLE),
                       "trainer.max_epochs": ("max_epochs", SHARED)}


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


def names(kind: str) -> tuple[str, ...]:
    """The hyperparameters (and searchable settings) of one kind, e.g. names(PER_MODEL)."""
    settings = [name for name, k in SEARCHABLE_SETTINGS.values() if k == kind]
    return (*(name for name, k in LITFNN_HYPERPARAMETERS.items() if k == kind), *settings)


def check_batched(settings: dict[str, Any]) -> None:
    """Refuse, with one line, a configuration the batched engine cannot train as LitFNN would."""
    if not int(settings["max_epochs"]) >= 1:
        raise ConfigError(f"the batched engine trains a fixed number of epochs: max_epochs={settings['max_epochs']} "
                          "must be >= 1")
    batched_activation(settings["activation"])
    batched_optimizer(settings["optimizer"]).hyperparameters(settings["momentum"], settings["optimizer_kwargs"])


def model_spec_values(settings: dict[str, Any]) -> dict[str, Any]:
    """The per-model values of one configuration, as ModelSpec's fields."""
    return {"lr": float(settings["lr"]), "weight_decay": float(settings["weight_decay"]), "l1": float(settings["l1"]),
            "dropout": float(settings["dropout"]), "momentum": float(settings["momentum"]),
            "grad_clip": float(settings["gradient_clip_val"]),
            "optimizer_kwargs": dict(settings["optimizer_kwargs"] or {})}
