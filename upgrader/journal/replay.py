"""Replay: the pure fold of a run's journal events into its ``RunState``, and resume.

``replay(events) -> RunState`` tells where a run stands: each step's status and attempts, the
interrupted step, the resume point, pending undo actions, gate verdicts, accepted findings.
``resume_decision(state, ...)`` says how ``upgrader resume`` continues from there. Both are
pure: events in, values out, no I/O. Reading the events from disk is ``journal.py``'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from upgrader.compat import StrEnum
from upgrader.errors import FingerprintMismatchError, JournalError, ResumeRefusedError
from upgrader.journal.events import CORRUPT_HINT, EventType, JournalEvent

# --- replay: a pure fold over the events ------------------------------------------------------


class RunStatus(StrEnum):
    """Where a run stands. A run whose process died mid-way still folds to RUNNING."""

    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    ABORTED = "aborted"
    SUCCEEDED = "succeeded"


class StepStatus(StrEnum):
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
    the first step in plan order that has neither succeeded nor been skipped. ``undone_steps``
    are the steps that succeeded and whose undo then ran (a failed run gave back its holds,
    resumed its suspended VMs...), in plan order: a resume takes them again before it goes on.
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
    undone_steps: tuple[str, ...] = ()


def _need(event: JournalEvent, key: str) -> Any:
    if key not in event.fields:
        raise JournalError(
            f"journal event {event.seq} ({event.type}) has no {key!r}", hint=CORRUPT_HINT
        )
    return event.fields[key]


class _Fold:
    def __init__(self, first: JournalEvent) -> None:
        if first.type is not EventType.RUN_STARTED:
            raise JournalError(
                f"the journal starts with {first.type}, not run_started", hint=CORRUPT_HINT
            )
        self.start = first
        plan = _need(first, "plan")
        steps = plan.get("steps") if isinstance(plan, Mapping) else None
        if not isinstance(steps, list) or not all(
            isinstance(s, Mapping) and isinstance(s.get("id"), str) for s in steps
        ):
            raise JournalError(
                "the run_started event's plan has no list of steps with ids", hint=CORRUPT_HINT
            )
        self.order = [s["id"] for s in steps]
        self.steps = dict.fromkeys(self.order, StepStatus.PENDING)
        self.undone: dict[str, None] = {}  # steps whose undo ran (or began) after they succeeded
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
        raise JournalError(f"journal event {e.seq} starts the run a second time", hint=CORRUPT_HINT)

    def set_status(self, status: RunStatus, e: JournalEvent) -> None:
        self.status = status
        self.reason, self.hint = e.get("reason"), e.get("hint")
        self.next_step = e.get("next_step")
        terminal = status in (RunStatus.SUCCEEDED, RunStatus.ABORTED)
        self.finished = e.ts if terminal else None

    def mark(self, e: JournalEvent, status: StepStatus) -> None:
        self.steps[str(_need(e, "step"))] = status

    def step_finished(self, e: JournalEvent) -> None:
        self.mark(e, StepStatus.SUCCEEDED)
        self.undone.pop(str(e.fields["step"]), None)  # taken again: its effect is back

    def step_started(self, e: JournalEvent) -> None:
        self.mark(e, StepStatus.RUNNING)
        step = str(e.fields["step"])
        self.attempts[step] = int(e.get("attempt", self.attempts.get(step, 0) + 1))
        if "idempotent" in e.fields:
            self.idempotent[step] = bool(e.fields["idempotent"])

    def gate_verdict(self, e: JournalEvent) -> None:
        self.gates.append(
            GateRecord(
                e.seq,
                e.ts,
                e.get("step"),
                str(_need(e, "gate")),
                str(e.get("phase", "")),
                str(_need(e, "verdict")),
                e.get("evidence"),
                e.get("hint"),
            )
        )

    def undo_registered(self, e: JournalEvent) -> None:
        undo_id = str(_need(e, "undo_id"))
        self.undo.pop(undo_id, None)  # registered again: it now runs first
        self.undo[undo_id] = PendingUndo(undo_id, e.get("step"), str(e.get("description", "")))

    def undo_update(self, e: JournalEvent) -> None:
        undo_id = str(_need(e, "undo_id"))
        if undo_id not in self.undo:
            return
        owner = self.undo[undo_id].step
        # an undo that started may have given back part of it, even if it failed; one that a
        # step of the plan did (done_by: release Puppet now) is where the plan wants it
        if owner and not e.get("done_by"):
            self.undone[owner] = None
        if e.type is EventType.UNDO_DONE:
            del self.undo[undo_id]
        elif e.type is EventType.UNDO_STARTED:
            self.undo[undo_id] = dataclasses.replace(self.undo[undo_id], started=True)
        else:
            self.undo[undo_id] = dataclasses.replace(
                self.undo[undo_id], last_error=str(e.get("error", ""))
            )

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
            run_id=str(start.get("run_id", "")),
            environment=str(start.get("environment", "")),
            target=str(start.get("target", "")),
            fingerprint=str(start.get("fingerprint", "")),
            plan=start.fields["plan"],
            dry_run=bool(start.get("dry_run", False)),
            status=self.status,
            step_status=MappingProxyType(self.steps),
            attempts=MappingProxyType(self.attempts),
            idempotent=MappingProxyType(self.idempotent),
            interrupted_step=running[-1] if running else None,
            resume_point=next((s for s in self.order if self.steps[s] not in _DONE), None),
            pending_undo=tuple(reversed(self.undo.values())),
            accepted_findings=MappingProxyType(self.findings),
            gate_verdicts=tuple(self.gates),
            snapshots=MappingProxyType(self.snapshots),
            abort_requested=self.abort_requested,
            started=start.ts,
            finished=self.finished,
            reason=self.reason,
            hint=self.hint,
            next_step=self.next_step,
            last_seq=last.seq,
            undone_steps=tuple(s for s in self.order if s in self.undone),
        )


_HANDLERS: dict[EventType, Callable[[_Fold, JournalEvent], None]] = {
    EventType.RUN_STARTED: _Fold.run_started,
    EventType.RUN_RESUMED: lambda f, e: f.set_status(RunStatus.RUNNING, e),
    EventType.STEP_STARTED: _Fold.step_started,
    EventType.STEP_FINISHED: _Fold.step_finished,
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
        raise JournalError("the journal is empty: the run never started", hint="start a new run")
    fold, last = _Fold(first), first
    for last in it:
        fold.apply(last)
    return fold.state(last)


# --- resume ------------------------------------------------------------------------------------


class ResumeAction(StrEnum):
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
        return ResumeDecision(
            ResumeAction.NOTHING_TO_DO,
            None,
            False,
            f"run {run} finished at {state.finished}: nothing to resume",
        )
    if state.status is RunStatus.ABORTED:
        raise ResumeRefusedError(
            f"run {run} was aborted: it cannot be resumed", hint="start a new run"
        )
    if state.abort_requested:
        raise ResumeRefusedError(
            f"an abort of run {run} was requested: it cannot be resumed",
            hint=f"finish the abort with `upgrader abort {run}`",
        )
    if fingerprint != state.fingerprint:
        raise FingerprintMismatchError(
            f"run {run} started with fingerprint {state.fingerprint[:12]}, now it is "
            f"{fingerprint[:12]}: the runbooks, playbooks, target or inventory changed "
            "since the run started: start a new run",
            hint="`upgrader run TARGET` plans again from the cloud as it is now",
        )
    step = state.interrupted_step
    if step is not None and not state.idempotent.get(step, False) and not accept_rerun:
        return ResumeDecision(
            ResumeAction.ASK_OPERATOR,
            step,
            True,
            f"step {step} was interrupted and is not idempotent: it may have done part of its "
            "work; check the cloud, then confirm that it may run again",
        )
    step = state.resume_point
    if step is None:
        return ResumeDecision(
            ResumeAction.CONTINUE,
            None,
            False,
            f"every step of run {run} is done: only its end is left to record",
        )
    rerun = state.attempts.get(step, 0) > 0
    again = " again" if rerun else ""
    return ResumeDecision(
        ResumeAction.CONTINUE, step, rerun, f"run {run} continues with step {step}{again}"
    )


def redo_plan(state: RunState, start: str | None) -> tuple[str | None, tuple[str, ...]]:
    """Where a resume starts and which done steps it takes again first. Pure.

    A step whose undo ran is taken again (the holds); when it opens a sequence (the VMs
    suspended or shut down until its end), the whole sequence runs again from it: what ran
    inside it before the failure was done on a cloud the undo has changed since.
    """
    undone = state.undone_steps
    if start is None or not undone:
        return start, ()
    steps = [s for s in state.plan.get("steps", ()) if isinstance(s, Mapping)]
    order = [str(s.get("id")) for s in steps]
    opens = [str(s["id"]) for s in steps if s.get("sequence_start") and s.get("id") in undone]
    if opens and order.index(opens[0]) < order.index(start):
        start = opens[0]
    return start, tuple(u for u in undone if order.index(u) < order.index(start))
