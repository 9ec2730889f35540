"""Plan, start, resume, inspect and abort runs: the layer between the CLI and the core.

It opens the site config, the cloud's client and the runbooks, asks the pure planner for
the plan, takes the environment's run lock, creates the journal and hands everything to
the executor. Resume rebuilds the plan from the journal and refuses when the runbooks,
playbooks, target or inventory changed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from upgrader.actions import build_actions
from upgrader.ansible_adapter.runner import kill_marked, run_playbook
from upgrader.config.site import (
    PROJECT_DIR,
    Environment,
    SiteConfig,
    find_config,
    load_config,
    read_credentials,
)
from upgrader.errors import InhibitedError, JournalError, UsageError
from upgrader.gates.catalogue import build_gates
from upgrader.gates.gather import HostObserver
from upgrader.journal.store import (
    EventType,
    Journal,
    ResumeAction,
    RunStatus,
    read_events,
    redo_plan,
    replay,
    resume_decision,
)
from upgrader.opennebula import OneClient
from upgrader.plan import rehearsal
from upgrader.plan.facts import gather_facts
from upgrader.plan.planner import CloudFacts, Finding, Plan, PlannedStep, _digest, build_plan
from upgrader.plan.runbook import GateSpec, Runbook, Step
from upgrader.plan.targets import playbook_digests, runbooks_for, storage_hop, target_of
from upgrader.plan.versions import hop_path
from upgrader.run import window as run_window
from upgrader.run.executor import RunContext, execute, finish, run_pending_undo
from upgrader.run.lock import RunLock, read_lock, stale_reason

LOCK_EXPIRY = 12 * 3600.0
ABORT_FILE = "abort-requested"


@dataclass(frozen=True)
class Workspace:
    """The site config and the environment a command works on."""

    site: SiteConfig
    env: Environment

    @property
    def lock_dir(self) -> Path:
        """Where the environments' run locks live."""
        return self.site.runs_dir / "locks"


def workspace(config: Path | None, environment: str) -> Workspace:
    """Find and load the site config, and pick the environment."""
    path = find_config(config, environ=os.environ, cwd=Path.cwd())
    site = load_config(path)
    return Workspace(site, site.environment(environment))


def client_for(env: Environment) -> OneClient:
    """A client for the environment's oned, logged in with its credentials file."""
    return OneClient(env.oned, read_credentials(env), timeout=env.oned_timeout,
                     timeout_setting=f"environments.{env.name}.oned_timeout")


def fingerprints(
    ws: Workspace,
    hops: Sequence[tuple[str, str]],
    target: str,
    runbooks: Mapping[tuple[str, str], Runbook],
) -> tuple[str, str]:
    """(plan identity across environments, resume fingerprint of this environment)."""
    identity = _digest(
        target_of(hops, target),
        [(hop, runbooks[hop].digest) for hop in hops],
        sorted(playbook_digests(ws.site, runbooks).items()),
    )
    inventory = (
        hashlib.sha256(ws.env.inventory.read_bytes()).hexdigest()
        if ws.env.inventory.is_file()
        else ""
    )
    return identity, _digest(identity, ws.env.name, inventory)


def prepare_plan(
    ws: Workspace,
    client: OneClient,
    target: str,
    accepted: Sequence[str] = (),
    without_rehearsal: str | None = None,
    *,
    facts: CloudFacts | None = None,
) -> tuple[Plan, dict[tuple[str, str], Runbook]]:
    """Facts -> plan, checked against the gates this site knows and the rehearsal rule.

    ``facts`` gathered by the caller (a dry run shows the VMs of the very same look)."""
    if facts is None:
        facts = gather_facts(client, ws.env.name, ws.env.inventory)
    move = storage_hop(ws.site, target)
    hops = (move,) if move else hop_path(facts.version, target)
    runbooks = runbooks_for(ws.site, hops)
    plan = build_plan(
        facts,
        target,
        runbooks,
        playbook_digests=playbook_digests(ws.site, runbooks),
        batch_size=ws.env.batch_size,
        accepted=accepted,
        hops=hops if move else None,
    )
    identity, resume = fingerprints(ws, hops, target, runbooks)
    plan = Plan(
        **{
            **{f.name: getattr(plan, f.name) for f in fields(plan)},
            "fingerprint": identity,
            "resume_fingerprint": resume,
        }
    )
    plan = rehearsal.check(
        plan, ws.site.runs_dir, ws.env.requires_rehearsal_on, waived=without_rehearsal
    )
    known = build_gates(client, observer=observer(ws))
    for step in plan.steps:
        for gate in (*step.gates_before, *step.gates_after):
            if gate.name not in known:
                raise UsageError(
                    f"step {step.id} names gate '{gate.name}', which upgrader does "
                    f"not have (known: {', '.join(sorted(known))})"
                )
    return plan, runbooks


def observer(ws: Workspace) -> HostObserver:
    """The host-side observer of the environment (the tool's own gather play)."""
    return HostObserver(ws.env.inventory, PROJECT_DIR / "playbooks",
                        vault_password_file=ws.env.vault_password_file)


def undo_steps(runbooks: Mapping[Any, Runbook]) -> dict[str, Step]:
    """The undo-only steps, by ``<hop>/<id>`` (each hop's runbook has its own
    restore-frontend, with its own versions) and by bare id for the last hop."""
    out: dict[str, Step] = {}
    for hop, rb in runbooks.items():
        for s in rb.steps:
            if s.undo_only:
                out[f"{'-'.join(hop)}/{s.id}"] = out[s.id] = s
    return out


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

    A dry run goes to ``upgrader.run.dryrun`` (no lock, no step run); its verdict is in its
    journal and in what ``dryrun.start`` returns."""
    if opts.dry_run:
        from upgrader.run import dryrun  # noqa: PLC0415 - dryrun builds on this module

        return dryrun.start(ws, opts).run_id
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
        figures = run_window.estimates(ws, plan, run_id)
        journal = Journal.create(ws.site.runs_dir / run_id, run_id)
        journal.record(
            EventType.RUN_STARTED,
            run_id=run_id,
            environment=ws.env.name,
            target=plan.target_version,
            fingerprint=plan.resume_fingerprint,
            identity=plan.fingerprint,
            plan=plan.to_dict(),
            dry_run=False,
            window=run_window.window_dict(window),
            estimates=figures,
        )
        run_window.record(journal, window, opts.window, "run", opts.progress)
        if lock.previous is not None:
            journal.record(
                EventType.NOTE,
                text=f"took over the stale lock of run "
                f"{lock.previous.run_id} (pid {lock.previous.pid})",
            )
        for f in plan.findings:
            if f.accepted:
                reason = accepted_reason(f, opts.without_rehearsal)
                journal.record(EventType.FINDING_ACCEPTED, key=f.key, reason=reason)
        opts.progress(
            f"[run] {run_id}: {len(plan.steps)} steps, {plan.current_version} -> "
            f"{plan.target_version} on {ws.env.name}"
        )
        ctx = run_context(ws, client, plan, runbooks, journal, run_id, False, opts.progress)
        run_window.limit(ctx, ws, window, figures)
        run_window.record_cloud(journal, client, "start")
        with run_window.sigterm_pauses():
            execute(ctx)
    finally:
        lock.release()
    return run_id


def accepted_reason(finding: Finding, without_rehearsal: str | None) -> str:
    """How the operator accepted ``finding``, as the journal says it."""
    if finding.key == rehearsal.KEY:
        return f"--without-rehearsal: {without_rehearsal}"
    return "--accept"


def run_context(
    ws: Workspace,
    client: OneClient,
    plan: Plan,
    runbooks: Mapping[Any, Runbook],
    journal: Journal,
    run_id: str,
    dry_run: bool,
    progress: Callable[[str], None],
) -> RunContext:
    return RunContext(
        plan=plan,
        run_id=run_id,
        run_dir=ws.site.runs_dir / run_id,
        journal=journal,
        run_playbook=run_playbook,
        project_dir=ws.site.playbooks_dir,
        inventory=ws.env.inventory,
        gates=build_gates(client, progress, observer(ws), run_id=run_id),
        actions=build_actions(client),
        undo_steps=undo_steps(runbooks),
        dry_run=dry_run,
        progress=progress,
        abort_file=ws.site.runs_dir / run_id / ABORT_FILE,
        vault_password_file=ws.env.vault_password_file,
        observe_cloud=lambda when: run_window.record_cloud(journal, client, when),
    )


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Rebuild the plan journaled at run start."""
    steps = []
    for raw in data["steps"]:
        s = dict(raw)
        for key in ("gates_before", "gates_after"):
            s[key] = tuple(GateSpec(g["name"], g.get("params", {})) for g in s[key])
        s["hosts"] = tuple(s["hosts"])
        steps.append(PlannedStep(**s))
    values = {f.name: data[f.name] for f in fields(Plan) if f.name in data}
    values["steps"] = tuple(steps)
    values["hops"] = tuple(tuple(h) for h in data["hops"])
    values["findings"] = ()
    return Plan(**values)


def find_run(ws: Workspace, run_id: str | None, *, real_only: bool = False) -> Path:
    """The run directory of ``run_id``, or of the newest run of the environment (the newest
    real one with ``real_only``: a dry run is nothing to resume)."""
    runs = ws.site.runs_dir
    if run_id:
        path = runs / run_id
        if not (path / "journal.jsonl").is_file():
            raise UsageError(f"no run '{run_id}' in {runs}", hint="upgrader status lists the runs")
        return path
    candidates = sorted(
        (p for p in runs.glob(f"{ws.env.name}-*") if (p / "journal.jsonl").is_file()),
        key=lambda p: p.name,
    )
    if real_only:
        candidates = [p for p in candidates if not _is_dry_run(p)]
    if not candidates:
        raise UsageError(f"no run of {ws.env.name} in {runs}", hint="upgrader run TARGET")
    return candidates[-1]


def _is_dry_run(run_dir: Path) -> bool:
    try:
        events = read_events(run_dir / "journal.jsonl")
    except JournalError:
        return False  # resume says what is wrong with it
    return bool(events) and bool(events[0].get("dry_run"))


def _refuse_dry_run(state: Any, what: str) -> None:
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
    _refuse_dry_run(state, "resume")
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
        killed = _kill_leftovers(journal)
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
        progress(f"[run] {state.run_id} resumes at {start or 'the end'}"
                 + (f", after taking again {', '.join(redo)}" if redo else ""))
        client = client_for(ws.env)
        ctx = run_context(ws, client, plan, runbooks, journal, state.run_id, False, progress)
        ctx.snapshots.update(state.snapshots)
        run_window.limit(ctx, ws, window)
        if decision.step is None:  # every step is done: only the end of the run is left
            finish(ctx)
        else:
            with run_window.sigterm_pauses():
                execute(ctx, start_at=start, attempt_of=dict(state.attempts), redo=redo)
    finally:
        lock.release()
    return state.run_id


def _kill_leftovers(journal: Journal) -> list[int]:
    killed: list[int] = []
    for event in journal.events():
        if event.type == EventType.STEP_STARTED and event.get("marker"):
            killed += kill_marked(event.get("marker"))
    return killed


def abort_run(ws: Workspace, run_id: str, progress: Callable[[str], None] = print) -> str:
    """Ask a running run to stop at its next safe point; undo a stopped one now."""
    run_dir = find_run(ws, run_id)
    state = replay(read_events(run_dir / "journal.jsonl"))
    _refuse_dry_run(state, "abort")
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
        _kill_leftovers(journal)
        plan = plan_from_dict(state.plan)
        runbooks = runbooks_for(ws.site, plan.hops)
        ctx = run_context(ws, client_for(ws.env), plan, runbooks, journal, run_id, False, progress)
        journal.record(EventType.RUN_ABORT_REQUESTED, reason="upgrader abort")
        run_pending_undo(ctx, reason="aborted", failed=True)
        journal.record(EventType.RUN_ABORTED, reason="upgrader abort")
    finally:
        lock.release()
    return f"run {run_id} aborted; its undo actions ran"


def run_summaries(ws: Workspace) -> list[dict[str, Any]]:
    """One line of data per run of the site, newest first."""
    out = []
    for path in sorted(ws.site.runs_dir.glob("*/journal.jsonl"), reverse=True):
        try:
            state = replay(read_events(path))
        except JournalError as exc:
            out.append({"run_id": path.parent.name, "status": "unreadable", "error": str(exc)})
            continue
        out.append(summary(state))
    return out


def summary(state: Any) -> dict[str, Any]:
    """What ``status`` prints of one run."""
    done = sum(1 for v in state.step_status.values() if v.value == "succeeded")
    return {
        "run_id": state.run_id,
        "environment": state.environment,
        "target": state.target,
        "status": state.status.value,
        "dry_run": state.dry_run,
        "steps_done": done,
        "steps": len(state.plan.get("steps", [])),
        "next_step": state.resume_point,
        "interrupted_step": state.interrupted_step,
        "started": state.started,
        "finished": state.finished,
        "reason": state.reason,
    }
