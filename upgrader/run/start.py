"""Plan, start, resume, inspect and abort runs: the layer between the CLI and the core.

It opens the site config, the cloud's client and the runbooks, asks the pure planner for
the plan, takes the environment's run lock, creates the journal and hands everything to
the executor. Resume rebuilds the plan from the journal and refuses when the runbooks,
playbooks, target or inventory changed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from upgrader.config.workspace import Workspace
from upgrader.errors import InhibitedError, UsageError
from upgrader.journal.store import (
    EventType,
    Journal,
)
from upgrader.plan import rehearsal
from upgrader.plan.model import Plan
from upgrader.run.context import (
    client_for,
    estimates,
    limit,
    record_cloud,
    run_context,
    sigterm_pauses,
)
from upgrader.run.executor import execute
from upgrader.run.lock import LOCK_EXPIRY, RunLock
from upgrader.run.prepare import prepare_plan
from upgrader.windows import choose as run_window
from upgrader.windows.window import Window


def new_run_id(environment: str) -> str:
    """``production-20261123T220501-3fa2``."""
    return f"{environment}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


@dataclass
class StartOptions:
    """What ``upgrader run`` was asked to do."""

    target: str
    dry_run: bool = False
    accept: Sequence[str] = ()
    take_over: bool = False
    without_rehearsal: str | None = None  # the operator's reason for skipping staging
    progress: Callable[[str], None] = print
    confirm: Callable[[Plan], bool] = lambda plan: True
    window: str | None = None  # --window SPEC: an ad-hoc maintenance window


def start_run(ws: Workspace, opts: StartOptions) -> str:
    """Plan, lock, journal and execute; returns the run id.

    A dry run is ``upgrader.run.dryrun.start`` (no lock, no step run), which builds on this
    module; its verdict is in its journal and in what it returns."""
    if opts.dry_run:
        raise UsageError("start_run does not do dry runs", hint="call upgrader.run.dryrun.start")
    window = run_window.choose(ws, opts.window, run_window.now(), f"run {opts.target}")
    client = client_for(ws.env)
    plan, runbooks = prepare_plan(
        ws, client, opts.target, opts.accept, without_rehearsal=opts.without_rehearsal
    )
    if plan.inhibitors:
        first = plan.inhibitors[0]
        raise InhibitedError(
            f"{len(plan.inhibitors)} inhibitor(s) block the run: "
            + "; ".join(f"{f.key}: {f.message}" for f in plan.inhibitors),
            hint=first.remediation,
        )
    if not opts.confirm(plan):
        raise UsageError(
            "not confirmed: nothing was changed", hint="pass --yes to skip the question"
        )
    run_id = new_run_id(ws.env.name)
    lock = RunLock.acquire(
        ws.lock_dir, ws.env.name, run_id, expiry_seconds=LOCK_EXPIRY, take_over=opts.take_over
    )
    try:
        figures = estimates(ws, plan, run_id)
        journal = open_journal(ws, run_id, plan, dry_run=False, window=window, estimates=figures)
        run_window.record(journal, window, opts.window, "run", opts.progress)
        if lock.previous is not None:
            journal.record(
                EventType.NOTE,
                text=f"took over the stale lock of run "
                f"{lock.previous.run_id} (pid {lock.previous.pid})",
            )
        record_accepted(journal, plan, opts.without_rehearsal)
        opts.progress(
            f"[run] {run_id}: {len(plan.steps)} steps, {plan.current_version} -> "
            f"{plan.target_version} on {ws.env.name}"
        )
        ctx = run_context(ws, client, plan, runbooks, journal, run_id, False, opts.progress)
        limit(ctx, ws, window, figures)
        record_cloud(journal, client, "start")
        with sigterm_pauses():
            execute(ctx)
    finally:
        lock.release()
    return run_id


def open_journal(
    ws: Workspace,
    run_id: str,
    plan: Plan,
    *,
    dry_run: bool,
    window: Window | None,
    estimates: Mapping[str, float],
    command: str | None = None,
) -> Journal:
    """Create the journal of run (or dry run) ``run_id`` and record its ``run_started``."""
    journal = Journal.create(ws.site.runs_dir / run_id, run_id)
    record_started(
        journal, plan, dry_run=dry_run, window=window, estimates=estimates, command=command
    )
    return journal


def record_started(
    journal: Journal,
    plan: Plan,
    *,
    dry_run: bool,
    window: Window | None = None,
    estimates: Mapping[str, float] | None = None,
    command: str | None = None,
) -> None:
    """Record ``run_started``: the plan, its fingerprints, the window and the estimates; a dry
    run also the ``upgrader run`` command line it stands for."""
    journal.record(
        EventType.RUN_STARTED,
        run_id=journal.run_id,
        environment=plan.environment,
        target=plan.target_version,
        fingerprint=plan.resume_fingerprint,
        identity=plan.fingerprint,
        plan=plan.to_dict(),
        dry_run=dry_run,
        **({} if command is None else {"command": command}),
        window=run_window.window_dict(window),
        estimates=estimates,
    )


def record_accepted(journal: Journal, plan: Plan, without_rehearsal: str | None) -> None:
    """Journal each finding the operator accepted, and how: ``--accept``, or for the missing
    staging rehearsal ``--without-rehearsal`` and its reason."""
    for f in plan.findings:
        if f.accepted:
            reason = (
                f"--without-rehearsal: {without_rehearsal}"
                if f.key == rehearsal.KEY
                else "--accept"
            )
            journal.record(EventType.FINDING_ACCEPTED, key=f.key, reason=reason)
