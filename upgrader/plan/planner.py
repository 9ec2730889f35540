"""Facts + runbooks -> plan. Pure: no I/O, no clock, no client.

The plan is a value: the steps per hop and per host batch, the findings (stable key,
severity, inhibitor or not, remediation), estimates, the point of no return, and two
fingerprints. ``fingerprint`` identifies "the same plan" across environments (runbooks,
playbooks, target: what staging must have rehearsed); ``resume_fingerprint`` adds the
environment and its inventory, and must not change while a run is resumed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from upgrader.errors import UsageError
from upgrader.plan.model import ERROR, INFO, WARNING, CloudFacts, Finding, Plan, PlannedStep
from upgrader.plan.runbook_model import Runbook, Step
from upgrader.plan.versions import SERIES, hop_path, series_of

# ------------------------------------------------------------------ findings
_ACTIVE = {"ACTIVE", "SUSPENDED", "STOPPED", "HOLD", "FAILED"}


def vm_findings(facts: CloudFacts, hops: Sequence[tuple[str, str]]) -> list[Finding]:
    """What the VMs mean for this path: 3.2 -> 3.4 shuts every active VM down."""
    out: list[Finding] = []
    if ("3.2", "3.4") not in hops:
        return out
    active = [vm for vm in facts.vms if vm.state in _ACTIVE]
    if active:
        out.append(
            Finding(
                "vms-shut-down-for-onedb",
                INFO,
                False,
                f"{len(active)} VMs will be shut down and re-created on their hosts: onedb "
                "3.2 -> 3.4 refuses VMs that are not PENDING or DONE",
                "nothing to do: the runbook records and re-creates them",
            )
        )
    for vm in active:
        lost = [d for d in vm.disks if not d.persistent]
        if lost:
            disks = ", ".join(
                f"disk {d.disk_id}" + (f" ({d.image})" if d.image else "") for d in lost
            )
            out.append(
                Finding(
                    f"vm-nonpersistent-disk/{vm.id}",
                    ERROR,
                    True,
                    f"VM {vm.id} '{vm.name}' (owner {vm.owner}) has non-persistent {disks}: "
                    "changes since it booted are lost when it is shut down",
                    f"save the disk first (one.vm.savedisk), or accept the loss with "
                    f"--accept vm-nonpersistent-disk/{vm.id}",
                )
            )
    return out


def storage_findings(facts: CloudFacts, runbook: Runbook) -> list[Finding]:
    """What a storage move means for the VMs: their writes stop for the switch-over; and a
    way back (a runbook with a ``storage_check: unchanged`` step) may lose what they wrote
    on the export since the switch, which that step refuses unless this is accepted."""
    out = []
    if any(step.vars.get("storage_check") == "unchanged" for step in runbook.steps):
        out.append(
            Finding(
                "storage-writes-lost",
                WARNING,
                False,
                "switching back to the old volume loses what the VMs wrote on the NFS export "
                "since the switch: the run stops before the switch if any file changed there",
                "copy the files it lists back to the old volume first, or accept losing them "
                "with --accept storage-writes-lost",
            )
        )
    running = [vm for vm in facts.vms if vm.state == "ACTIVE"]
    if not running:
        return out
    return [
        *out,
        Finding(
            "vms-suspended-for-switch",
            INFO,
            False,
            f"{len(running)} VMs will be suspended in the window, for the delta copy, the "
            "verification and the switch of the mounts, and resumed on the new storage",
            "nothing to do: the runbook suspends and resumes them",
        ),
    ]


def runbook_file(hop: Sequence[str]) -> str:
    """``opennebula-3.2-to-3.4.yml`` for a version hop, ``storage-ocfs2-to-nfs.yml`` else."""
    kind = "opennebula" if hop[0] in SERIES else "storage"
    return f"{kind}-{hop[0]}-to-{hop[1]}.yml"


def host_findings(facts: CloudFacts) -> list[Finding]:
    """Hosts that are not in a state to take part."""
    out = []
    for host in facts.hosts:
        if host.state in ("ERROR", "MONITORING_ERROR"):
            out.append(
                Finding(
                    f"host-in-error/{host.name}",
                    ERROR,
                    True,
                    f"host {host.name} is in ERROR: oned cannot monitor it",
                    "fix the host (libvirtd, network) until it is MONITORED, then plan again",
                )
            )
        elif host.state == "DISABLED":
            out.append(
                Finding(
                    f"host-disabled/{host.name}",
                    WARNING,
                    False,
                    f"host {host.name} is disabled: it receives no VMs while others are drained",
                    "enable it if it should take VMs, or accept fewer targets",
                )
            )
    return out


# -------------------------------------------------------------------- steps
def _host_sequences(steps: Sequence[Step]) -> list[list[Step]]:
    """Consecutive per-host steps on the same target with the same batch size form one
    sequence (drain, upgrade, enable a host before the next); ``sequence_start`` begins a
    new one. Every other step is a sequence of its own."""
    groups: list[list[Step]] = []
    for step in steps:
        last = groups[-1][-1] if groups else None
        joins = (
            last is not None
            and step.per_host
            and last.per_host
            and step.target == last.target
            and step.serial == last.serial
            and not step.sequence_start
        )
        if joins:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _batches(hosts: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def _expand(hop: str, step: Step, facts: CloudFacts, batch_size: int | None) -> list[PlannedStep]:
    common = {
        "hop": hop,
        "step": step.id,
        "title": step.title,
        "kind": step.kind,
        "playbook": step.playbook,
        "action": step.action,
        "target": step.target,
        "idempotent": step.idempotent,
        "undo": step.undo,
        "point_of_no_return": step.point_of_no_return,
        "gates_before": step.gates_before,
        "gates_after": step.gates_after,
        "vars": dict(step.vars),
        "sequence_start": step.sequence_start,
        "sequence_end": step.sequence_end,
        "does_undo": step.does_undo,
    }
    if not step.per_host:
        extent = _extent(step, facts, None)
        return [
            PlannedStep(
                id=f"{hop}/{step.id}",
                hosts=(),
                limit=None,
                estimate=_estimate(step, extent),
                extent=extent,
                **common,
            )
        ]
    names = sorted(h.name for h in facts.hosts)
    size = batch_size or step.serial or 1  # an environment may batch differently
    out = []
    for n, batch in enumerate(_batches(names, size), 1):
        extent = _extent(step, facts, batch)
        out.append(
            PlannedStep(
                id=f"{hop}/{step.id}@{n}",
                hosts=batch,
                limit=",".join(batch),
                estimate=_estimate(step, extent),
                extent=extent,
                **common,
            )
        )
    return out


def _extent(step: Step, facts: CloudFacts, batch: Sequence[str] | None) -> dict[str, int]:
    """The hosts a step works on (its batch; every host for a hypervisor-wide step, else
    none counted) and the live VMs on them (every live VM for a step of the whole cloud)."""
    if batch is not None:
        hosts = set(batch)
        vms = sum(1 for vm in facts.vms if vm.host in hosts and vm.state in _ACTIVE)
        return {"hosts": len(hosts), "vms": vms}
    on_hosts = step.target in ("hypervisors", "all")
    return {
        "hosts": len(facts.hosts) if on_hosts else 0,
        "vms": sum(1 for vm in facts.vms if vm.state in _ACTIVE),
    }


def _estimate(step: Step, extent: Mapping[str, int]) -> float:
    """The runbook's estimate of ``step`` on ``extent``: its base, plus its per-host and
    per-VM parts (a drain of a host with twelve VMs takes longer than of an empty one)."""
    return (
        step.estimate
        + step.estimate_per_host * extent.get("hosts", 0)
        + step.estimate_per_vm * extent.get("vms", 0)
    )


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def build_plan(
    facts: CloudFacts,
    target: str,
    runbooks: Mapping[tuple[str, str], Runbook],
    *,
    playbook_digests: Mapping[str, str],
    batch_size: int | None = None,
    accepted: Sequence[str] = (),
    hops: Sequence[tuple[str, str]] | None = None,
) -> Plan:
    """The plan that takes ``facts`` to ``target`` with the runbook of each hop.

    ``playbook_digests`` maps every playbook path the runbooks name to the digest of its
    content (and of the roles it uses); ``accepted`` lists finding keys the operator
    accepted with ``--accept``. ``hops`` is given for a storage move (one hop, e.g.
    ``("ocfs2", "nfs")``, whose runbook works on any OpenNebula version); without it the
    hops are the version path from the cloud's version to ``target``.
    """
    storage = hops is not None
    if hops is None:
        hops = hop_path(facts.version, target)
    hops = tuple(hops)
    steps: list[PlannedStep] = []
    for hop in hops:
        runbook = runbooks.get(hop)
        if runbook is None:
            raise UsageError(
                f"no runbook for {'storage' if storage else 'OpenNebula'} {hop[0]} -> {hop[1]}",
                hint=f"runbooks/{runbook_file(hop)} is missing",
            )
        name = f"{hop[0]}-{hop[1]}"
        for group in _host_sequences([s for s in runbook.steps if not s.undo_only]):
            expanded = [_expand(name, step, facts, batch_size) for step in group]
            # a host sequence runs batch by batch: all its steps on batch 1, then batch 2...
            steps.extend(s for batch in zip(*expanded, strict=True) for s in batch)
    findings = [*host_findings(facts), *vm_findings(facts, hops)]
    if storage:
        findings += storage_findings(facts, runbooks[hops[0]])
    findings = [Finding(**{**asdict(f), "accepted": f.key in accepted}) for f in findings]
    point = next((s.id for s in steps if s.point_of_no_return), None)
    goal = hops[-1][1] if storage else series_of(target)
    identity = _digest(
        goal,
        [(hop, runbooks[hop].digest) for hop in hops],
        sorted(playbook_digests.items()),
    )
    return Plan(
        environment=facts.environment,
        current_version=hops[0][0] if storage else facts.version,
        target_version=goal,
        hops=hops,
        steps=tuple(steps),
        findings=tuple(findings),
        point_of_no_return=point,
        estimate=sum(s.estimate for s in steps),
        fingerprint=identity,
        resume_fingerprint=_digest(identity, facts.environment, facts.inventory_digest),
    )
