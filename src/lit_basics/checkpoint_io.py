"""Checkpoints written atomically beside their final name and verified when read back.

`AtomicCheckpointIO` (configs/trainer/default.yaml's `trainer.plugins`) replaces Lightning's default
writer, which writes a temporary file under $TMPDIR and copies it into logs/ (a kill during the copy
across filesystems left a 0-byte `last.ckpt`). Each checkpoint records a sha256 of its state_dict's
tensors; reading one whose weights changed (torch does not check the zip's CRC) is refused in one line.
"""

import hashlib
import io
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lit_basics.atomic_files import atomic_write_bytes
from lit_basics.errors import ConfigError

DIGEST_KEY = "lit_basics_digest"


def state_digest(state_dict: dict[str, Any]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def stamp_digest(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Record the state_dict's digest in the checkpoint (in place) and return it."""
    if isinstance(checkpoint.get("state_dict"), dict):
        checkpoint[DIGEST_KEY] = {"state_dict_sha256": state_digest(checkpoint["state_dict"])}
    return checkpoint


def verify_digest(path: str, checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights are not the ones it recorded (one without a digest passes: older)."""
    recorded = (checkpoint.get(DIGEST_KEY) or {}).get("state_dict_sha256")
    if recorded is None or not isinstance(checkpoint.get("state_dict"), dict):
        return
    if state_digest(checkpoint["state_dict"]) != recorded:
        raise ConfigError(f"checkpoint {str(path)!r} is corrupt: its weights do not match the digest it recorded "
                          "when it was written; use another checkpoint of the run or retrain")


def save_checkpoint_file(checkpoint: dict[str, Any], path: str) -> None:
    """Stamp the digest, serialise in memory, write atomically beside `path`."""
    buffer = io.BytesIO()
    torch.save(stamp_digest(checkpoint), buffer)
    atomic_write_bytes(path, buffer.getvalue())


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose saves are atomic in the checkpoint's own folder and whose loads are verified."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_checkpoint_file(checkpoint, str(path))

    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        verify_digest(str(path), checkpoint)
        return checkpoint
