"""Checkpoints written atomically beside their final name and verified when read back.

`AtomicCheckpointIO` (configs/trainer/default.yaml's `trainer.plugins`) replaces Lightning's default
writer, which writes a temporary file under $TMPDIR and copies it into logs/ (a kill during the copy
across filesystems left a 0-byte `last.ckpt`). Each checkpoint records a sha256 of its
contents (weights, optimizer state, fitted preprocessing); reading one whose tensors changed (torch
does not check the zip's CRC) is refused in one line.
"""

import hashlib
import io
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lit_basics.atomic_files import atomic_write_bytes
from lit_basics.errors import ConfigError

DIGEST_KEY = "lit_basics_digest"


def tensors_digest(checkpoint: dict[str, Any]) -> str:
    """sha256 over the whole checkpoint but its digest: each tensor's place, dtype, shape and bytes, each
    plain value's repr (weights, optimizer state and the DataModule's fitted preprocessing alike)."""
    digest = hashlib.sha256()
    _update(digest, "", {k: v for k, v in checkpoint.items() if k != DIGEST_KEY})
    return digest.hexdigest()


def _update(digest: Any, where: str, value: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            _update(digest, f"{where}.{key}", value[key])
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _update(digest, f"{where}.{i}", item)
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{where}:{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(f"{where}={value!r}".encode())


def stamp_digest(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Record the tensors' digest in the checkpoint (in place) and return it."""
    checkpoint[DIGEST_KEY] = {"tensors_sha256": tensors_digest(checkpoint)}
    return checkpoint


def verify_digest(path: str, checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint whose tensors are not the ones it recorded (one without a digest passes: older)."""
    recorded = (checkpoint.get(DIGEST_KEY) or {}).get("tensors_sha256")
    if recorded is not None and tensors_digest(checkpoint) != recorded:
        raise ConfigError(f"checkpoint {str(path)!r} is corrupt: its tensors do not match the digest it recorded "
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
