"""What a checkpoint records about its run, and the checks made when one is read back.

A checkpoint holds the model's hyperparameters (its architecture) and, in the DataModule's state,
the identity of the data it was trained on: data set name, source file and header hash for a CSV,
task, feature count and names, class labels. `test`, `predict`, `validate` and `fit --ckpt_path`
compare both with what the command line builds before anything runs.
"""

import hashlib
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from lit_basics.checkpoint_io import verify_digest
from lit_basics.errors import ConfigError

ARCHITECTURE_KEYS = ("task", "input_dim", "num_classes", "hidden_sizes", "activation", "norm", "residual", "net")
TRANSFER_HINT = "pass --allow_transfer=true to use it anyway"


def read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint as plain values (weights_only), with a one-line error for a bad file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise describe_checkpoint_error(path, err) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"checkpoint {path!r} is not a Lightning checkpoint (no state_dict)")
    verify_digest(path, checkpoint)
    return checkpoint


def describe_checkpoint_error(path: str, err: BaseException) -> ConfigError:
    """A checkpoint that is missing, unreadable, unsafe or made for another architecture, in one short line."""
    text = str(err)
    if isinstance(err, FileNotFoundError) or not Path(path).exists():
        return ConfigError(f"checkpoint {path!r} does not exist")
    if Path(path).is_dir():
        return ConfigError(f"checkpoint {path!r} is a directory, not a .ckpt file")
    if "size mismatch" in text or "state_dict" in text:
        shapes = r"size mismatch for ([^:]+): .*?shape (torch.Size\(\[[^\]]*\]\)).*? is (torch.Size\(\[[^\]]*\]\))"
        mismatch = re.search(shapes, text)
        detail = (f"{mismatch.group(1)} is {mismatch.group(2)} there but {mismatch.group(3)} here"
                  if mismatch else "its weights do not fit this model")
        return ConfigError(f"checkpoint {path!r} is for another architecture: {detail}")
    if "Unsupported global" in text:  # a pickled object; "Unsupported operand" is bytes that are no pickle
        return ConfigError(f"checkpoint {path!r} holds objects other than tensors and plain values; "
                           "it was not written by lit-basics and is refused (loading it could run code)")
    if isinstance(err, PermissionError):
        return ConfigError(f"checkpoint {path!r} cannot be read (permission denied)")
    return ConfigError(f"checkpoint {path!r} is truncated or corrupt ({type(err).__name__}); "
                       "use another checkpoint of the run or retrain")


def data_identity(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The data identity a checkpoint's DataModule state recorded (None: an older checkpoint)."""
    hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    key = str(hparams.get("_class_path", "")).rsplit(".", 1)[-1]
    states = [checkpoint[key]] if isinstance(checkpoint.get(key), dict) else [
        v for v in checkpoint.values() if isinstance(v, dict) and "identity" in v]
    return next((state["identity"] for state in states if isinstance(state.get("identity"), dict)), None)


def describe_data(identity: dict[str, Any]) -> str:
    """`iris (classification, 4 features, classes 0, 1, 2)`: how a message names a data set."""
    name = identity.get("dataset", "?")
    if identity.get("source"):
        name += f" file {identity['source']}"
    parts = [str(identity.get("task")), f"{identity.get('num_features')} features"]
    classes = identity.get("classes")
    if classes:
        shown = ", ".join(str(c) for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
        parts.append(f"classes {shown}")
    return f"{name} ({'; '.join(parts)})"


def data_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the identity fields that differ; a field unknown on either side is not compared."""
    keys = ("dataset", "source", "task", "num_features", "feature_names", "classes", "split")
    return [k for k in keys if saved.get(k) is not None and current.get(k) is not None and saved[k] != current[k]]


def architecture_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`hidden_sizes=[16, 16] there, [32] here` for each architecture hyperparameter that differs."""
    out = []
    for key in ARCHITECTURE_KEYS:
        there, here = saved.get(key), current.get(key)
        if key == "hidden_sizes":
            there, here = (list(v) if v is not None else None for v in (there, here))
        if key == "num_classes" and "regression" in (saved.get("task"), current.get("task")):
            continue
        if there is not None and here is not None and there != here:
            out.append(f"{key}={there} there, {here} here")
    return out


def check_run_identity(path: str, checkpoint: dict[str, Any], datamodule: Any, hparams: dict[str, Any],
                       allow_transfer: bool) -> list[str]:
    """Stop unless the checkpoint was trained on this data with this architecture.

    With `allow_transfer` the differences are returned (to be printed) instead; weights whose
    shapes do not fit are still refused when Lightning loads them.
    """
    current = datamodule.identity() if hasattr(datamodule, "identity") else None
    saved = data_identity(checkpoint)
    notes = []
    if current is not None and saved is None:
        notes.append(f"checkpoint {path!r} records no data identity (written by an older lit-basics); "
                     f"retrain, or {TRANSFER_HINT}")
    elif current is not None and data_differences(saved, current) == ["split"]:
        there, here = saved["split"], current["split"]
        changed = ", ".join(f"{k}={there[k]} there, {here.get(k)} here" for k in there if there[k] != here.get(k))
        notes.append(f"checkpoint {path!r} was trained on another split of {saved.get('dataset')} ({changed}): "
                     "its test rows could include rows it trained on; pass the run's --data settings")
    elif current is not None and data_differences(saved, current):
        notes.append(f"checkpoint {path!r} was trained on {describe_data(saved)}; "
                     f"this run's data is {describe_data(current)}")
    arch = architecture_differences(checkpoint.get("hyper_parameters") or {}, hparams)
    if arch:
        notes.append(f"checkpoint {path!r} has another architecture: {'; '.join(arch)}")
    if notes and not allow_transfer:
        hint = "" if "older lit-basics" in notes[0] else f"; {TRANSFER_HINT}"
        raise ConfigError(notes[0] + hint)
    return notes


ROWS_KEY = "lit_basics_data_rows"  # {split: sha256 of its rows}, from the DataModule's content_digest()


def rows_digest(*parts: Any) -> str:
    """sha256 over arrays or data frames of rows (values and dtypes, not the file's formatting)."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            digest.update(",".join(f"{c}:{t}" for c, t in part.dtypes.items()).encode())
            digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        else:
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def check_data_rows(path: str, checkpoint: dict[str, Any], datamodule: Any, subcommand: str) -> str | None:
    """The rows of each split must be the ones the checkpoint was trained on (refused, or a note for predict)."""
    saved = checkpoint.get(ROWS_KEY)
    if not isinstance(saved, dict) or not hasattr(datamodule, "content_digest"):
        return None
    current = datamodule.content_digest()
    state = checkpoint.get(type(datamodule).__qualname__)  # Lightning keeps the DataModule's state_dict there
    if isinstance(state, dict) and hasattr(datamodule, "check_saved_state") and subcommand != "predict":
        datamodule.check_saved_state(state)  # other columns or label: named before "other rows"
    changed = [split for split in saved if current.get(split) != saved[split]]
    if not changed:
        return None
    source = getattr(datamodule, "path", "the data file")
    message = (f"checkpoint {path!r} was trained on other rows of {str(source)!r}: its {', '.join(changed)} rows "
               "differ (the file changed since)")
    if subcommand == "predict":
        return message
    raise ConfigError(f"{message}; its test rows could include rows it trained on: retrain on this file, "
                      "or use the file it was trained on")


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Training epochs the checkpointed run completed."""
    history = (checkpoint.get("lit_basics") or {}).get("history")
    if history is not None:
        return len(history)
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", checkpoint.get("epoch", 0)))


def check_resume(path: str, checkpoint: dict[str, Any], max_epochs: int | None) -> None:
    """`fit --ckpt_path` of a run that already reached `max_epochs`: one line saying how to extend it."""
    done = epochs_done(checkpoint)
    if max_epochs is not None and max_epochs != -1 and done >= max_epochs:
        raise ConfigError(f"checkpoint {path!r} already finished at epoch {done} (max_epochs={max_epochs}); "
                          f"to train on, pass --trainer.max_epochs larger than {done}")


def newest_best_checkpoint(save_dir: str | None, name: str | None) -> Path | None:
    """The newest `<save_dir>/<name>/*/checkpoints/best.ckpt`, if any."""
    if not save_dir or not name:
        return None
    found = sorted(Path(save_dir, name).glob("*/checkpoints/best.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def is_checkpoint_error(err: BaseException) -> bool:
    """Errors of reading or restoring a checkpoint, as opposed to errors of the training it resumes."""
    if isinstance(err, ConfigError) or not isinstance(err, Exception):
        return False
    if isinstance(err, FileNotFoundError | EOFError | pickle.UnpicklingError | OSError):
        return True
    text = str(err)
    return any(s in text for s in ("state_dict", "size mismatch", "PytorchStreamReader", "zip archive", "Weights only"))


def check_finite(metrics: dict[str, float], subcommand: str, checkpoint: Any) -> None:
    """A test or validate run whose loss or metrics are NaN or infinite did not measure anything: exit non-zero."""
    bad = [f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{subcommand} of checkpoint {str(checkpoint)!r} gave non-finite results ({', '.join(bad)}): "
                          "its weights are NaN or infinite, or the data holds values the model cannot score")
