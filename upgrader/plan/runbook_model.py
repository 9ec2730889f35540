"""A runbook as a value: its steps, their gates, the actions they may name.

``upgrader.plan.runbook.load_runbook`` builds it from a YAML file, validating every key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWN_ACTIONS: frozenset[str] = frozenset(
    {
        "record-vms",  # template, disks, host and IPs of every active VM, into the run dir
        "shutdown-vms",
        "recreate-vms",
        "suspend-vms",
        "resume-vms",
        "disable-host",
        "enable-host",
        "drain-host",  # live-migrate the batch's VMs to hosts with room outside the batch
        "move-back-vms",  # live-migrate the VMs drained off the batch back to it
    }
)
"""The orchestrator actions a step may name (``action:``); the executor implements them."""


@dataclass(frozen=True)
class GateSpec:
    """A gate a step names, with the parameters the runbook gives it."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One runbook step: a playbook run or an orchestrator action, with its gates."""

    id: str
    title: str
    kind: str  # "playbook" | "action"
    playbook: str | None  # relative to the playbooks directory
    action: str | None
    target: str
    serial: int | None
    per_host: bool
    gates_before: tuple[GateSpec, ...]
    gates_after: tuple[GateSpec, ...]
    estimate: float  # seconds
    idempotent: bool
    undo: str | None  # the id of the undo_only step that reverses this one
    point_of_no_return: bool
    vars: Mapping[str, Any]
    undo_only: bool
    sequence_start: bool
    # a maintenance window must hold the whole sequence_start..sequence_end run of steps
    sequence_end: bool = False
    estimate_per_host: float = 0.0  # seconds added per host the step touches
    estimate_per_vm: float = 0.0  # seconds added per VM on those hosts
    # an undo_only step that only rolls back a failure before the point of no return (restore
    # the database), instead of always putting things back at the end (release Puppet)
    rollback: bool = False
    # the undo_only step whose work this step does (release Puppet "now"): once this step has
    # finished, that undo is done, and the end of the run does not do it again
    does_undo: str | None = None


@dataclass(frozen=True)
class Runbook:
    """One hop (an OpenNebula upgrade or a storage move) as ordered steps."""

    name: str
    kind: str  # "upgrade" | "storage"
    from_version: str | None
    to_version: str | None
    from_storage: str | None
    to_storage: str | None
    steps: tuple[Step, ...]
    path: Path
    digest: str  # sha256 of the file's bytes
