"""Durable run state: the append-only journal of a run, and replay to its resume point.

A run directory holds ``journal.jsonl``, one JSON object a line:
``{"seq": 1, "ts": "2024-05-01T22:00:00.123Z", "type": "step_started", ...fields}``.
``Journal.record`` writes the line and fsyncs it before it returns, so whatever the caller does
next happens after the transition is on disk (issue 4). A crash can tear only the last line:
reading ignores a torn last line and the next append cuts it off. Any other bad line is
corruption, reported with the file and line number.

Secrets never belong in the journal, and callers pass only Secret-free data. As a last line of
defence a ``Secret`` (anything with a ``reveal()`` method) is written as its ``str()``, ``***``.

``replay`` and ``resume_decision`` are pure: events in, values out. The run lock lives in
``runlock.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from upgrader.errors import FingerprintMismatchError, JournalError, ResumeRefusedError

JOURNAL_NAME = "journal.jsonl"
_RESERVED = frozenset({"seq", "ts", "type"})
_CORRUPT_HINT = (
    "the journal is the record of what ran and cannot be trusted past a damaged line: "
    "keep a copy, compare it with the cloud, and start a new run"
)


class EventType(enum.StrEnum):
    """What a journal line records; the fields each one carries are listed beside it."""

    RUN_STARTED = "run_started"  # run_id, environment, target, fingerprint, plan, dry_run
    RUN_RESUMED = "run_resumed"  # fingerprint, step, rerun, accepted_rerun
    STEP_STARTED = "step_started"  # step, attempt, idempotent
    STEP_FINISHED = "step_finished"  # step, outcome (e.g. Ansible stats), duration
    STEP_SKIPPED = "step_skipped"  # step, reason
    STEP_FAILED = "step_failed"  # step, error, evidence
    GATE_VERDICT = "gate_verdict"  # step, gate, phase, verdict, evidence, hint
    UNDO_REGISTERED = "undo_registered"  # step, undo_id, description
    UNDO_STARTED = "undo_started"  # undo_id
    UNDO_DONE = "undo_done"  # undo_id
    UNDO_FAILED = "undo_failed"  # undo_id, error
    FINDING_ACCEPTED = "finding_accepted"  # key, reason
    RUN_PAUSED = "run_paused"  # reason, next_step
    RUN_FAILED = "run_failed"  # reason, hint
    RUN_ABORT_REQUESTED = "run_abort_requested"  # reason
    RUN_ABORTED = "run_aborted"  # reason
    RUN_FINISHED = "run_finished"  # (none)
    SNAPSHOT = "snapshot"  # step, what, data
    NOTE = "note"  # text


@dataclass(frozen=True)
class JournalEvent:
    """One journal line, as read back from disk (so a Secret field reads ``***``)."""

    seq: int
    ts: str
    type: EventType
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key``, or ``default`` when the event has none."""
        return self.fields.get(key, default)


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


class Journal:
    """The append-only journal of one run. Use ``Journal.create`` or ``Journal.open``.

    One process writes a run's journal at a time; the run lock (``runlock.py``) ensures that.
    """

    def __init__(self, path: Path, fd: int, *, run_id: str, next_seq: int,
                 truncate_to: int | None, clock: Callable[[], float]) -> None:
        self.path = path
        self.run_id = run_id
        self._fd = fd
        self._next_seq = next_seq
        self._truncate_to = truncate_to
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def create(cls, run_dir: Path, run_id: str, *,
               clock: Callable[[], float] = time.time) -> Journal:
        """Create ``<run_dir>/journal.jsonl`` (0600), and ``run_dir`` (0700) if missing."""
        path = run_dir / JOURNAL_NAME
        try:
            make_private_dir(run_dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                         0o600)
            fsync_dir(run_dir)
        except FileExistsError as exc:
            raise JournalError(f"run {run_id} already has a journal at {path}",
                               hint=f"continue it with `upgrader resume {run_id}`") from exc
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
        return cls(path, fd, run_id=run_id, next_seq=len(events) + 1,
                   truncate_to=keep if keep < len(data) else None, clock=clock)

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
            line = _dumps({"seq": self._next_seq, "ts": utc_iso(self._clock()),
                           "type": EventType(event_type).value, **fields})
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
                view = view[os.write(self._fd, view):]
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
        raise JournalError(f"no journal at {path}",
                           hint="`upgrader status` lists the runs and their ids") from exc
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
            raise JournalError(f"{path}, line {number}: not valid JSON",
                               hint=_CORRUPT_HINT) from exc
        events.append(_to_event(obj, path, number, len(events) + 1))
        keep = offset
    return events, keep


def _to_event(obj: object, path: Path, line: int, seq: int) -> JournalEvent:
    def bad(what: str) -> JournalError:
        return JournalError(f"{path}, line {line}: {what}", hint=_CORRUPT_HINT)

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
        return json.dumps(obj, default=_encode, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":"))
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


# --- replay: a pure fold over the events ------------------------------------------------------


class RunStatus(enum.StrEnum):
    """Where a run stands. A run whose process died mid-way still folds to RUNNING."""

    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    ABORTED = "aborted"
    SUCCEEDED = "succeeded"


class StepStatus(enum.StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


@dataclass(frozen=True)
class PendingUndo:
    """An undo action registered by a step and not yet done; ``last_error`` if it failed."""

    undo_id: str
    step: str | None
    description: str
    started: bool = False
    last_error: str | None = None


@dataclass(frozen=True)
class GateRecord:
    """One gate verdict as journaled."""

    seq: int
    ts: str
    step: str | None
    gate: str
    phase: str
    verdict: str
    evidence: Any
    hint: str | None


@dataclass(frozen=True)
class RunState:
    """A run as its journal tells it; built only by ``replay``.

    ``pending_undo`` is in the order to run it (last registered first); ``resume_point`` is
    the first step in plan order that has neither succeeded nor been skipped.
    """

    run_id: str
    environment: str
    target: str
    fingerprint: str
    plan: Mapping[str, Any]
    dry_run: bool
    status: RunStatus
    step_status: Mapping[str, StepStatus]
    attempts: Mapping[str, int]
    idempotent: Mapping[str, bool]
    interrupted_step: str | None
    resume_point: str | None
    pending_undo: tuple[PendingUndo, ...]
    accepted_findings: Mapping[str, str]
    gate_verdicts: tuple[GateRecord, ...]
    snapshots: Mapping[tuple[str, str], Any]
    abort_requested: bool
    started: str
    finished: str | None
    reason: str | None
    hint: str | None
    next_step: str | None
    last_seq: int


def _need(event: JournalEvent, key: str) -> Any:
    if key not in event.fields:
        raise JournalError(f"journal event {event.seq} ({event.type}) has no {key!r}",
                           hint=_CORRUPT_HINT)
    return event.fields[key]


class _Fold:
    def __init__(self, first: JournalEvent) -> None:
        if first.type is not EventType.RUN_STARTED:
            raise JournalError(f"the journal starts with {first.type}, not run_started",
                               hint=_CORRUPT_HINT)
        self.start = first
        plan = _need(first, "plan")
        steps = plan.get("steps") if isinstance(plan, Mapping) else None
        if not isinstance(steps, list) or not all(
                isinstance(s, Mapping) and isinstance(s.get("id"), str) for s in steps):
            raise JournalError("the run_started event's plan has no list of steps with ids",
                               hint=_CORRUPT_HINT)
        self.order = [s["id"] for s in steps]
        self.steps = dict.fromkeys(self.order, StepStatus.PENDING)
        self.idempotent = {s["id"]: bool(s.get("idempotent", False)) for s in steps}
        self.attempts: dict[str, int] = {}
        self.undo: dict[str, PendingUndo] = {}
        self.findings: dict[str, str] = {}
        self.gates: list[GateRecord] = []
        self.snapshots: dict[tuple[str, str], Any] = {}
        self.status = RunStatus.RUNNING
        self.abort_requested = False
        self.finished: str | None = None
        self.reason: str | None = None
        self.hint: str | None = None
        self.next_step: str | None = None

    def apply(self, e: JournalEvent) -> None:
        handler = _HANDLERS.get(e.type)
        if handler is not None:
            handler(self, e)

    def run_started(self, e: JournalEvent) -> None:
        raise JournalError(f"journal event {e.seq} starts the run a second time",
                           hint=_CORRUPT_HINT)

    def set_status(self, status: RunStatus, e: JournalEvent) -> None:
        self.status = status
        self.reason, self.hint = e.get("reason"), e.get("hint")
        self.next_step = e.get("next_step")
        terminal = status in (RunStatus.SUCCEEDED, RunStatus.ABORTED)
        self.finished = e.ts if terminal else None

    def mark(self, e: JournalEvent, status: StepStatus) -> None:
        self.steps[str(_need(e, "step"))] = status

    def step_started(self, e: JournalEvent) -> None:
        self.mark(e, StepStatus.RUNNING)
        step = str(e.fields["step"])
        self.attempts[step] = int(e.get("attempt", self.attempts.get(step, 0) + 1))
        if "idempotent" in e.fields:
            self.idempotent[step] = bool(e.fields["idempotent"])

    def gate_verdict(self, e: JournalEvent) -> None:
        self.gates.append(GateRecord(e.seq, e.ts, e.get("step"), str(_need(e, "gate")),
                                     str(e.get("phase", "")), str(_need(e, "verdict")),
                                     e.get("evidence"), e.get("hint")))

    def undo_registered(self, e: JournalEvent) -> None:
        undo_id = str(_need(e, "undo_id"))
        self.undo.pop(undo_id, None)  # registered again: it now runs first
        self.undo[undo_id] = PendingUndo(undo_id, e.get("step"), str(e.get("description", "")))

    def undo_update(self, e: JournalEvent) -> None:
        undo_id = str(_need(e, "undo_id"))
        if undo_id not in self.undo:
            return
        if e.type is EventType.UNDO_DONE:
            del self.undo[undo_id]
        elif e.type is EventType.UNDO_STARTED:
            self.undo[undo_id] = dataclasses.replace(self.undo[undo_id], started=True)
        else:
            self.undo[undo_id] = dataclasses.replace(self.undo[undo_id],
                                                     last_error=str(e.get("error", "")))

    def finding_accepted(self, e: JournalEvent) -> None:
        self.findings[str(_need(e, "key"))] = str(e.get("reason", ""))

    def snapshot(self, e: JournalEvent) -> None:
        self.snapshots[(str(e.get("step", "")), str(_need(e, "what")))] = e.get("data")

    def abort_requested_(self, e: JournalEvent) -> None:
        self.abort_requested = True

    def state(self, last: JournalEvent) -> RunState:
        running = [s for s, status in self.steps.items() if status is StepStatus.RUNNING]
        start = self.start
        return RunState(
            run_id=str(start.get("run_id", "")), environment=str(start.get("environment", "")),
            target=str(start.get("target", "")), fingerprint=str(start.get("fingerprint", "")),
            plan=start.fields["plan"], dry_run=bool(start.get("dry_run", False)),
            status=self.status, step_status=MappingProxyType(self.steps),
            attempts=MappingProxyType(self.attempts),
            idempotent=MappingProxyType(self.idempotent),
            interrupted_step=running[-1] if running else None,
            resume_point=next((s for s in self.order if self.steps[s] not in _DONE), None),
            pending_undo=tuple(reversed(self.undo.values())),
            accepted_findings=MappingProxyType(self.findings), gate_verdicts=tuple(self.gates),
            snapshots=MappingProxyType(self.snapshots), abort_requested=self.abort_requested,
            started=start.ts, finished=self.finished, reason=self.reason, hint=self.hint,
            next_step=self.next_step, last_seq=last.seq,
        )


_HANDLERS: dict[EventType, Callable[[_Fold, JournalEvent], None]] = {
    EventType.RUN_STARTED: _Fold.run_started,
    EventType.RUN_RESUMED: lambda f, e: f.set_status(RunStatus.RUNNING, e),
    EventType.STEP_STARTED: _Fold.step_started,
    EventType.STEP_FINISHED: lambda f, e: f.mark(e, StepStatus.SUCCEEDED),
    EventType.STEP_SKIPPED: lambda f, e: f.mark(e, StepStatus.SKIPPED),
    EventType.STEP_FAILED: lambda f, e: f.mark(e, StepStatus.FAILED),
    EventType.GATE_VERDICT: _Fold.gate_verdict,
    EventType.UNDO_REGISTERED: _Fold.undo_registered,
    EventType.UNDO_STARTED: _Fold.undo_update,
    EventType.UNDO_DONE: _Fold.undo_update,
    EventType.UNDO_FAILED: _Fold.undo_update,
    EventType.FINDING_ACCEPTED: _Fold.finding_accepted,
    EventType.RUN_PAUSED: lambda f, e: f.set_status(RunStatus.PAUSED, e),
    EventType.RUN_FAILED: lambda f, e: f.set_status(RunStatus.FAILED, e),
    EventType.RUN_ABORT_REQUESTED: _Fold.abort_requested_,
    EventType.RUN_ABORTED: lambda f, e: f.set_status(RunStatus.ABORTED, e),
    EventType.RUN_FINISHED: lambda f, e: f.set_status(RunStatus.SUCCEEDED, e),
    EventType.SNAPSHOT: _Fold.snapshot,
}


def replay(events: Iterable[JournalEvent]) -> RunState:
    """Fold a run's events, oldest first, into its state. Pure: no I/O.

    Raises:
        JournalError: no events, or the first is not run_started, or a field replay needs
            is missing.
    """
    it = iter(events)
    first = next(it, None)
    if first is None:
        raise JournalError("the journal is empty: the run never started",
                           hint="start a new run")
    fold, last = _Fold(first), first
    for last in it:
        fold.apply(last)
    return fold.state(last)


# --- resume ------------------------------------------------------------------------------------


class ResumeAction(enum.StrEnum):
    """What ``resume`` should do."""

    CONTINUE = "continue"
    ASK_OPERATOR = "ask_operator"
    NOTHING_TO_DO = "nothing_to_do"


@dataclass(frozen=True)
class ResumeDecision:
    """``step`` is where to continue (None: every step is done, only the end is left to record);
    ``rerun`` says that step ran before and runs again."""

    action: ResumeAction
    step: str | None
    rerun: bool
    message: str


def resume_decision(state: RunState, *, fingerprint: str, accept_rerun: bool) -> ResumeDecision:
    """Decide how ``resume`` continues ``state``, given the plan fingerprint computed now. Pure.

    A finished step never runs again. An interrupted step runs again only if it is idempotent
    or ``accept_rerun`` (``--yes``) is given; otherwise the decision is ASK_OPERATOR.

    Raises:
        ResumeRefusedError: the run was aborted, or an abort of it is pending.
        FingerprintMismatchError: the plan's inputs changed since the run started.
    """
    run = state.run_id
    if state.status is RunStatus.SUCCEEDED:
        return ResumeDecision(ResumeAction.NOTHING_TO_DO, None, False,
                              f"run {run} finished at {state.finished}: nothing to resume")
    if state.status is RunStatus.ABORTED:
        raise ResumeRefusedError(f"run {run} was aborted: it cannot be resumed",
                                 hint="start a new run")
    if state.abort_requested:
        raise ResumeRefusedError(f"an abort of run {run} was requested: it cannot be resumed",
                                 hint=f"finish the abort with `upgrader abort {run}`")
    if fingerprint != state.fingerprint:
        raise FingerprintMismatchError(
            f"run {run} started with fingerprint {state.fingerprint[:12]}, now it is "
            f"{fingerprint[:12]}: the runbooks, playbooks, target or inventory changed "
            "since the run started: start a new run",
            hint="`upgrader run TARGET` plans again from the cloud as it is now")
    step = state.interrupted_step
    if step is not None and not state.idempotent.get(step, False) and not accept_rerun:
        return ResumeDecision(
            ResumeAction.ASK_OPERATOR, step, True,
            f"step {step} was interrupted and is not idempotent: it may have done part of its "
            "work; check the cloud, then confirm that it may run again")
    step = state.resume_point
    if step is None:
        return ResumeDecision(ResumeAction.CONTINUE, None, False,
                              f"every step of run {run} is done: only its end is left to record")
    rerun = state.attempts.get(step, 0) > 0
    again = " again" if rerun else ""
    return ResumeDecision(ResumeAction.CONTINUE, step, rerun,
                          f"run {run} continues with step {step}{again}")
