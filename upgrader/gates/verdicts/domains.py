"""Verdict on the domains the hypervisors run: no-duplicate-vms (each VM once, where oned says).

Pure: no I/O, no clock. The ``one-<id>`` domains are read once (``running_domains``) and
judged by named checks (``NO_DUPLICATE_VMS_CHECKS``), as are the hypervisors' answers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import CheckOutcome, evidence, judged
from upgrader.gates.verdicts.vms import VmSeen
from upgrader.opennebula.enums import LcmState, VmState


@dataclass(frozen=True)
class HypervisorDomains:
    """``virsh list`` on one hypervisor; ``domains`` None when it could not be read."""

    host: str
    domains: tuple[str, ...] | None
    error: str = ""


@dataclass(frozen=True)
class DomainMap:
    """oned's VMs (with their hosts) and the running domains of every hypervisor."""

    vms: tuple[VmSeen, ...]
    hypervisors: tuple[HypervisorDomains, ...]


@dataclass(frozen=True)
class RunningDomain:
    """A ``one-<id>`` domain as the hypervisors run it, beside what oned says of its VM."""

    id: int
    hosts: tuple[str, ...]  # sorted; a host twice: it runs the domain twice
    name: str | None = None  # None: oned does not know the VM
    oned_host: str | None = None  # where oned places the VM (ACTIVE VMs only)
    oned_state: str = "not in oned"
    migrating: bool = False  # oned is migrating the VM

    def row(self) -> dict[str, object]:
        """The domain as the gate's evidence lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "hosts": list(self.hosts),
            "oned_host": self.oned_host,
            "oned_state": self.oned_state,
        }


@dataclass(frozen=True)
class RunningDomains:
    """Every ``one-<id>`` domain running on a hypervisor that could be read, by VM id."""

    domains: tuple[RunningDomain, ...]


_DOMAIN = re.compile(r"one-(\d+)")
_MIGRATING = frozenset({LcmState.MIGRATE, LcmState.SAVE_MIGRATE, LcmState.PROLOG_MIGRATE})


def _placed(obs: DomainMap) -> dict[int, str]:
    """VM id -> the host oned runs it on (ACTIVE VMs with a host)."""
    return {vm.id: vm.host for vm in obs.vms if vm.state is VmState.ACTIVE and vm.host}


def running_domains(obs: DomainMap) -> RunningDomains:
    """The ``one-<id>`` domains of ``obs`` by VM id (other domain names are ignored)."""
    running: dict[int, list[str]] = defaultdict(list)
    for hyp in obs.hypervisors:
        for domain in hyp.domains or ():
            match = _DOMAIN.fullmatch(domain.strip())
            if match:
                running[int(match.group(1))].append(hyp.host)
    vms = {vm.id: vm for vm in obs.vms}
    placed = _placed(obs)
    return RunningDomains(
        tuple(
            _running(vm_id, hosts, vms.get(vm_id), placed.get(vm_id))
            for vm_id, hosts in sorted(running.items())
        )
    )


def _running(vm_id: int, hosts: list[str], vm: VmSeen | None, placed: str | None) -> RunningDomain:
    if vm is None:
        return RunningDomain(vm_id, tuple(sorted(hosts)), oned_host=placed)
    migrating = vm.state is VmState.ACTIVE and vm.lcm_state in _MIGRATING
    return RunningDomain(vm_id, tuple(sorted(hosts)), vm.name, placed, vm.state_name, migrating)


def no_duplicate_vms(obs: DomainMap) -> GateResult:
    """``no-duplicate-vms``: every ``one-<id>`` domain runs once, where oned says it runs.

    A domain on two hypervisors, or on a hypervisor oned does not place the VM on, fails
    (naming VM id, name and hosts), unless oned is migrating the VM (then: inconclusive).
    A hypervisor whose ``virsh list`` could not be read is inconclusive. Domains not named
    ``one-<id>`` are ignored.

    Named checks: over the running domains ``runs_once``, ``runs_where_placed``,
    ``not_migrating``; over the hypervisors ``hypervisors_read``, ``placements_read``.
    """
    running = running_domains(obs)
    once, where, moving = runs_once(running), runs_where_placed(running), not_migrating(running)
    read, verified = hypervisors_read(obs), placements_read(obs)
    details = {
        **evidence(once, where, moving, read, verified),
        "not_running": _not_running(obs, running),
        "hypervisors": sorted(h.host for h in obs.hypervisors),
    }
    count = sum(len(d.hosts) for d in running.domains)
    hosts = len({h.host for h in obs.hypervisors if h.domains is not None})
    return judged(
        "no-duplicate-vms",
        (once, where, read, verified, moving),
        details,
        passed=f"{count} one-* domains on {hosts} hypervisors, each once and where oned places it",
        fail_hint="a VM running twice corrupts its disk: destroy the copy oned does not "
        "know about (`virsh destroy one-<id>` on that host, never `undefine` "
        "the disk), then check libvirtd there",
        wait_hint="check libvirtd and ssh on the named hypervisors (`virsh list` as "
        "oneadmin), or wait for the migration to finish",
    )


def _not_running(obs: DomainMap, running: RunningDomains) -> list[dict[str, object]]:
    """VMs oned places on a hypervisor that was read but does not run them (evidence only)."""
    read_hosts = {h.host for h in obs.hypervisors if h.domains is not None}
    runs_on = {d.id: d.hosts for d in running.domains}
    names = {vm.id: vm.name for vm in obs.vms}
    return [
        {"id": vm_id, "name": names[vm_id], "host": host}
        for vm_id, host in sorted(_placed(obs).items())
        if host in read_hosts and host not in runs_on.get(vm_id, ())
    ]


# ------------------------------------------------------------------ the named checks


def _unknown(name: str | None) -> str:
    return name or "(unknown to oned)"


def runs_once(running: RunningDomains) -> CheckOutcome:
    """No domain runs on two hypervisors (or twice on one), but while oned migrates it."""
    rows = [d.row() for d in running.domains if not d.migrating and len(d.hosts) > 1]
    problems = tuple(
        f"VM {r['id']} {_unknown(r['name'])} runs on {' and '.join(r['hosts'])}" for r in rows
    )
    return CheckOutcome({"duplicates": rows}, problems)


def runs_where_placed(running: RunningDomains) -> CheckOutcome:
    """A domain that runs once runs on the host oned places the VM on (but while migrating)."""
    rows = [
        d.row()
        for d in running.domains
        if not d.migrating and len(d.hosts) == 1 and d.oned_host != d.hosts[0]
    ]
    problems = tuple(
        f"VM {r['id']} {_unknown(r['name'])} runs on {r['hosts'][0]} "
        f"but oned says {r['oned_host'] or r['oned_state']}"
        for r in rows
    )
    return CheckOutcome({"misplaced": rows}, problems)


def not_migrating(running: RunningDomains) -> CheckOutcome:
    """A VM oned is migrating, on two hosts or not yet on its new one, is waited for."""
    rows = [
        d.row()
        for d in running.domains
        if d.migrating and (len(d.hosts) > 1 or d.oned_host not in d.hosts)
    ]
    waiting = tuple(f"VM {r['id']} {r['name']} migrating ({', '.join(r['hosts'])})" for r in rows)
    return CheckOutcome({"migrating": rows}, waiting=waiting)


def hypervisors_read(obs: DomainMap) -> CheckOutcome:
    """Every hypervisor's ``virsh list`` could be read."""
    rows = [
        {"host": h.host, "error": h.error or "no output"}
        for h in obs.hypervisors
        if h.domains is None
    ]
    waiting = tuple(f"could not read virsh on {r['host']}: {r['error']}" for r in rows)
    return CheckOutcome({"unreadable": rows}, waiting=waiting)


def placements_read(obs: DomainMap) -> CheckOutcome:
    """Every hypervisor oned places a VM on was asked (``virsh list`` from it)."""
    asked = {h.host for h in obs.hypervisors}
    hosts = sorted({host for host in _placed(obs).values() if host not in asked})
    return CheckOutcome(
        {"unverified_hosts": hosts}, waiting=tuple(f"no virsh list from {h}" for h in hosts)
    )


NO_DUPLICATE_VMS_CHECKS = (
    runs_once,
    runs_where_placed,
    not_migrating,
    hypervisors_read,
    placements_read,
)
"""The named checks of no-duplicate-vms (each with its case files)."""
