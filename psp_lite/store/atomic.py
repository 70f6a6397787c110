"""Writing files so that no reader sees half of one: a unique temporary file in the target's
folder, renamed into place (issue 18: one fixed temp name let two writers corrupt a pack); the
`.tmp-*` leftovers of interrupted writes removed once they are old; and `StoreWriteError`, the
one typed error every store write raises, naming the path it could not write."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock; packs' checksums still catch a mix
    fcntl = None  # type: ignore[assignment]

#: `.tmp-*` files older than this (seconds) are left by interrupted writes and are removed.
STALE_TMP_SECONDS = 15 * 60
TMP_PREFIX = ".tmp-"


class StoreWriteError(OSError):
    """A store file or folder could not be written; `path` says which, the message says why
    and what to do in one line (for the CLI to print as is)."""

    template = "could not write {path} ({why})"

    def __init__(self, path: Path, reason: OSError | str, hint: str = "") -> None:
        why = reason if isinstance(reason, str) else (reason.strerror or str(reason))
        errno = None if isinstance(reason, str) else reason.errno
        text = self.template.format(path=path, why=why)
        super().__init__(errno, f"{text}; {hint}" if hint else text)
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.strerror)


def write_tmp(folder: Path, suffix: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a new uniquely named `.tmp-*` file in `folder` with `write(f)`; its path. The file
    is removed again if writing fails (also on Ctrl-C)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace(tmp: Path, path: Path) -> None:
    """Rename `tmp` onto `path` (atomic on one filesystem); `tmp` is removed if that fails."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write `path` with `write(f)` so that it is either the old file or the whole new one."""
    replace(write_tmp(path.parent, path.suffix, write), path)
    return path


@contextlib.contextmanager
def locked(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold `flock` on the folder itself (no lock file): exclusive while a writer renames a set
    of files into place, shared while a reader reads them. A no-op where flock is missing."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_tmp(folder: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete `.tmp-*` files in `folder` older than `older_than` seconds; return how many.
    Younger ones may belong to a write in progress in another process and are kept."""
    removed = 0
    now = time.time()
    for tmp in folder.glob(f"{TMP_PREFIX}*"):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


def check_writable(folder: Path, error: type[StoreWriteError], hint: str) -> Path:
    """Create `folder` if needed and prove a file can be made in it; else `error` naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f"{TMP_PREFIX}probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as reason:
        raise error(folder, reason, hint) from reason
    remove_stale_tmp(folder)
    return folder
