"""The journal of a run as ``upgrader run`` starts it, for tests that drive the executor."""

from __future__ import annotations

from upgrader.journal.store import EventType, Journal
from upgrader.plan.planner import Plan


def record_start(journal: Journal, plan: Plan, run_id: str = "r1") -> Journal:
    """Record ``run_started`` for ``plan`` with the fields runs.py gives it."""
    journal.record(EventType.RUN_STARTED, run_id=run_id, environment=plan.environment,
                   target=plan.target_version, fingerprint=plan.resume_fingerprint,
                   identity=plan.fingerprint, plan=plan.to_dict(), dry_run=False)
    return journal
