"""Files written whole or not at all: a temporary file beside the target, fsynced, then renamed over it.

The temporary file lives in the target's own folder (`temporary_path`), so the final `os.replace` never
crosses filesystems and a kill at any moment leaves either the old file or the new one. On a failure
(full disk, permission, a file where the folder should be) the temporary file is removed, the old
file stays, and `WriteFailed` names the path and the cause in one line.
"""

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lit_basics.errors import ConfigError


class WriteFailed(ConfigError):
    """An artefact could not be written; the previous file under its name, if any, is unchanged."""


def temporary_path(path: str | Path) -> Path:
    """Where `path` is written first: `.<name>.<pid>.tmp` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_chunk(handle: IO[bytes], data: bytes) -> None:
    """The one place bytes reach the disk (tests patch it to simulate a full disk)."""
    handle.write(data)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see the module's docstring)."""
    return atomic_write(path, lambda handle: write_chunk(handle, data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, fsync it, and rename it over `path`."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        make_folder(path.parent)
        remove_orphans(path)
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise WriteFailed(f"cannot write {str(path)!r}: {describe_os_error(err)}; "
                              "the previous file, if any, is unchanged") from None
        raise
    return path


def make_folder(folder: Path) -> None:
    """`mkdir -p`, with one line when a file stands where a folder of the path should be."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise WriteFailed(f"cannot write into {str(folder)!r}: {str(part)!r} is a file, not a folder; "
                              "move it away or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)


def remove_orphans(path: Path) -> None:
    """Temporary files in `path`'s folder left by processes that were killed while writing."""
    for orphan in path.parent.glob(".*.tmp"):
        pid = orphan.name.removesuffix(".tmp").rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                orphan.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def describe_os_error(err: OSError) -> str:
    """`no space left on device (ENOSPC)`: the cause of a failed write in a few words."""
    name = errno.errorcode.get(err.errno or 0)
    text = (err.strerror or str(err) or type(err).__name__).lower()
    return f"{text} ({name})" if name else text


DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def find_disk_error(err: BaseException | None) -> OSError | None:
    """The full-disk (or read-only, quota, I/O) OSError behind `err`, if that is what stopped a command."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in DISK_ERRORS:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def describe_disk_error(err: OSError, where: str | None = None) -> str:
    """`cannot write 'logs/x/events...': no space left on device (ENOSPC)`."""
    target = err.filename or where
    return f"cannot write{f' {str(target)!r}' if target else ''}: {describe_os_error(err)}"
