"""The run lock: one run at a time per environment, for manual and scheduled runs alike.

``<lock_dir>/<environment>.lock`` (0600) holds JSON ``{run_id, pid, host, started, expires,
pid_start}``. It is created complete or not at all (``upgrader.journal.files.write_private``):
the content is written to a temporary file which is then hard-linked to the lock's name, and
``link`` fails if the name exists, so a reader never sees an empty or half-written lock. Every
change (create, take over, refresh, release) happens under an exclusive ``flock`` on
``<environment>.lock.guard``, so a check and the change that follows it cannot interleave with
another process's: of two take-overs, one wins.

A lock is stale when its process is gone (or is a zombie, or its pid now belongs to another
process: ``pid_start`` is the holder's start time from /proc) or when it has expired. A stale lock
is reported, and replaced only when the caller passes ``take_over`` (the CLI's ``--take-over``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

from upgrader.errors import LockHeldError, StaleLockError, UsageError
from upgrader.journal.files import fsync_dir, make_private_dir, utc_iso, write_private

_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class LockInfo:
    """The content of a lock file. ``started`` and ``expires`` are ISO-8601 UTC."""

    run_id: str
    pid: int
    host: str
    started: str
    expires: str
    pid_start: str | None = None

    def describe(self) -> str:
        """``run R (pid 123 on host h since T)``, for messages."""
        return f"run {self.run_id} (pid {self.pid} on host {self.host} since {self.started})"

    def expired(self, now: float) -> bool:
        """Whether the lock's expiry time has passed at ``now`` (seconds since the epoch)."""
        return datetime.fromisoformat(self.expires).timestamp() <= now

    def same_holder(self, other: LockInfo) -> bool:
        """Whether ``other`` is this very acquisition (expiry aside, which refresh moves)."""
        return (self.run_id, self.pid, self.host, self.started) == (
            other.run_id,
            other.pid,
            other.host,
            other.started,
        )


def stale_reason(info: LockInfo, now: float) -> str | None:
    """Why ``info`` is stale (``pid 123 is not running``, ``it expired at T``), or None."""
    if info.host == socket.gethostname() and not _alive(info.pid, info.pid_start):
        return f"pid {info.pid} is not running"
    if info.expired(now):
        return f"it expired at {info.expires}"
    return None  # a holder on another host is trusted until it expires


def read_lock(lock_dir: Path, environment: str) -> LockInfo | None:
    """The lock of ``environment``, or None when it is not locked (for ``upgrader status``).

    Raises:
        StaleLockError: the lock file is unreadable or corrupt.
    """
    path = _lock_path(lock_dir, environment)
    try:
        return _read(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _corrupt(path, exc) from exc


class RunLock:
    """A held run lock. Use ``RunLock.acquire``; release it (or use ``with``) when the run ends.

    ``previous`` is the stale holder this acquisition took over, for the caller to journal.
    """

    def __init__(
        self,
        path: Path,
        environment: str,
        info: LockInfo,
        previous: LockInfo | None,
        now: Callable[[], float],
    ) -> None:
        self.path = path
        self.environment = environment
        self.info = info
        self.previous = previous
        self._now = now

    @classmethod
    def acquire(
        cls,
        lock_dir: Path,
        environment: str,
        run_id: str,
        *,
        expiry_seconds: float,
        take_over: bool = False,
        now: Callable[[], float] = time.time,
    ) -> RunLock:
        """Take the lock of ``environment`` for ``run_id``.

        Raises:
            LockHeldError: a live run holds it (exit 4); the message names it.
            StaleLockError: a stale or corrupt lock is in the way and ``take_over`` is False.
        """
        path = _lock_path(lock_dir, environment)
        make_private_dir(lock_dir)
        started = now()
        own = _proc_stat(os.getpid())
        info = LockInfo(
            run_id,
            os.getpid(),
            socket.gethostname(),
            utc_iso(started),
            utc_iso(started + expiry_seconds),
            own[1] if own else None,
        )
        with _guard(path):
            try:
                _write(path, info, exclusive=True)
                return cls(path, environment, info, None, now)
            except FileExistsError:
                pass
            holder, stale = _stale_holder(path, environment, now())
            if not take_over:
                raise stale
            _write(path, info, exclusive=False)
            return cls(path, environment, info, holder, now)

    def refresh(self, expiry_seconds: float) -> LockInfo:
        """Move the expiry to ``expiry_seconds`` from now.

        Raises:
            LockHeldError: the lock is no longer ours (taken over or removed).
        """
        with _guard(self.path):
            self._check_ours()
            self.info = replace(self.info, expires=utc_iso(self._now() + expiry_seconds))
            _write(self.path, self.info, exclusive=False)
        return self.info

    def release(self) -> bool:
        """Remove the lock if it is still ours; return whether it was."""
        with _guard(self.path):
            try:
                self._check_ours()
            except LockHeldError:
                return False
            self.path.unlink()
            fsync_dir(self.path.parent)
        return True

    def _check_ours(self) -> None:
        try:
            holder = _read(self.path)
        except (OSError, ValueError):
            holder = None
        if holder is None or not holder.same_holder(self.info):
            whom = f"it is held by {holder.describe()}" if holder else "it was removed"
            raise LockHeldError(
                f"the lock of environment '{self.environment}' is no longer run "
                f"{self.info.run_id}'s: {whom}",
                holder=asdict(holder) if holder else None,
                hint="another process took the lock over: stop, and check `upgrader status`",
            )

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _stale_holder(
    path: Path,
    environment: str,
    now: float,
) -> tuple[LockInfo | None, StaleLockError]:
    """Raise LockHeldError if a live run holds ``path``; otherwise return the stale holder
    (None when the file is corrupt) and the error that reports it."""
    try:
        holder = _read(path)
    except (OSError, ValueError) as exc:
        return None, _corrupt(path, exc)
    reason = stale_reason(holder, now)
    if reason is None:
        raise LockHeldError(
            f"environment '{environment}' is locked by {holder.describe()}",
            holder=asdict(holder),
            hint=f"wait for run {holder.run_id} to end (`upgrader status` shows it), "
            f"or stop it with `upgrader abort {holder.run_id}`",
        )
    return holder, StaleLockError(
        f"stale lock of run {holder.run_id} ({reason}): pass --take-over to take it over",
        holder=asdict(holder),
        hint=f"check that run {holder.run_id} is really gone, then repeat with --take-over",
    )


def _corrupt(path: Path, exc: Exception) -> StaleLockError:
    return StaleLockError(
        f"the lock file {path} is unreadable or corrupt ({exc}): pass --take-over to replace it",
        hint="check that no run is going on, then repeat with --take-over",
    )


def _lock_path(lock_dir: Path, environment: str) -> Path:
    if not _ENVIRONMENT.fullmatch(environment):
        raise UsageError(f"{environment!r} is not a valid environment name")
    return lock_dir / f"{environment}.lock"


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    # The guard file is never removed: removing a file others may be waiting to flock races.
    fd = os.open(path.with_name(path.name + ".guard"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _read(path: Path) -> LockInfo:
    obj = json.loads(path.read_bytes())
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    try:
        info = LockInfo(**obj)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not (
        isinstance(info.run_id, str) and isinstance(info.pid, int) and isinstance(info.host, str)
    ):
        raise ValueError("run_id, pid or host has the wrong type")
    datetime.fromisoformat(info.started)
    datetime.fromisoformat(info.expires)
    return info


def _write(path: Path, info: LockInfo, *, exclusive: bool) -> None:
    """Write ``info`` whole: linked to ``path`` (exclusive: FileExistsError when the lock
    exists) or renamed over it."""
    write_private(path, json.dumps(asdict(info)) + "\n", exclusive=exclusive)


def _alive(pid: int, pid_start: str | None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc to ask: trust kill()
    state, start = stat
    return state != "Z" and (pid_start is None or start == pid_start)


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """The state and start time (fields 3 and 22 of /proc/<pid>/stat), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[0], fields[19]


LOCK_EXPIRY = 12 * 3600.0
