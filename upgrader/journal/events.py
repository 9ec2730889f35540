"""The journal's vocabulary: what one line of ``journal.jsonl`` records.

``EventType`` names each kind of transition (with the fields it carries) and ``JournalEvent``
is one line as read back from disk. The writer and reader (``journal.py``) and the pure fold
into a ``RunState`` (``journal/replay.py``) both speak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upgrader.compat import StrEnum

CORRUPT_HINT = (
    "the journal is the record of what ran and cannot be trusted past a damaged line: "
    "keep a copy, compare it with the cloud, and start a new run"
)
"""The hint of every error about a damaged journal, whether reading or replay found it."""


class EventType(StrEnum):
    """What a journal line records; the fields each one carries are listed beside it."""

    RUN_STARTED = "run_started"  # run_id, environment, target, fingerprint, plan, dry_run
    RUN_RESUMED = "run_resumed"  # fingerprint, step, rerun, accepted_rerun, redo
    STEP_STARTED = "step_started"  # step, attempt, idempotent
    STEP_FINISHED = "step_finished"  # step, outcome (e.g. Ansible stats), duration
    STEP_SKIPPED = "step_skipped"  # step, reason
    STEP_FAILED = "step_failed"  # step, error, evidence
    GATE_VERDICT = "gate_verdict"  # step, gate, phase, verdict, evidence, hint
    UNDO_REGISTERED = "undo_registered"  # step, undo_id, description
    UNDO_STARTED = "undo_started"  # undo_id
    UNDO_DONE = "undo_done"  # undo_id
    UNDO_FAILED = "undo_failed"  # undo_id, error
    FINDING_ACCEPTED = "finding_accepted"  # key, reason
    RUN_PAUSED = "run_paused"  # reason, next_step, window, next_window, held
    RUN_FAILED = "run_failed"  # reason, hint
    RUN_ABORT_REQUESTED = "run_abort_requested"  # reason
    RUN_ABORTED = "run_aborted"  # reason
    RUN_FINISHED = "run_finished"  # (none)
    SNAPSHOT = "snapshot"  # step, what, data
    NOTE = "note"  # text
    WINDOW = "window"  # window ({start, end, source}), how ("config" | "ad hoc"), command
    CLOUD_STATE = "cloud_state"  # when (start|end), oned_version, db_version, hosts, vms
    # A dry run (run_started dry_run=true) journals what it predicts instead of doing it:
    DRY_RUN_VMS = "dry_run_vms"  # shut_down, shut_down_hop, drains, ids_change
    DRY_RUN_CHECK = "dry_run_check"  # check, hop, playbook, steps, limit, predicted, changes, ...
    GATES_SKIPPED = "gates_skipped"  # count, gates, reason (every gate phase but the preflight)


@dataclass(frozen=True)
class JournalEvent:
    """One journal line, as read back from disk (so a Secret field reads ``***``)."""

    seq: int
    ts: str
    type: EventType
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key``, or ``default`` when the event has none."""
        return self.fields.get(key, default)
