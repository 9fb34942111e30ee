"""Output folders: names that stay inside logs/ or reports/, and folders that can be written."""

import os
from pathlib import Path

from lit_basics.errors import ConfigError


def check_name(name: str, what: str) -> str:
    """A run, experiment or search name used as a sub-folder: relative, with no `..` and no empty parts."""
    parts = Path(name).parts
    if not name.strip() or Path(name).is_absolute() or ".." in parts or name.startswith("~"):
        raise ConfigError(f"{what} {name!r} would write outside its output folder; use a plain name such as 'run_1'")
    return name


def check_writable_dir(folder: str | Path, what: str) -> Path:
    """`folder` is a directory this process can write, or can be created: else one line saying why not."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a file, not a folder; move it away or choose another folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {str(path)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {str(path)!r} is not writable (permission denied on {str(existing)!r})")
    return path
