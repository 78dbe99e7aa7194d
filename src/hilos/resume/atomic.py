"""Writing a file so that a crash leaves the old one or the new one, never a part: every
checkpoint's save (the chunked job's and the default one of a run in one piece)."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

__all__ = ["fsync_dir", "write_atomically"]

_SERIAL = itertools.count()  # temporary names unique within the process (threads may save)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that a crash leaves the old file or the new one, never a part:
    a temporary file beside it, fsync, rename, fsync of the directory."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{next(_SERIAL)}"
    fd = _create(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _create(tmp: Path) -> int:
    """A new file, as mkstemp makes one (tempfile costs ~12 ms of imports): never through a
    link put there. The name is this process's own; one left by a dead process of the same
    pid is removed and made again."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        os.unlink(tmp)
        return os.open(tmp, flags, 0o600)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
