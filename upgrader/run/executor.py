"""Walk a plan: gates before, the step, gates after; journal every transition first.

The executor receives its collaborators (journal, playbook runner, gates, actions,
progress sink, clock) as arguments, so tests hand in real or recorded ones. Undo actions a
step registers run, newest first, when the run fails or is aborted, and at the end of a
successful run (they are the "back to how it was" half of a maintenance pair: Pacemaker
out of maintenance mode, Puppet released, a host re-enabled).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.errors import (
    GateFailedError,
    PlaybookFailedError,
    UpgraderError,
    WindowClosedError,
)
from upgrader.gates.model import PASS, Gate
from upgrader.journal.store import EventType, Journal, StepStatus, replay
from upgrader.plan.estimates import unit_of
from upgrader.plan.planner import Plan, PlannedStep
from upgrader.plan.runbook import GateSpec, Step
from upgrader.windows.window import fits

if TYPE_CHECKING:
    from upgrader.windows.window import Window


# Set on SIGTERM (systemd ending a scheduled run, an operator's kill): the run lets the step
# in progress finish and pauses before the next batch or sequence instead of dying in a step.
STOP_REQUESTED = threading.Event()


Action = Callable[[PlannedStep, "RunContext"], Mapping[str, Any]]
PlaybookRunner = Callable[..., PlaybookOutcome]


@dataclass
class RunContext:
    """What one run of a plan works with."""

    plan: Plan
    run_id: str
    run_dir: Path
    journal: Journal
    run_playbook: PlaybookRunner
    project_dir: Path
    inventory: Path | str
    gates: Mapping[str, Gate]
    actions: Mapping[str, Action]
    undo_steps: Mapping[str, Step]
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    progress: Callable[[str], None] = print
    cancel: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    abort_file: Path | None = None  # `upgrader abort` from another process creates it
    vault_password_file: Path | None = None  # the environment's, for every play
    # (step, gate) -> what a gate recorded before the step (journaled; resume refills it)
    snapshots: dict[tuple[str, str], Any] = field(default_factory=dict)
    # the maintenance window the run must finish its steps in (None: not limited)
    window: Window | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    estimates: Mapping[str, float] = field(default_factory=dict)  # step id -> seconds
    # the next window after a time (said when the run pauses), from the site config
    next_window: Callable[[datetime], Window | None] = lambda now: None
    # journals the cloud's state (versions, hosts, VMs) as the run ends, finished or not
    observe_cloud: Callable[[str], None] = lambda when: None
    # hosts this process's last play on them could not reach (a later answer clears one):
    # oned may take minutes to notice a host is gone, and an undo must not wait for it
    unreachable: set[str] = field(default_factory=set)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def marker(run_id: str, step_id: str, attempt: int) -> str:
    """The environment marker every process of one step attempt carries."""
    return f"{run_id}:{_slug(step_id)}:{attempt}"


def execute(
    ctx: RunContext,
    *,
    start_at: str | None = None,
    attempt_of: Mapping[str, int] | None = None,
    redo: Sequence[str] = (),
) -> None:
    """Run the plan's steps from ``start_at`` (default: the first) to the end; first the
    ``redo`` steps (done before, then undone when the run failed: the holds, the suspended
    VMs), so the steps after them find the cloud as they expect it.

    Raises ``GateFailedError`` / ``PlaybookFailedError`` after undoing what the run
    registered; every transition is in the journal before the next one starts.
    """
    if ctx.dry_run:  # a dry run judges only its preflight and runs no step (upgrader.run.dryrun)
        raise UpgraderError("the executor does not walk a dry run: upgrader.run.dryrun.walk does")
    steps = list(ctx.plan.steps)
    index = 0 if start_at is None else next(i for i, s in enumerate(steps) if s.id == start_at)
    attempts = dict(attempt_of or {})
    for n, step in enumerate(steps[:index], 1):
        if step.id in redo:
            ctx.progress(f"[run] {step.id} again: its undo ran when the run stopped")
            attempts[step.id] = attempts.get(step.id, 0) + 1
            _run_step(ctx, step, n, attempts[step.id])
    for n, step in enumerate(steps[index:], index + 1):
        if ctx.cancel.is_set() or (ctx.abort_file is not None and ctx.abort_file.exists()):
            ctx.journal.record(EventType.RUN_ABORT_REQUESTED, reason="upgrader abort")
            abort(ctx, "abort requested")
            return
        if STOP_REQUESTED.is_set() and unit_of(ctx.plan, step.id):
            pause(ctx, step, "a stop was requested (SIGTERM): paused at a safe point")
        _check_window(ctx, step)
        attempts[step.id] = attempts.get(step.id, 0) + 1
        _run_step(ctx, step, n, attempts[step.id])
    finish(ctx)


def estimate(ctx: RunContext, step: PlannedStep) -> float:
    """The seconds the run expects ``step`` to take (measured or the runbook's)."""
    return float(ctx.estimates.get(step.id, step.estimate))


def _check_window(ctx: RunContext, step: PlannedStep) -> None:
    """Pause before ``step`` (a safe point) when it, with the steps that must finish in the
    same window (its host batch, its sequence), would not end before the window closes."""
    if ctx.window is None:
        return
    unit = unit_of(ctx.plan, step.id)
    if not unit:
        return  # inside a batch or sequence that was judged as a whole at its first step
    need = sum(estimate(ctx, s) for s in unit)
    now = ctx.now()
    left = (ctx.window.end - now).total_seconds()
    if ctx.window.contains(now) and fits(ctx.window, now, need):
        return
    what = step.id if len(unit) == 1 else f"{unit[0].id} .. {unit[-1].id}"
    reason = (f"the window closes at {_hhmm(ctx.window.end)} (in {_minutes(left)}); "
              f"{what} needs about {_minutes(need)}")
    pause(ctx, step, reason, window=ctx.window.as_dict(), need=round(need, 1),
          left=round(max(left, 0.0), 1))


def pause(ctx: RunContext, step: PlannedStep, reason: str, **fields: Any) -> None:
    """Journal the pause before ``step`` (a safe point) and stop the run with exit 3; the
    hint says when and how it goes on, and what stays held until then."""
    later = ctx.next_window(ctx.now())
    held = [u.description for u in replay(ctx.journal.events()).pending_undo]
    ctx.observe_cloud("end")
    ctx.journal.record(
        EventType.RUN_PAUSED, reason=reason, next_step=step.id,
        next_window=later.as_dict() if later else None, held=held, **fields,
    )
    ctx.progress(f"[run] {ctx.run_id} paused before {step.id}: {reason}")
    when = (f"in the next window (opens {later.start.isoformat(timespec='minutes')})"
            if later else "in a window (`--window now+2h` declares one)")
    still = f"; until then these stay as they are: {'; '.join(held)}" if held else ""
    raise WindowClosedError(
        f"paused before {step.id}: {reason}",
        hint=f"`upgrader resume {ctx.run_id}` {when}{still}",
    )


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _minutes(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def finish(ctx: RunContext) -> None:
    """The end of a run whose steps are all done: the pending undo actions, then finished."""
    run_pending_undo(ctx, reason="run finished")
    ctx.observe_cloud("end")
    ctx.journal.record(EventType.RUN_FINISHED, dry_run=ctx.dry_run)
    ctx.progress(f"[run] {ctx.run_id} finished")


def _run_step(ctx: RunContext, step: PlannedStep, n: int, attempt: int) -> None:
    tag = f"[step/{step.id}]"
    _gates(ctx, step, step.gates_before, "before")
    _snapshots(ctx, step)
    if step.undo and not ctx.dry_run:
        undo = _undo_step(ctx, step.id, step.undo) or ctx.undo_steps[step.undo]
        ctx.journal.record(
            EventType.UNDO_REGISTERED, step=step.id, undo_id=step.undo, description=undo.title
        )
    mark = marker(ctx.run_id, step.id, attempt)
    ctx.journal.record(
        EventType.STEP_STARTED,
        step=step.id,
        attempt=attempt,
        idempotent=step.idempotent,
        marker=mark,
        estimate=estimate(ctx, step),
        extent=dict(step.extent),
    )
    ctx.progress(f"{tag} started ({step.title})")
    started = ctx.clock()
    try:
        outcome = _perform(ctx, step, n, attempt, mark)
    except UpgraderError as exc:
        # The operator's line names the step, whatever failed inside it (oned, a host...),
        # and says how to go on.
        if not str(exc).startswith(f"step {step.id}"):
            exc.args = (f"step {step.id}: {exc}", *exc.args[1:])
        if "upgrader resume" not in (exc.hint or ""):
            then = f"`upgrader resume {ctx.run_id}`"
            exc.hint = f"{exc.hint}, then {then}" if exc.hint else f"fix the cause, then {then}"
        ctx.journal.record(
            EventType.STEP_FAILED, step=step.id, error=str(exc), evidence={"hint": exc.hint}
        )
        fail(ctx, str(exc))
        raise
    duration = round(ctx.clock() - started, 3)
    if isinstance(outcome, PlaybookOutcome) and outcome.status != "successful":
        evidence = {
            "status": outcome.status,
            "failures": list(outcome.failures),
            "rc": outcome.rc,
            "failed_hosts": list(outcome.failed_hosts),
            "unreachable_hosts": list(outcome.unreachable_hosts),
            "stdout_tail": list(outcome.stdout_tail),
        }
        ctx.journal.record(
            EventType.STEP_FAILED,
            step=step.id,
            error=outcome.status,
            evidence=evidence,
            duration=duration,
        )
        said = f": {_first(outcome.failures)}" if outcome.failures else ""
        error = PlaybookFailedError(
            f"step {step.id}: playbook {step.playbook} {outcome.status} (rc {outcome.rc})"
            f"{said}; failed hosts: "
            f"{', '.join(outcome.failed_hosts + outcome.unreachable_hosts) or '-'}",
            hint=f"see the step's output in {ctx.run_dir}, fix the cause, then "
            f"`upgrader resume {ctx.run_id}`",
        )
        fail(ctx, str(error))
        raise error
    result = _summary(outcome)
    ctx.journal.record(EventType.STEP_FINISHED, step=step.id, outcome=result, duration=duration)
    ctx.progress(f"{tag} finished in {duration:.1f} s")
    _undo_done_by(ctx, step)
    _gates(ctx, step, step.gates_after, "after")


def _undo_done_by(ctx: RunContext, step: PlannedStep) -> None:
    """A step that does a pending undo's work (release Puppet now) discharges that undo: the
    end of the run does not do it again. A crash before this record only means it is done
    twice, which such an undo allows (it is idempotent)."""
    if not step.does_undo or ctx.dry_run:
        return
    pending = {u.undo_id for u in replay(ctx.journal.events()).pending_undo}
    if step.does_undo in pending:
        ctx.journal.record(EventType.UNDO_DONE, undo_id=step.does_undo, done_by=step.id,
                           outcome={})
        ctx.progress(f"[undo/{step.does_undo}] done by {step.id}: not run again at the end")


def _first(failures: tuple[str, ...], limit: int = 600) -> str:
    """The first failed task's message (the cause; later ones are often its consequences)."""
    text = failures[0]
    more = f" (+{len(failures) - 1} more failed tasks)" if len(failures) > 1 else ""
    return (text if len(text) <= limit else text[: limit - 3] + "...") + more


def _perform(
    ctx: RunContext,
    step: PlannedStep | Step,
    n: int,
    attempt: int,
    mark: str,
    limit: str | None = None,
) -> PlaybookOutcome | Mapping[str, Any]:
    if step.kind == "action":
        action = ctx.actions.get(step.action or "")
        if action is None:
            raise UpgraderError(f"unknown action '{step.action}'")
        if ctx.dry_run:
            return {"would_run": step.action}
        return action(step, ctx)  # type: ignore[arg-type]
    step_id = getattr(step, "id", "undo")
    call = PlaybookCall(
        step_id=step_id,
        playbook=ctx.project_dir / str(step.playbook),
        project_dir=ctx.project_dir,
        inventory=ctx.inventory,
        private_data_dir=ctx.run_dir / "steps" / f"{n:02d}-{_slug(step_id)}" / f"attempt-{attempt}",
        extra_vars={
            **ctx.extra_vars,
            **dict(step.vars),
            "upgrader_run_id": ctx.run_id,
            "upgrader_state_dir": str(ctx.run_dir),  # what a step records for its undo
            # findings the operator accepted (--accept): a playbook may ask before refusing
            "upgrader_accepted": [f.key for f in ctx.plan.findings if f.accepted],
        },
        secret_vars=ctx.secret_vars,
        limit=limit if limit is not None else getattr(step, "limit", None),
        check=ctx.dry_run,
        diff=ctx.dry_run,
        marker=mark,
        vault_password_file=ctx.vault_password_file,
    )
    return ctx.run_playbook(
        call,
        progress=ctx.progress,
        cancel=ctx.cancel,
        on_event=lambda ev: _on_event(ctx, step_id, ev),
    )


def _on_event(ctx: RunContext, step_id: str, event: Mapping[str, Any]) -> None:
    name, host = event.get("event"), event.get("host")
    if name == "runner_on_unreachable" and host:
        ctx.unreachable.add(str(host))
    elif name in ("runner_on_ok", "runner_on_failed") and host:
        ctx.unreachable.discard(str(host))  # it answered
    if name in ("runner_on_failed", "runner_on_unreachable", "playbook_on_stats"):
        ctx.journal.record(EventType.NOTE, step=step_id, ansible=dict(event))


def _summary(outcome: PlaybookOutcome | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(outcome, PlaybookOutcome):
        return {
            "status": outcome.status,
            "rc": outcome.rc,
            "stats": dict(outcome.stats),
            "changed": [c.__dict__ if hasattr(c, "__dict__") else str(c) for c in outcome.changed],
            **({"data": dict(outcome.data)} if outcome.data else {}),
        }
    return dict(outcome)


def _snapshots(ctx: RunContext, step: PlannedStep) -> None:
    """Let the gates after ``step`` that compare before and after record the before.

    Taken once per step: a step resumed after a crash keeps the snapshot of its first start.
    """
    for spec in step.gates_after:
        take = getattr(ctx.gates.get(spec.name), "snapshot", None)
        key = (step.id, spec.name)
        if take is None or key in ctx.snapshots:
            continue
        data = take(spec, step)
        ctx.journal.record(EventType.SNAPSHOT, step=step.id, what=spec.name, data=data)
        ctx.snapshots[key] = data
        ctx.progress(f"[gate/{spec.name}] snapshot taken before {step.id}")


def _gates(ctx: RunContext, step: PlannedStep, specs: tuple[GateSpec, ...], phase: str) -> None:
    if specs:
        new_round = getattr(ctx.gates, "new_round", None)
        if new_round is not None:
            new_round([spec.name for spec in specs])  # the hosts are looked at again, once
    for spec in specs:
        gate = ctx.gates.get(spec.name)
        if gate is None:
            raise UpgraderError(f"step {step.id}: no gate called '{spec.name}'")
        if hasattr(gate, "snapshot"):
            before = ctx.snapshots.get((step.id, spec.name))
            result = gate(spec, step, before=before)  # type: ignore[call-arg]
        else:
            result = gate(spec, step)
        ctx.journal.record(
            EventType.GATE_VERDICT,
            step=step.id,
            gate=spec.name,
            phase=phase,
            verdict=result.verdict,
            evidence=dict(result.evidence),
            hint=result.hint,
        )
        ctx.progress(f"[gate/{spec.name}] {result.verdict.upper()} {phase} {step.id}")
        if result.verdict != PASS:
            message = (
                f"gate {spec.name} {result.verdict} {phase} step {step.id}: "
                f"{result.evidence.get('summary', '')}"
            ).rstrip(": ")
            fail(ctx, message)
            raise GateFailedError(message, hint=result.hint or None)


def fail(ctx: RunContext, reason: str) -> None:
    """Undo what the run registered (rolling back, before the point of no return), then
    journal the failure."""
    run_pending_undo(ctx, reason="run failed", failed=True)
    ctx.observe_cloud("end")
    ctx.journal.record(
        EventType.RUN_FAILED,
        reason=reason,
        hint=f"fix the cause, then `upgrader resume {ctx.run_id}`",
    )


def abort(ctx: RunContext, reason: str) -> None:
    """Stop at this safe point and undo what the run registered."""
    run_pending_undo(ctx, reason=reason, failed=True)
    ctx.observe_cloud("end")
    ctx.journal.record(EventType.RUN_ABORTED, reason=reason)
    ctx.progress(f"[run] {ctx.run_id} aborted: {reason}")


def run_pending_undo(ctx: RunContext, *, reason: str, failed: bool = False) -> None:
    """Run every registered, not yet done undo action, newest first; journal each.

    Rollback undos (restore the old database...) run only for a failure before the point
    of no return that follows the step which registered them (its hop's database upgrade)
    has succeeded; after it, or at the end of a good run, they are left.
    """
    state = replay(ctx.journal.events())
    limits = {s.id: s.limit for s in ctx.plan.steps}
    for undo in state.pending_undo:
        step = _undo_step(ctx, undo.step, undo.undo_id)
        if step is None:
            continue
        ponr = _guarding_point(ctx.plan, undo.step)
        passed_ponr = ponr is not None and state.step_status.get(ponr) == StepStatus.SUCCEEDED
        if step.rollback and (not failed or passed_ponr):
            why = "the run finished" if not failed else f"{ponr} (point of no return) is done"
            ctx.progress(f"[undo/{undo.undo_id}] not run: {why}")
            continue
        ctx.journal.record(EventType.UNDO_STARTED, undo_id=undo.undo_id, reason=reason)
        ctx.progress(f"[undo/{undo.undo_id}] {step.title} ({reason})")
        try:
            outcome = _perform(
                ctx, step, 99, 1, marker(ctx.run_id, undo.undo_id, 1), limit=limits.get(undo.step)
            )
        except UpgraderError as exc:
            ctx.journal.record(EventType.UNDO_FAILED, undo_id=undo.undo_id, error=str(exc))
            continue
        ok = not isinstance(outcome, PlaybookOutcome) or outcome.status == "successful"
        ctx.journal.record(
            EventType.UNDO_DONE if ok else EventType.UNDO_FAILED,
            undo_id=undo.undo_id,
            outcome=_summary(outcome),
        )


def _undo_step(ctx: RunContext, registered_by: str | None, undo_id: str) -> Step | None:
    """The undo step ``undo_id`` of the hop of the step that registered it: two hops'
    runbooks define restore-frontend, each with its own previous version."""
    hop = (registered_by or "").partition("/")[0]
    return ctx.undo_steps.get(f"{hop}/{undo_id}") or ctx.undo_steps.get(undo_id)


def _guarding_point(plan: Plan, step_id: str) -> str | None:
    """The first point-of-no-return step after ``step_id`` in the plan (None: there is none,
    or ``step_id`` is not in the plan)."""
    ids = [s.id for s in plan.steps]
    if step_id not in ids:
        return plan.point_of_no_return
    after = plan.steps[ids.index(step_id) + 1 :]
    return next((s.id for s in after if s.point_of_no_return), None)
