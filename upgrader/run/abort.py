"""``upgrader abort``: stop a running run at its next safe point, or undo a stopped one now."""

from __future__ import annotations

import time
from collections.abc import Callable

from upgrader.config.workspace import Workspace
from upgrader.errors import UsageError
from upgrader.journal.store import (
    EventType,
    Journal,
    RunStatus,
    read_events,
    replay,
)
from upgrader.plan.targets import runbooks_for
from upgrader.run.context import ABORT_FILE, client_for, run_context
from upgrader.run.lock import LOCK_EXPIRY, RunLock, read_lock, stale_reason
from upgrader.run.prepare import plan_from_dict
from upgrader.run.resume import kill_leftovers, refuse_dry_run
from upgrader.run.status import find_run
from upgrader.run.undo import run_pending_undo


def abort_run(ws: Workspace, run_id: str, progress: Callable[[str], None] = print) -> str:
    """Ask a running run to stop at its next safe point; undo a stopped one now."""
    run_dir = find_run(ws, run_id)
    state = replay(read_events(run_dir / "journal.jsonl"))
    refuse_dry_run(state, "abort")
    if state.status in (RunStatus.SUCCEEDED, RunStatus.ABORTED):
        raise UsageError(f"run {run_id} is {state.status.value}: nothing to abort")
    holder = read_lock(ws.lock_dir, state.environment)
    if holder is not None and holder.run_id == run_id and stale_reason(holder, time.time()) is None:
        (run_dir / ABORT_FILE).write_text(f"{time.time()}\n")
        return f"run {run_id} (pid {holder.pid}) will stop at its next safe point and undo"
    lock = RunLock.acquire(
        ws.lock_dir,
        state.environment,
        run_id,
        expiry_seconds=LOCK_EXPIRY,
        take_over=holder is not None and holder.run_id == run_id,
    )
    try:
        journal = Journal.open(run_dir)
        kill_leftovers(journal)
        plan = plan_from_dict(state.plan)
        runbooks = runbooks_for(ws.site, plan.hops)
        ctx = run_context(ws, client_for(ws.env), plan, runbooks, journal, run_id, False, progress)
        journal.record(EventType.RUN_ABORT_REQUESTED, reason="upgrader abort")
        run_pending_undo(ctx, reason="aborted", failed=True)
        journal.record(EventType.RUN_ABORTED, reason="upgrader abort")
    finally:
        lock.release()
    return f"run {run_id} aborted; its undo actions ran"
