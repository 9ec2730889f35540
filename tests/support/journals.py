"""The journal of a run as ``upgrader run`` starts it, for tests that drive the executor."""

from __future__ import annotations

from upgrader.journal.store import Journal
from upgrader.plan.model import Plan
from upgrader.run.start import record_started


def record_start(journal: Journal, plan: Plan) -> Journal:
    """Record ``run_started`` for ``plan`` as ``upgrader run`` does (no window, no estimates)."""
    record_started(journal, plan, dry_run=False)
    return journal
