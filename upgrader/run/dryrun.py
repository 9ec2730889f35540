"""``upgrader run TARGET --dry-run``: a rehearsal on paper that changes nothing anywhere.

A dry run plans like a real run and then only looks:

- the **preflight** (the first step's gates_before) is evaluated: those gates judge the
  cloud as it is now. Every other gate phase would judge a cloud the earlier steps had
  changed, so it is journaled as skipped, in one event;
- each **distinct playbook step** (same playbook and vars within a hop; per-host steps once
  over all their hosts) runs once in Ansible check mode with diff, a few at a time. A check
  that fails does not stop the dry run: the step may depend on earlier ones having run, and
  the report says check mode could not predict it;
- **no action, no undo step, no playbook without check mode** runs; what the actions would
  do to the VMs is predicted from the cloud's facts (``dryrun_plan.vm_impact``).

It takes no run lock, so a dry run killed half-way cannot block the real run; it refuses
while a live run holds the lock (that run is changing the cloud it would judge). Its journal
says ``dry_run``, so it never counts as a staging rehearsal, and resume refuses it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from upgrader.actions import placement
from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.config.workspace import Workspace
from upgrader.errors import LockHeldError, StaleLockError, UpgraderError
from upgrader.gates.model import INCONCLUSIVE, GateResult
from upgrader.journal.store import EventType
from upgrader.plan.facts import gather_facts
from upgrader.plan.model import Plan, PlannedStep
from upgrader.run.context import RunContext, client_for, estimates, marker, run_context
from upgrader.run.dryrun_plan import (
    CheckGroup,
    Verdict,
    VmImpact,
    check_groups,
    real_command,
    skipped_gates,
    verdict,
    vm_impact,
)
from upgrader.run.lock import read_lock, stale_reason
from upgrader.run.prepare import prepare_plan
from upgrader.run.start import StartOptions, new_run_id, open_journal, record_accepted
from upgrader.text import slug
from upgrader.windows import choose as run_window

CHECK_WORKERS = 3  # check-mode plays at once: most of a play is waiting on ssh
CHECK_TIMEOUT = 600.0  # one check-mode play; the real steps' budgets are the runbook's
_REASON_LIMIT = 600


@dataclass(frozen=True)
class CheckResult:
    """What check mode said of one playbook: ``changes`` maps host -> tasks that would
    change it; ``predicted`` False means check mode could not predict it (``reason``)."""

    group: CheckGroup
    predicted: bool
    changes: Mapping[str, int]
    reason: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class DryRun:
    """Everything a dry run found, as the CLI prints it (and the journal holds it)."""

    run_id: str
    journal: Path
    plan: Plan
    command: str
    preflight_step: str | None
    preflight: tuple[GateResult, ...]
    skipped_gates: int
    impact: VmImpact
    checks: tuple[CheckResult, ...]
    lock_note: str | None
    verdict: Verdict


def start(ws: Workspace, opts: StartOptions) -> DryRun:
    """Plan, journal and walk a dry run of ``opts.target`` on ``ws.env``."""
    lock_note = _lock_note(ws)
    window = run_window.forecast(ws, opts.window, run_window.now())
    client = client_for(ws.env)
    facts = gather_facts(client, ws.env.name, ws.env.inventory)
    plan, runbooks = prepare_plan(
        ws, client, opts.target, opts.accept, opts.without_rehearsal, facts=facts
    )
    needs = {vm.id: placement.need_of(vm) for vm in client.vm_pool()}
    impact = vm_impact(plan, facts, client.host_pool(), needs)
    command = real_command(
        opts.target,
        stage=ws.env.name == "staging",
        accept=opts.accept,
        without_rehearsal=opts.without_rehearsal,
        take_over=lock_note is not None,
    )
    run_id = new_run_id(ws.env.name)
    journal = open_journal(
        ws,
        run_id,
        plan,
        dry_run=True,
        window=window,
        estimates=estimates(ws, plan),
        command=command,
    )
    record_accepted(journal, plan, opts.without_rehearsal)
    if lock_note:
        journal.record(EventType.NOTE, text=f"{lock_note}: the real run needs --take-over")
    journal.record(EventType.DRY_RUN_VMS, **asdict(impact))
    opts.progress(
        f"[dry-run] {run_id}: {len(plan.steps)} steps, {plan.current_version} -> "
        f"{plan.target_version} on {ws.env.name}; nothing will be changed"
    )
    ctx = run_context(ws, client, plan, runbooks, journal, run_id, True, opts.progress)
    try:
        return walk(ctx, impact, command, lock_note)
    finally:
        journal.close()


def _lock_note(ws: Workspace) -> str | None:
    """None when the environment is not locked; what the real run must do about a stale
    lock. Raises LockHeldError (exit 4) while a live run holds it."""
    try:
        holder = read_lock(ws.lock_dir, ws.env.name)
    except StaleLockError:
        return "an unreadable lock file is in the way"
    if holder is None:
        return None
    reason = stale_reason(holder, time.time())
    if reason is None:
        raise LockHeldError(
            f"environment '{ws.env.name}' is locked by {holder.describe()}: a dry run judges "
            "the cloud as it is, and that run is changing it",
            holder=asdict(holder),
            hint=f"dry-run again when run {holder.run_id} has ended (`upgrader status`)",
        )
    return f"a stale lock of run {holder.run_id} is in the way: {reason}"


def walk(ctx: RunContext, impact: VmImpact, command: str, lock_note: str | None) -> DryRun:
    """Preflight, skipped gates, check mode, every step journaled as skipped, the verdict.

    Interrupted (Ctrl-C, a journal that cannot be written), it stops its check plays, and
    journals the dry run as aborted if it still can."""
    plan = ctx.plan
    try:
        first = plan.steps[0] if plan.steps else None
        count, names = skipped_gates(plan)
        if count:
            reason = (
                "a dry run changes nothing, so these gates would judge a cloud the "
                "steps before them did not change"
            )
            ctx.journal.record(
                EventType.GATES_SKIPPED, count=count, gates=list(names), reason=reason
            )
            ctx.progress(f"[dry-run] {count} gate checks after the preflight skipped: {reason}")
        groups = check_groups(plan)
        preflight, checks = _look(ctx, first, groups)
        _journal_steps(ctx, groups)
        result = verdict(plan.inhibitors, preflight, command, lock_note)
    except BaseException as exc:
        ctx.cancel.set()
        with contextlib.suppress(UpgraderError):  # the journal may be what failed
            ctx.journal.record(
                EventType.RUN_ABORTED, dry_run=True, reason=f"dry run interrupted: {exc!r}"
            )
        raise
    fields = {"dry_run": True, "verdict": result.word, "exit_code": result.exit_code}
    if result.exit_code == 0:
        ctx.journal.record(EventType.RUN_FINISHED, **fields, line=result.line)
    else:
        ctx.journal.record(
            EventType.RUN_FAILED,
            **fields,
            reason=result.line,
            hint=result.hint or "fix the cause, then dry-run again",
        )
    ctx.progress(f"[dry-run] {ctx.run_id} finished: {result.word}")
    return DryRun(
        ctx.run_id,
        ctx.journal.path,
        plan,
        command,
        first.id if first else None,
        preflight,
        count,
        impact,
        checks,
        lock_note,
        result,
    )


def _preflight(ctx: RunContext, step: PlannedStep) -> tuple[GateResult, ...]:
    """Every gate before the first step, each evaluated (a failure does not stop the others)."""
    specs = step.gates_before
    if specs:
        ctx.gates.new_round([spec.name for spec in specs])
    results = []
    for spec in specs:
        gate = ctx.gates.get(spec.name)
        try:
            if gate is None:
                raise UpgraderError(f"upgrader has no gate called '{spec.name}'")
            result = gate(spec, step)
        except UpgraderError as exc:
            result = GateResult(spec.name, INCONCLUSIVE, {"summary": str(exc)}, exc.hint or "")
        ctx.journal.record(
            EventType.GATE_VERDICT,
            step=step.id,
            gate=spec.name,
            phase="before",
            verdict=result.verdict,
            evidence=dict(result.evidence),
            hint=result.hint,
        )
        ctx.progress(f"[gate/{spec.name}] {result.verdict.upper()} before {step.id} (preflight)")
        results.append(result)
    return tuple(results)


def _look(
    ctx: RunContext, first: PlannedStep | None, groups: tuple[CheckGroup, ...]
) -> tuple[tuple[GateResult, ...], tuple[CheckResult, ...]]:
    """The preflight and the check-mode plays, side by side (both mostly wait on ssh): the
    plays CHECK_WORKERS at a time, those of the longest steps first; results in plan order."""
    pool = ThreadPoolExecutor(max_workers=CHECK_WORKERS + 1, thread_name_prefix="dry-run")
    preflight = pool.submit(_preflight, ctx, first) if first is not None else None
    longest = sorted(groups, key=lambda g: -_estimate(ctx.plan, g))
    futures = {g.index: pool.submit(_check, ctx, g) for g in longest}
    try:
        checks = tuple(futures[g.index].result() for g in groups)
        return (preflight.result() if preflight is not None else ()), checks
    except BaseException:
        ctx.cancel.set()  # the running plays see it within a second and kill their processes
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _estimate(plan: Plan, group: CheckGroup) -> float:
    return max((s.estimate for s in plan.steps if s.id in group.steps), default=0.0)


def _check(ctx: RunContext, group: CheckGroup) -> CheckResult:
    tag = f"[check/{group.label}]"
    failures: dict[str, str] = {}

    def note(event: Mapping[str, Any]) -> None:
        kind, result = event.get("event"), event.get("result")
        if kind in ("runner_on_failed", "runner_on_unreachable") and result != "failed (ignored)":
            failures.setdefault(
                str(event.get("host")), f"{event.get('task')}: {event.get('msg') or result}"
            )

    ctx.progress(f"{tag} {group.playbook} in check mode on {group.limit or 'its hosts'}")
    call = PlaybookCall(
        step_id=f"check/{group.label}",
        playbook=ctx.project_dir / group.playbook,
        project_dir=ctx.project_dir,
        inventory=ctx.inventory,
        private_data_dir=ctx.run_dir / "checks" / f"{group.index:02d}-{slug(group.label)}",
        extra_vars={
            **ctx.extra_vars,
            **dict(group.vars),
            "upgrader_run_id": ctx.run_id,
            "upgrader_state_dir": str(ctx.run_dir),
        },
        secret_vars=ctx.secret_vars,
        limit=group.limit,
        check=True,
        diff=True,
        timeout=CHECK_TIMEOUT,
        marker=marker(ctx.run_id, f"check-{group.index}", 1),
        vault_password_file=ctx.vault_password_file,
    )
    started = ctx.clock()
    outcome: PlaybookOutcome | None = None
    try:
        outcome = ctx.run_playbook(call, progress=None, cancel=ctx.cancel, on_event=note)
    except UpgraderError as exc:
        failures["-"] = str(exc)
    duration = round(ctx.clock() - started, 1)
    if outcome is not None and outcome.ok:
        changes = {h: int(c.get("changed", 0)) for h, c in sorted(outcome.stats.items())}
        tasks = [{"host": c.host, "task": c.task, "diff": c.diff} for c in outcome.changed]
        result = CheckResult(group, True, changes, duration=duration)
        summary = ", ".join(f"{h}: {n}" for h, n in changes.items() if n) or "no change"
    else:
        tasks = []
        result = CheckResult(group, False, {}, _why(outcome, failures), duration)
        summary = f"check mode could not predict this step: {result.reason}"
    ctx.journal.record(
        EventType.DRY_RUN_CHECK,
        check=group.index,
        label=group.label,
        hop=group.hop,
        playbook=group.playbook,
        vars=dict(group.vars),
        steps=list(group.steps),
        limit=group.limit,
        predicted=result.predicted,
        changes=dict(result.changes),
        tasks=tasks,
        reason=result.reason,
        duration=duration,
        **({"status": str(outcome.status), "rc": outcome.rc} if outcome is not None else {}),
        # what the play handed over with set_stats, e.g. storage_sync: the data a copy moves
        **({"data": dict(outcome.data)} if outcome is not None and outcome.data else {}),
    )
    ctx.progress(f"{tag} {summary} ({duration:.1f} s)")
    return result


def _why(outcome: PlaybookOutcome | None, failures: Mapping[str, str]) -> str:
    if outcome is not None and outcome.status == "timeout":
        text = f"it did not finish within {CHECK_TIMEOUT:g} s"
    elif failures:
        text = "; ".join(
            f"{host}: {what}" if host != "-" else what for host, what in failures.items()
        )
    elif outcome is not None:
        tail = next((line for line in reversed(outcome.stdout_tail) if line.strip()), "")
        text = f"the play {outcome.status} (rc {outcome.rc})" + (f": {tail}" if tail else "")
    else:
        text = "the play did not start"
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def _journal_steps(ctx: RunContext, groups: tuple[CheckGroup, ...]) -> None:
    """Every step as skipped, saying what stood in for it."""
    check_of = {step: g for g in groups for step in g.steps}
    for step in ctx.plan.steps:
        group = check_of.get(step.id)
        if group is not None:
            ctx.journal.record(
                EventType.STEP_SKIPPED,
                step=step.id,
                check=group.index,
                reason=f"dry run: {step.playbook} ran in check mode "
                f"(check {group.index}, {group.label})",
            )
        else:
            what = f"action {step.action}" if step.kind == "action" else step.kind
            ctx.journal.record(
                EventType.STEP_SKIPPED, step=step.id, reason=f"dry run: {what} not run"
            )
