"""Undo actions: the "back to how it was" half of a maintenance pair, newest first.

A step registers its undo before it starts; undos run when the run fails or is aborted, and at
the end of a good run. Rollback undos (restore the old database) run only for a failure before
the hop's point of no return."""

from __future__ import annotations

from typing import TYPE_CHECKING

from upgrader.ansible_adapter.outcome import PlaybookOutcome
from upgrader.errors import (
    UpgraderError,
)
from upgrader.journal.store import EventType, StepStatus, replay
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Step
from upgrader.run.context import RunContext, marker
from upgrader.run.perform import outcome_summary, perform

if TYPE_CHECKING:
    pass


def discharge_undo(ctx: RunContext, step: PlannedStep) -> None:
    """A step that does a pending undo's work (release Puppet now) discharges that undo: the
    end of the run does not do it again. A crash before this record only means it is done
    twice, which such an undo allows (it is idempotent)."""
    if not step.does_undo or ctx.dry_run:
        return
    pending = {u.undo_id for u in replay(ctx.journal.events()).pending_undo}
    if step.does_undo in pending:
        ctx.journal.record(EventType.UNDO_DONE, undo_id=step.does_undo, done_by=step.id, outcome={})
        ctx.progress(f"[undo/{step.does_undo}] done by {step.id}: not run again at the end")


def run_pending_undo(ctx: RunContext, *, reason: str, failed: bool = False) -> None:
    """Run every registered, not yet done undo action, newest first; journal each.

    Rollback undos (restore the old database...) run only for a failure before the point
    of no return that follows the step which registered them (its hop's database upgrade)
    has succeeded; after it, or at the end of a good run, they are left.
    """
    state = replay(ctx.journal.events())
    limits = {s.id: s.limit for s in ctx.plan.steps}
    for undo in state.pending_undo:
        step = undo_step(ctx, undo.step, undo.undo_id)
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
            planned = _as_planned(step, limits.get(undo.step))
            outcome = perform(ctx, planned, 99, 1, marker(ctx.run_id, undo.undo_id, 1))
        except UpgraderError as exc:
            ctx.journal.record(EventType.UNDO_FAILED, undo_id=undo.undo_id, error=str(exc))
            continue
        ok = not isinstance(outcome, PlaybookOutcome) or outcome.status == "successful"
        ctx.journal.record(
            EventType.UNDO_DONE if ok else EventType.UNDO_FAILED,
            undo_id=undo.undo_id,
            outcome=outcome_summary(outcome),
        )


def _as_planned(step: Step, limit: str | None) -> PlannedStep:
    """An undo step as actions and plays see every step: the hosts of the step that
    registered it (``limit``), no hop of its own, no batch, no gates."""
    return PlannedStep(
        id=step.id,
        hop="",
        step=step.id,
        title=step.title,
        kind=step.kind,
        playbook=step.playbook,
        action=step.action,
        target=step.target,
        hosts=(),
        limit=limit,
        estimate=step.estimate,
        idempotent=step.idempotent,
        undo=None,
        point_of_no_return=False,
        gates_before=(),
        gates_after=(),
        vars=step.vars,
    )


def undo_step(ctx: RunContext, registered_by: str | None, undo_id: str) -> Step | None:
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
