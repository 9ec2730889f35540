"""``upgrader resume``: continue a paused, failed or interrupted run from its journal.

Resume rebuilds the plan from the journal and refuses when the runbooks, playbooks, target or
inventory changed; it first kills what an interrupted step left running and takes again what
the failed run's undo gave back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from upgrader.ansible_adapter.runner import kill_marked
from upgrader.config.workspace import Workspace, workspace
from upgrader.errors import UsageError
from upgrader.journal.store import (
    EventType,
    Journal,
    ResumeAction,
    read_events,
    redo_plan,
    replay,
    resume_decision,
)
from upgrader.plan.targets import runbooks_for
from upgrader.run.context import client_for, limit, run_context, sigterm_pauses
from upgrader.run.executor import execute, finish
from upgrader.run.lock import LOCK_EXPIRY, RunLock, read_lock
from upgrader.run.prepare import fingerprints, plan_from_dict
from upgrader.run.status import find_run
from upgrader.windows import choose as run_window


def refuse_dry_run(state: Any, what: str) -> None:
    if state.dry_run:
        raise UsageError(
            f"run {state.run_id} is a dry run: it changed nothing, so there is nothing to {what}",
            hint=f"`upgrader run {state.target} --dry-run` rehearses again; "
            f"`upgrader run {state.target}` does it",
        )


def resume_run(
    ws: Workspace,
    run_id: str | None,
    *,
    yes: bool,
    take_over: bool,
    progress: Callable[[str], None] = print,
    window_spec: str | None = None,
) -> str:
    """Continue a paused, failed or interrupted run from its journal (inside a window)."""
    run_dir = find_run(ws, run_id, real_only=True)
    state = replay(read_events(run_dir / "journal.jsonl"))
    refuse_dry_run(state, "resume")
    if state.environment != ws.env.name:
        ws = workspace(ws.site.path, state.environment)
    plan = plan_from_dict(state.plan)
    runbooks = runbooks_for(ws.site, plan.hops)
    _, fingerprint = fingerprints(ws, plan.hops, plan.target_version, runbooks)
    decision = resume_decision(state, fingerprint=fingerprint, accept_rerun=yes)
    if decision.action == ResumeAction.NOTHING_TO_DO:
        progress(f"[run] {state.run_id} already finished")
        return state.run_id
    if decision.action == ResumeAction.ASK_OPERATOR:
        raise UsageError(
            f"step {decision.step} was interrupted and is not idempotent: check "
            "what it did on the cloud before running it again",
            hint=f"upgrader resume {state.run_id} --yes runs it again",
        )
    # what the failed run's undo gave back (holds, suspended VMs) is taken again first
    start, redo = redo_plan(state, decision.step)
    window = run_window.choose(ws, window_spec, run_window.now(), f"resume {state.run_id}")
    holder = read_lock(ws.lock_dir, ws.env.name)
    own_stale = holder is not None and holder.run_id == state.run_id
    lock = RunLock.acquire(
        ws.lock_dir,
        ws.env.name,
        state.run_id,
        expiry_seconds=LOCK_EXPIRY,
        take_over=take_over or own_stale,
    )
    try:
        journal = Journal.open(run_dir)
        if lock.previous is not None:
            journal.record(
                EventType.NOTE,
                text=f"took over the lock of run {lock.previous.run_id} (pid {lock.previous.pid})",
            )
        killed = kill_leftovers(journal)
        if killed:
            journal.record(
                EventType.NOTE,
                text=f"killed {len(killed)} processes left by the interrupted step",
                pids=killed,
            )
        journal.record(
            EventType.RUN_RESUMED,
            fingerprint=fingerprint,
            step=start,
            rerun=decision.rerun,
            accepted_rerun=yes,
            redo=list(redo),
            window=run_window.window_dict(window),
        )
        run_window.record(journal, window, window_spec, "resume", progress)
        progress(
            f"[run] {state.run_id} resumes at {start or 'the end'}"
            + (f", after taking again {', '.join(redo)}" if redo else "")
        )
        client = client_for(ws.env)
        ctx = run_context(ws, client, plan, runbooks, journal, state.run_id, False, progress)
        ctx.snapshots.update(state.snapshots)
        limit(ctx, ws, window)
        if decision.step is None:  # every step is done: only the end of the run is left
            finish(ctx)
        else:
            with sigterm_pauses():
                execute(ctx, start_at=start, attempt_of=dict(state.attempts), redo=redo)
    finally:
        lock.release()
    return state.run_id


def kill_leftovers(journal: Journal) -> list[int]:
    killed: list[int] = []
    for event in journal.events():
        if event.type == EventType.STEP_STARTED and event.get("marker"):
            killed += kill_marked(event.get("marker"))
    return killed
