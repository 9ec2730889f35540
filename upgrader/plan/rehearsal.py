"""Staging first: a plan runs on production only after the same plan passed on staging.

An environment with ``requires_rehearsal_on: staging`` gets the inhibitor ``no-rehearsal``
unless a run of the rehearsal environment with the same plan fingerprint (runbooks,
playbooks, target: not the inventory or batch sizes) finished, for real, with every gate
passing. ``--without-rehearsal REASON`` lifts it, and the reason is journaled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from upgrader.errors import JournalError
from upgrader.journal.store import RunState, RunStatus, read_events, replay
from upgrader.plan.model import ERROR, Finding, Plan

KEY = "no-rehearsal"


def rehearsals(runs_dir: Path, environment: str, fingerprint: str) -> list[RunState]:
    """The runs of ``environment`` that rehearsed the plan ``fingerprint`` successfully."""
    out = []
    for path in sorted(runs_dir.glob(f"{environment}-*/journal.jsonl")):
        try:
            state = replay(read_events(path))
        except JournalError:
            continue
        if passed(state, environment, fingerprint):
            out.append(state)
    return out


def passed(state: RunState, environment: str, fingerprint: str) -> bool:
    """A real, finished run of ``environment`` for this plan, with no gate short of pass."""
    return (
        state.environment == environment
        and state.status is RunStatus.SUCCEEDED
        and not state.dry_run
        and state.plan.get("fingerprint") == fingerprint
        and all(g.verdict == "pass" for g in state.gate_verdicts)
    )


def check(plan: Plan, runs_dir: Path, wanted: str | None, *, waived: str | None = None) -> Plan:
    """``plan`` with the ``no-rehearsal`` finding when ``wanted`` has not rehearsed it
    (accepted when ``waived`` gives a reason)."""
    if not wanted or rehearsals(runs_dir, wanted, plan.fingerprint):
        return plan
    stage = " --stage" if wanted == "staging" else f" (on {wanted})"
    finding = Finding(
        KEY,
        ERROR,
        True,
        f"plan {plan.fingerprint[:12]} has not passed on {wanted}: no finished {wanted} "
        "run of the same runbooks, playbooks and target with every gate passing",
        f"rehearse it first: `upgrader run {plan.target_version}{stage} --yes`; "
        "or, knowingly, --without-rehearsal REASON",
        accepted=bool(waived),
    )
    return replace(plan, findings=(*_without(plan.findings, KEY), finding))


def _without(findings: Iterable[Finding], key: str) -> tuple[Finding, ...]:
    return tuple(f for f in findings if f.key != key)
