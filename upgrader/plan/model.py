"""The plan's values: the cloud's facts, findings, planned steps and the plan itself.

Pure and frozen: the planner builds them, the dry run, reports and the executor read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from upgrader.plan.runbook_model import GateSpec

# The severities of a finding (an inhibitor blocks the run whatever its severity).
INFO, WARNING, ERROR = "info", "warning", "error"


@dataclass(frozen=True)
class HostFact:
    """What the planner needs to know of a host."""

    id: int
    name: str
    state: str  # HostState name: MONITORED, ERROR, ...
    running_vms: int = 0


@dataclass(frozen=True)
class DiskFact:
    """One VM disk: its image and whether changes to it survive a shutdown."""

    disk_id: int
    image: str | None
    persistent: bool  # SAVE=YES (persistent image) or a disk saved with savedisk


@dataclass(frozen=True)
class VmFact:
    """What the planner needs to know of a VM."""

    id: int
    name: str
    owner: str
    state: str  # VmState name
    lcm_state: str  # LcmState name
    host: str | None
    disks: tuple[DiskFact, ...] = ()


@dataclass(frozen=True)
class CloudFacts:
    """The live facts of one cloud, gathered read-only before planning."""

    environment: str
    version: str  # series: "3.2", "3.4", "3.6"
    hosts: tuple[HostFact, ...]
    vms: tuple[VmFact, ...]
    inventory_digest: str = ""


@dataclass(frozen=True)
class Finding:
    """Something the plan found; an inhibitor blocks the run until accepted or fixed."""

    key: str
    severity: str
    inhibitor: bool
    message: str
    remediation: str
    accepted: bool = False


@dataclass(frozen=True)
class PlannedStep:
    """One runbook step on one target set, as the executor runs it."""

    id: str  # "<hop>/<step>" or "<hop>/<step>@<batch>"
    hop: str  # "3.2-3.4"
    step: str
    title: str
    kind: str
    playbook: str | None
    action: str | None
    target: str
    hosts: tuple[str, ...]
    limit: str | None
    estimate: float
    idempotent: bool
    undo: str | None
    point_of_no_return: bool
    gates_before: tuple[GateSpec, ...]
    gates_after: tuple[GateSpec, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    sequence_start: bool = False
    sequence_end: bool = False
    # what the step touches ({"hosts": n, "vms": m}): scales its estimate, and a measured
    # duration of an earlier run (upgrader.plan.estimates)
    extent: Mapping[str, int] = field(default_factory=dict)
    does_undo: str | None = None  # runbook.Step.does_undo


@dataclass(frozen=True)
class Plan:
    """Everything ``upgrader run`` will do, decided before anything changes."""

    environment: str
    current_version: str
    target_version: str
    hops: tuple[tuple[str, str], ...]
    steps: tuple[PlannedStep, ...]
    findings: tuple[Finding, ...]
    point_of_no_return: str | None
    estimate: float
    fingerprint: str
    resume_fingerprint: str

    @property
    def inhibitors(self) -> tuple[Finding, ...]:
        """Findings that block the run (not accepted)."""
        return tuple(f for f in self.findings if f.inhibitor and not f.accepted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (journaled at run start, printed by ``plan --json``)."""
        data = asdict(self)
        data["inhibitors"] = [f.key for f in self.inhibitors]
        return data
