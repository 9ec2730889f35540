"""Durable private files: owner-only, written whole or not at all, and their names fsynced.

What a run writes names the cloud's hosts and VMs (journal, action state, run lock, reports),
so it is created owner-only (0700 directories, 0600 files) whatever the umask. A file that is
replaced is written through ``write_private``: a reader, or a run restarted after a crash, sees
the old content or the new one, never half of either, and never a temporary file in its place.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path

from upgrader.compat import UTC

__all__ = ["fsync_dir", "make_private_dir", "utc_iso", "write_private"]


def utc_iso(epoch: float) -> str:
    """Format seconds since the epoch as ISO-8601 UTC with milliseconds: ``...T22:00:00.123Z``."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents owner-only (0700); an existing one is kept."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        fsync_dir(directory.parent)


def write_private(
    path: Path, data: str | bytes, *, exclusive: bool = False, mode: int = 0o600
) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole, readable by its owner only.

    The data goes to a new temporary file beside ``path`` (created exclusively with ``mode``,
    0600 unless a caller writes something meant for others), is fsynced, and then takes
    ``path``'s name: renamed over it, or with ``exclusive`` hard-linked to it, so that an
    existing ``path`` is left alone and FileExistsError raised. The temporary file is gone
    afterwards, whatever happened; the directory is fsynced so that the new name is durable.
    The directory must exist (``make_private_dir``).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists.
        OSError: the directory is missing, or the disk refused the write.
    """
    view = memoryview(data.encode() if isinstance(data, str) else data)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, mode)  # exactly ``mode``: os.open's is filtered by the umask
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
