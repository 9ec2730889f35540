"""Verdicts on the VMs: vms-settled, vms-unchanged, no-duplicate-vms.

Each function takes an observation (a frozen dataclass of plain data, defined here next to
the verdict that consumes it) plus the gate's parameters, and returns a ``GateResult``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import FAIL, INCONCLUSIVE, PASS, listing, result
from upgrader.opennebula.enums import LcmState, VmState
from upgrader.opennebula.models import Vm

# ------------------------------------------------------------------ VMs settled


@dataclass(frozen=True)
class VmSeen:
    """One VM as oned lists it: identity, placement and state."""

    id: int
    name: str
    owner: str
    host: str | None
    state: VmState
    lcm_state: LcmState = LcmState.LCM_INIT

    @classmethod
    def from_vm(cls, vm: Vm) -> VmSeen:
        return cls(vm.id, vm.name, vm.uname, vm.host, vm.state, vm.lcm_state)

    @property
    def state_name(self) -> str:
        """``ACTIVE/BOOT`` for active VMs, the STATE name otherwise."""
        if self.state is VmState.ACTIVE:
            return f"ACTIVE/{self.lcm_state.name}"
        return self.state.name


@dataclass(frozen=True)
class VmPool:
    """Every VM oned lists (DONE ones may be included; they are ignored)."""

    vms: tuple[VmSeen, ...]

    @classmethod
    def from_vms(cls, vms: Iterable[Vm]) -> VmPool:
        return cls(tuple(VmSeen.from_vm(vm) for vm in vms))


_FAILED_LCM = frozenset({LcmState.FAILURE, LcmState.UNKNOWN})
_SETTLED_LCM = frozenset({LcmState.RUNNING, LcmState.UNKNOWN, LcmState.FAILURE})


def _vm_row(vm: VmSeen) -> dict[str, object]:
    return {"id": vm.id, "name": vm.name, "host": vm.host, "state": vm.state_name}


def vms_settled(obs: VmPool) -> GateResult:
    """``vms-settled``: no VM in a transient state; FAILED or UNKNOWN ones fail by name.

    Transient: STATE INIT, or ACTIVE with any LCM state other than RUNNING, UNKNOWN or
    FAILURE (PROLOG*, BOOT, MIGRATE, SAVE_*, EPILOG*, SHUTDOWN, CANCEL, CLEANUP, HOTPLUG).
    """
    gate = "vms-settled"
    live = [vm for vm in obs.vms if vm.state is not VmState.DONE]
    failed = [
        _vm_row(vm)
        for vm in live
        if vm.state is VmState.FAILED
        or (vm.state is VmState.ACTIVE and vm.lcm_state in _FAILED_LCM)
    ]
    moving = [
        _vm_row(vm)
        for vm in live
        if vm.state is VmState.INIT
        or (vm.state is VmState.ACTIVE and vm.lcm_state not in _SETTLED_LCM)
    ]
    details = {"vm_count": len(live), "failed": failed, "transient": moving}
    if failed:
        who = listing(
            f"{v['id']} {v['name']} ({v['state']}" + (f" on {v['host']})" if v["host"] else ")")
            for v in failed
        )
        return result(
            gate,
            FAIL,
            f"VMs failed or unknown: {who}",
            "look at each VM's log (/var/log/one/<id>.log) and its host; recover it "
            "(`onevm restart`/`onevm resubmit`) or delete it before going on",
            **details,
        )
    if moving:
        who = listing(f"{v['id']} {v['name']} ({v['state']})" for v in moving)
        return result(
            gate,
            INCONCLUSIVE,
            f"still waiting for VMs to settle: {who}",
            "oned is still moving these VMs; if one stays in the same state, read its "
            "log (/var/log/one/<id>.log) and the host's libvirtd",
            **details,
        )
    return result(gate, PASS, f"{len(live)} VMs settled", **details)


# ------------------------------------------------------------------ VMs unchanged


@dataclass(frozen=True)
class VmIdentity:
    """What must survive a step: a VM's id, name, owner and host."""

    id: int
    name: str
    owner: str
    host: str | None

    @classmethod
    def from_vm(cls, vm: Vm) -> VmIdentity:
        return cls(vm.id, vm.name, vm.uname, vm.host)


@dataclass(frozen=True)
class VmSnapshots:
    """The VMs before and after a step (DONE VMs left out by whoever took them)."""

    before: tuple[VmIdentity, ...]
    after: tuple[VmIdentity, ...]


def _ident(vm: VmIdentity) -> dict[str, object]:
    return {"id": vm.id, "name": vm.name, "owner": vm.owner, "host": vm.host}


def vms_unchanged(obs: VmSnapshots, *, same_hosts: bool = False) -> GateResult:
    """``vms-unchanged``: same VMs (names, owners; hosts if ``same_hosts``) after a step.

    VMs are paired by id, then (a VM re-created under a new id, as the 3.2 -> 3.4 hop does)
    by name and owner. Reports missing, new, renamed, re-owned, moved and re-created VMs.
    """
    gate = "vms-unchanged"
    after_by_id = {vm.id: vm for vm in obs.after}
    pairs: list[tuple[VmIdentity, VmIdentity]] = []
    unpaired_before: list[VmIdentity] = []
    for vm in obs.before:
        if vm.id in after_by_id:
            pairs.append((vm, after_by_id.pop(vm.id)))
        else:
            unpaired_before.append(vm)
    pool: dict[tuple[str, str], list[VmIdentity]] = defaultdict(list)
    for vm in sorted(after_by_id.values(), key=lambda v: v.id):
        pool[(vm.name, vm.owner)].append(vm)
    missing: list[dict[str, object]] = []
    recreated: list[dict[str, object]] = []
    for vm in unpaired_before:
        candidates = pool.get((vm.name, vm.owner))
        if candidates:
            new = candidates.pop(0)
            pairs.append((vm, new))
            recreated.append({"name": vm.name, "old_id": vm.id, "new_id": new.id})
        else:
            missing.append(_ident(vm))
    new_vms = [_ident(vm) for group in pool.values() for vm in group]
    renamed, reowned, moved, unplaced = [], [], [], []
    for old, new in pairs:
        if old.name != new.name:
            renamed.append({"id": new.id, "before": old.name, "after": new.name})
        if old.owner != new.owner:
            reowned.append(
                {"id": new.id, "name": new.name, "before": old.owner, "after": new.owner}
            )
        if old.host != new.host:
            row = {"id": new.id, "name": new.name, "before": old.host, "after": new.host}
            (unplaced if new.host is None and old.host is not None else moved).append(row)
    details = {
        "before_count": len(obs.before),
        "after_count": len(obs.after),
        "missing": missing,
        "new": new_vms,
        "renamed": renamed,
        "reowned": reowned,
        "moved": moved,
        "unplaced": unplaced,
        "recreated": recreated,
        "same_hosts": same_hosts,
    }
    problems = []
    if missing:
        problems.append("missing " + listing(f"{v['id']} {v['name']}" for v in missing))
    if new_vms:
        problems.append("new " + listing(f"{v['id']} {v['name']}" for v in new_vms))
    if renamed:
        problems.append(
            "renamed " + listing(f"{r['id']} {r['before']} -> {r['after']}" for r in renamed)
        )
    if reowned:
        problems.append(
            "re-owned "
            + listing(f"{r['id']} {r['name']} {r['before']} -> {r['after']}" for r in reowned)
        )
    if same_hosts and moved:
        problems.append(
            "moved "
            + listing(f"{r['id']} {r['name']} {r['before']} -> {r['after']}" for r in moved)
        )
    if problems:
        return result(
            gate,
            FAIL,
            "VMs changed across the step: " + "; ".join(problems),
            "compare with the snapshot the step took before (run dir): re-create "
            "missing VMs from it, `onevm chown`/`onevm migrate` the ones that "
            "changed, or accept the change explicitly",
            **details,
        )
    if same_hosts and unplaced:
        who = listing(f"{r['id']} {r['name']} (was on {r['before']})" for r in unplaced)
        return result(
            gate,
            INCONCLUSIVE,
            f"VMs not placed on a host yet: {who}",
            "wait for the scheduler to deploy them (or `onevm deploy` them to the "
            "host they were on)",
            **details,
        )
    note = f", {len(recreated)} re-created under new ids" if recreated else ""
    note += f", {len(moved)} moved" if moved else ""
    return result(gate, PASS, f"{len(obs.after)} VMs unchanged{note}", **details)


# ------------------------------------------------------------------ duplicate domains


@dataclass(frozen=True)
class HypervisorDomains:
    """``virsh list --name`` on one hypervisor; ``domains`` None when it could not be read."""

    host: str
    domains: tuple[str, ...] | None
    error: str = ""


@dataclass(frozen=True)
class DomainMap:
    """oned's VMs (with their hosts) and the running domains of every hypervisor."""

    vms: tuple[VmSeen, ...]
    hypervisors: tuple[HypervisorDomains, ...]


_DOMAIN = re.compile(r"one-(\d+)")
_MIGRATING = frozenset({LcmState.MIGRATE, LcmState.SAVE_MIGRATE, LcmState.PROLOG_MIGRATE})


def no_duplicate_vms(obs: DomainMap) -> GateResult:
    """``no-duplicate-vms``: every ``one-<id>`` domain runs once, where oned says it runs.

    A domain on two hypervisors, or on a hypervisor oned does not place the VM on, fails
    (naming VM id, name and hosts), unless oned is migrating the VM (then: inconclusive).
    A hypervisor whose ``virsh list`` could not be read is inconclusive. Domains not named
    ``one-<id>`` are ignored.
    """
    gate = "no-duplicate-vms"
    vms = {vm.id: vm for vm in obs.vms}
    placed = {vm.id: vm.host for vm in obs.vms if vm.state is VmState.ACTIVE and vm.host}
    unreadable = [
        {"host": h.host, "error": h.error or "no output"}
        for h in obs.hypervisors
        if h.domains is None
    ]
    read_hosts = {h.host for h in obs.hypervisors if h.domains is not None}
    running: dict[int, list[str]] = defaultdict(list)
    for hyp in obs.hypervisors:
        for domain in hyp.domains or ():
            match = _DOMAIN.fullmatch(domain.strip())
            if match:
                running[int(match.group(1))].append(hyp.host)
    duplicates, misplaced, migrating = [], [], []
    for vm_id, hosts in sorted(running.items()):
        vm = vms.get(vm_id)
        row = {
            "id": vm_id,
            "name": vm.name if vm else None,
            "hosts": sorted(hosts),
            "oned_host": placed.get(vm_id),
            "oned_state": vm.state_name if vm else "not in oned",
        }
        if vm is not None and vm.state is VmState.ACTIVE and vm.lcm_state in _MIGRATING:
            if len(hosts) > 1 or placed.get(vm_id) not in hosts:
                migrating.append(row)
        elif len(hosts) > 1:
            duplicates.append(row)
        elif placed.get(vm_id) != hosts[0]:
            misplaced.append(row)
    unverified = sorted(
        {host for host in placed.values() if host not in read_hosts}
        - {u["host"] for u in unreadable}
    )
    absent = [
        {"id": vm_id, "name": vms[vm_id].name, "host": host}
        for vm_id, host in sorted(placed.items())
        if host in read_hosts and host not in running.get(vm_id, ())
    ]
    details = {
        "duplicates": duplicates,
        "misplaced": misplaced,
        "migrating": migrating,
        "unreadable": unreadable,
        "unverified_hosts": unverified,
        "not_running": absent,
        "hypervisors": sorted(h.host for h in obs.hypervisors),
    }
    problems = [
        f"VM {d['id']} {d['name'] or '(unknown to oned)'} runs on {' and '.join(d['hosts'])}"
        for d in duplicates
    ]
    problems += [
        f"VM {m['id']} {m['name'] or '(unknown to oned)'} runs on {m['hosts'][0]} "
        f"but oned says {m['oned_host'] or m['oned_state']}"
        for m in misplaced
    ]
    if problems:
        return result(
            gate,
            FAIL,
            "; ".join(problems),
            "a VM running twice corrupts its disk: destroy the copy oned does not "
            "know about (`virsh destroy one-<id>` on that host, never `undefine` "
            "the disk), then check libvirtd there",
            **details,
        )
    if unreadable or unverified or migrating:
        parts = [f"could not read virsh on {u['host']}: {u['error']}" for u in unreadable]
        parts += [f"no virsh list from {host}" for host in unverified]
        parts += [
            f"VM {m['id']} {m['name']} migrating ({', '.join(m['hosts'])})" for m in migrating
        ]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts),
            "check libvirtd and ssh on the named hypervisors (`virsh list` as "
            "oneadmin), or wait for the migration to finish",
            **details,
        )
    count = sum(len(h) for h in running.values())
    return result(
        gate,
        PASS,
        f"{count} one-* domains on {len(read_hosts)} hypervisors, "
        "each once and where oned places it",
        **details,
    )
