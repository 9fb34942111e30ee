"""TensorBoard's HPARAMS tab: each run records its hyperparameters as a session, never as the experiment.

The hparams plugin takes its columns from the first run it finds with an experiment summary
(`_hparams_/experiment`, which torch's `add_hparams` and Lightning's `log_hyperparams` write into every run),
so when runs of several data sets share logs/ the options of all but one data set had no column (a CSV's
`data/path` and `data/label_column` vanished next to an iris run). Without an experiment summary the plugin
builds the columns from every run's session summary: the union of all runs' hyperparameters, and the
scalars they logged as metrics.
"""

from collections.abc import Mapping
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


def plain_hparams(params: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested settings flattened to `a/b` keys (as Lightning's loggers name them), values TensorBoard can show."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= plain_hparams(value, f"{name}/")
        else:
            flat[name] = value if isinstance(value, bool | int | float | str) else str(value)
    return flat


def write_session(writer: SummaryWriter, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Record `params` as this run's hparams session, and `metrics` as its values (scalars at step 0)."""
    _, start, end = hparams(plain_hparams(params), dict(metrics))  # the experiment summary is left out
    writer.file_writer.add_summary(start)
    writer.file_writer.add_summary(end)
    for key, value in metrics.items():
        writer.add_scalar(key, value, 0)
