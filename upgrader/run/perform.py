"""Doing one step: an orchestrator action or a playbook run, with its events journaled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.errors import (
    UpgraderError,
)
from upgrader.journal.store import EventType
from upgrader.plan.model import PlannedStep
from upgrader.run.context import RunContext
from upgrader.text import slug

if TYPE_CHECKING:
    pass


def first_failure(failures: tuple[str, ...], limit: int = 600) -> str:
    """The first failed task's message (the cause; later ones are often its consequences)."""
    text = failures[0]
    more = f" (+{len(failures) - 1} more failed tasks)" if len(failures) > 1 else ""
    return (text if len(text) <= limit else text[: limit - 3] + "...") + more


def perform(
    ctx: RunContext,
    step: PlannedStep,
    n: int,
    attempt: int,
    mark: str,
) -> PlaybookOutcome | Mapping[str, Any]:
    """Run the step's action (nothing in a dry run) or its playbook (check mode in one)."""
    if step.kind == "action":
        action = ctx.actions.get(step.action or "")
        if action is None:
            raise UpgraderError(f"unknown action '{step.action}'")
        if ctx.dry_run:
            return {"would_run": step.action}
        return action(step, ctx)
    step_id = step.id
    call = PlaybookCall(
        step_id=step_id,
        playbook=ctx.project_dir / str(step.playbook),
        project_dir=ctx.project_dir,
        inventory=ctx.inventory,
        private_data_dir=ctx.run_dir / "steps" / f"{n:02d}-{slug(step_id)}" / f"attempt-{attempt}",
        extra_vars={
            **ctx.extra_vars,
            **dict(step.vars),
            "upgrader_run_id": ctx.run_id,
            "upgrader_state_dir": str(ctx.run_dir),  # what a step records for its undo
            # findings the operator accepted (--accept): a playbook may ask before refusing
            "upgrader_accepted": [f.key for f in ctx.plan.findings if f.accepted],
        },
        secret_vars=ctx.secret_vars,
        limit=step.limit,
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


def outcome_summary(outcome: PlaybookOutcome | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(outcome, PlaybookOutcome):
        return {
            "status": outcome.status,
            "rc": outcome.rc,
            "stats": dict(outcome.stats),
            "changed": [c.__dict__ if hasattr(c, "__dict__") else str(c) for c in outcome.changed],
            **({"data": dict(outcome.data)} if outcome.data else {}),
        }
    return dict(outcome)
