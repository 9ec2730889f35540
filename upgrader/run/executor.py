"""Walk a plan: gates before, the step, gates after; journal every transition first.

The executor receives its collaborators (journal, playbook runner, gates, actions,
progress sink, clock) as arguments, so tests hand in real or recorded ones. Undo actions a
step registers run, newest first, when the run fails or is aborted, and at the end of a
successful run (they are the "back to how it was" half of a maintenance pair: Pacemaker
out of maintenance mode, Puppet released, a host re-enabled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from upgrader.ansible_adapter.outcome import PlaybookOutcome
from upgrader.errors import (
    GateFailedError,
    PlaybookFailedError,
    UpgraderError,
    WindowClosedError,
)
from upgrader.gates.model import PASS, ComparingGate
from upgrader.journal.store import EventType, replay
from upgrader.plan.estimates import unit_of
from upgrader.plan.model import PlannedStep
from upgrader.plan.runbook_model import GateSpec
from upgrader.run.context import STOP_REQUESTED, RunContext, marker
from upgrader.run.perform import first_failure, outcome_summary, perform
from upgrader.run.undo import discharge_undo, run_pending_undo, undo_step
from upgrader.text import format_duration, format_instant
from upgrader.windows.window import fits

if TYPE_CHECKING:
    pass


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
    reason = (
        f"the window closes at {format_instant(ctx.window.end)} (in {format_duration(left)}); "
        f"{what} needs about {format_duration(need)}"
    )
    pause(
        ctx,
        step,
        reason,
        window=ctx.window.as_dict(),
        need=round(need, 1),
        left=round(max(left, 0.0), 1),
    )


def pause(ctx: RunContext, step: PlannedStep, reason: str, **fields: Any) -> None:
    """Journal the pause before ``step`` (a safe point) and stop the run with exit 3; the
    hint says when and how it goes on, and what stays held until then."""
    later = ctx.next_window(ctx.now())
    held = [u.description for u in replay(ctx.journal.events()).pending_undo]
    ctx.observe_cloud("end")
    ctx.journal.record(
        EventType.RUN_PAUSED,
        reason=reason,
        next_step=step.id,
        next_window=later.as_dict() if later else None,
        held=held,
        **fields,
    )
    ctx.progress(f"[run] {ctx.run_id} paused before {step.id}: {reason}")
    when = (
        f"in the next window (opens {later.start.isoformat(timespec='minutes')})"
        if later
        else "in a window (`--window now+2h` declares one)"
    )
    still = f"; until then these stay as they are: {'; '.join(held)}" if held else ""
    raise WindowClosedError(
        f"paused before {step.id}: {reason}",
        hint=f"`upgrader resume {ctx.run_id}` {when}{still}",
    )


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
        undo = undo_step(ctx, step.id, step.undo) or ctx.undo_steps[step.undo]
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
        outcome = perform(ctx, step, n, attempt, mark)
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
        said = f": {first_failure(outcome.failures)}" if outcome.failures else ""
        error = PlaybookFailedError(
            f"step {step.id}: playbook {step.playbook} {outcome.status} (rc {outcome.rc})"
            f"{said}; failed hosts: "
            f"{', '.join(outcome.failed_hosts + outcome.unreachable_hosts) or '-'}",
            hint=f"see the step's output in {ctx.run_dir}, fix the cause, then "
            f"`upgrader resume {ctx.run_id}`",
        )
        fail(ctx, str(error))
        raise error
    result = outcome_summary(outcome)
    ctx.journal.record(EventType.STEP_FINISHED, step=step.id, outcome=result, duration=duration)
    ctx.progress(f"{tag} finished in {duration:.1f} s")
    discharge_undo(ctx, step)
    _gates(ctx, step, step.gates_after, "after")


def _snapshots(ctx: RunContext, step: PlannedStep) -> None:
    """Let the gates after ``step`` that compare before and after record the before.

    Taken once per step: a step resumed after a crash keeps the snapshot of its first start.
    """
    for spec in step.gates_after:
        gate = ctx.gates.get(spec.name)
        key = (step.id, spec.name)
        if not isinstance(gate, ComparingGate) or key in ctx.snapshots:
            continue
        data = gate.snapshot(spec, step)
        ctx.journal.record(EventType.SNAPSHOT, step=step.id, what=spec.name, data=data)
        ctx.snapshots[key] = data
        ctx.progress(f"[gate/{spec.name}] snapshot taken before {step.id}")


def _gates(ctx: RunContext, step: PlannedStep, specs: tuple[GateSpec, ...], phase: str) -> None:
    if specs:
        ctx.gates.new_round([spec.name for spec in specs])  # the hosts are looked at again, once
    for spec in specs:
        gate = ctx.gates.get(spec.name)
        if gate is None:
            raise UpgraderError(f"step {step.id}: no gate called '{spec.name}'")
        if isinstance(gate, ComparingGate):
            result = gate(spec, step, before=ctx.snapshots.get((step.id, spec.name)))
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
