"""Durable run state: the append-only journal of a run, written and read back.

A run directory holds ``journal.jsonl``, one JSON object a line:
``{"seq": 1, "ts": "2024-05-01T22:00:00.123Z", "type": "step_started", ...fields}``.
``Journal.record`` writes the line and fsyncs it before it returns, so whatever the caller does
next happens after the transition is on disk (issue 4). A crash can tear only the last line:
reading ignores a torn last line and the next append cuts it off. Any other bad line is
corruption, reported with the file and line number.

Secrets never belong in the journal, and callers pass only Secret-free data. As a last line of
defence a ``Secret`` (anything with a ``reveal()`` method) is written as its ``str()``, ``***``.

The event vocabulary (``EventType``, ``JournalEvent``) is in ``events.py``; the pure
``replay`` into a ``RunState`` and ``resume_decision`` are in ``replay.py``; both are
re-exported here. The durable private-file helpers are in ``files.py``. The
run lock lives in ``upgrader/run/lock.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from upgrader.errors import JournalError
from upgrader.journal.events import CORRUPT_HINT, EventType, JournalEvent
from upgrader.journal.files import fsync_dir, make_private_dir, utc_iso
from upgrader.journal.replay import (
    GateRecord,
    PendingUndo,
    ResumeAction,
    ResumeDecision,
    RunState,
    RunStatus,
    StepStatus,
    redo_plan,
    replay,
    resume_decision,
)

__all__ = [
    "JOURNAL_NAME",
    "EventType",
    "GateRecord",
    "Journal",
    "JournalEvent",
    "PendingUndo",
    "ResumeAction",
    "ResumeDecision",
    "RunState",
    "RunStatus",
    "StepStatus",
    "read_events",
    "redo_plan",
    "replay",
    "resume_decision",
]

JOURNAL_NAME = "journal.jsonl"
_RESERVED = frozenset({"seq", "ts", "type"})


class Journal:
    """The append-only journal of one run. Use ``Journal.create`` or ``Journal.open``.

    One process writes a run's journal at a time; the run lock (``run/lock.py``) ensures that.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        *,
        run_id: str,
        next_seq: int,
        truncate_to: int | None,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._fd = fd
        self._next_seq = next_seq
        self._truncate_to = truncate_to
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls, run_dir: Path, run_id: str, *, clock: Callable[[], float] = time.time
    ) -> Journal:
        """Create ``<run_dir>/journal.jsonl`` (0600), and ``run_dir`` (0700) if missing."""
        path = run_dir / JOURNAL_NAME
        try:
            make_private_dir(run_dir)
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
            fsync_dir(run_dir)
        except FileExistsError as exc:
            raise JournalError(
                f"run {run_id} already has a journal at {path}",
                hint=f"continue it with `upgrader resume {run_id}`",
            ) from exc
        except OSError as exc:
            raise JournalError(f"cannot create the journal {path}: {exc.strerror}") from exc
        return cls(path, fd, run_id=run_id, next_seq=1, truncate_to=None, clock=clock)

    @classmethod
    def open(cls, run_dir: Path, *, clock: Callable[[], float] = time.time) -> Journal:
        """Open an existing journal to append to it (``resume``, ``abort``)."""
        path = run_dir / JOURNAL_NAME
        data = _read_bytes(path)
        events, keep = _parse(path, data)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise JournalError(f"cannot open the journal {path}: {exc.strerror}") from exc
        started = [e for e in events if e.type is EventType.RUN_STARTED]
        run_id = str(started[0].get("run_id")) if started else run_dir.name
        return cls(
            path,
            fd,
            run_id=run_id,
            next_seq=len(events) + 1,
            truncate_to=keep if keep < len(data) else None,
            clock=clock,
        )

    def record(self, event_type: EventType, **fields: Any) -> JournalEvent:
        """Append one event and fsync it; return the event as it now reads from disk.

        Raises:
            TypeError: a field is named seq, ts or type, or cannot be written as JSON
                (a bug in the caller; nothing is written).
            JournalError: the disk refused the write.
        """
        clash = sorted(_RESERVED & fields.keys())
        if clash:
            raise TypeError(f"journal fields may not be named {', '.join(clash)}")
        with self._lock:
            if self._fd < 0:
                raise JournalError(f"the journal {self.path} is closed")
            line = _dumps(
                {
                    "seq": self._next_seq,
                    "ts": utc_iso(self._clock()),
                    "type": EventType(event_type).value,
                    **fields,
                }
            )
            self._append(line.encode() + b"\n")
            self._next_seq += 1
        return _to_event(json.loads(line), self.path, self._next_seq - 1, self._next_seq - 1)

    def _append(self, data: bytes) -> None:
        try:
            if self._truncate_to is not None:  # cut off the line a crash tore
                os.ftruncate(self._fd, self._truncate_to)
                self._truncate_to = None
            start = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc.strerror}") from exc
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            # Leave no half line behind: the next append would turn it into a corrupt middle line.
            self._truncate_to = start
            raise JournalError(
                f"cannot write the journal {self.path}: {exc.strerror}",
                hint="free space or fix the run directory's permissions, then `upgrader resume`",
            ) from exc

    def events(self) -> list[JournalEvent]:
        """Read every event back from disk (a torn last line is left out)."""
        return read_events(self.path)

    def close(self) -> None:
        """Close the file; further ``record`` calls raise JournalError."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Path) -> list[JournalEvent]:
    """Read a journal file without opening it for writing (``status``, ``report``)."""
    return _parse(path, _read_bytes(path))[0]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise JournalError(
            f"no journal at {path}", hint="`upgrader status` lists the runs and their ids"
        ) from exc
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from exc


def _parse(path: Path, data: bytes) -> tuple[list[JournalEvent], int]:
    """Return the events and the byte length of the good part (without a torn last line)."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline; otherwise a torn line
    events: list[JournalEvent] = []
    offset = keep = 0
    for number, raw in enumerate(lines, start=1):
        offset += len(raw) + 1
        try:
            obj = json.loads(raw)
        except ValueError as exc:  # also UnicodeDecodeError
            if number == len(lines) and not tail:
                break  # the last line, written in part before a crash
            raise JournalError(f"{path}, line {number}: not valid JSON", hint=CORRUPT_HINT) from exc
        events.append(_to_event(obj, path, number, len(events) + 1))
        keep = offset
    return events, keep


def _to_event(obj: object, path: Path, line: int, seq: int) -> JournalEvent:
    def bad(what: str) -> JournalError:
        return JournalError(f"{path}, line {line}: {what}", hint=CORRUPT_HINT)

    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    if obj.get("seq") != seq:
        raise bad(f"sequence number {obj.get('seq')!r} where {seq} was expected")
    if not isinstance(obj.get("ts"), str):
        raise bad("no timestamp")
    try:
        kind = EventType(obj.get("type"))
    except ValueError:
        raise bad(f"unknown event type {obj.get('type')!r}") from None
    fields = {k: v for k, v in obj.items() if k not in _RESERVED}
    return JournalEvent(seq, obj["ts"], kind, MappingProxyType(fields))


def _dumps(obj: Mapping[str, Any]) -> str:
    try:
        return json.dumps(
            obj, default=_encode, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except ValueError as exc:  # NaN or infinity, or a circular reference
        raise TypeError(f"cannot journal a {obj.get('type')} event: {exc}") from exc


def _encode(value: object) -> object:
    # A Secret, known by its reveal() method: journal.py must not import the opennebula adapter.
    if callable(getattr(value, "reveal", None)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Not dataclasses.asdict: it deep-copies, and a Secret refuses to be copied.
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot journal a value of type {type(value).__name__}")
