"""Verdicts on the VMs oned lists: vms-settled, vms-unchanged.

Pure: no I/O, no clock. ``vms_unchanged`` pairs the VMs before and after a step once
(``pair_vms``) and judges the pairing with named checks (``VMS_UNCHANGED_CHECKS``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import CheckOutcome, evidence, judged, listed, listing
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


def _failed(vm: VmSeen) -> bool:
    return vm.state is VmState.FAILED or (
        vm.state is VmState.ACTIVE and vm.lcm_state in _FAILED_LCM
    )


def _transient(vm: VmSeen) -> bool:
    return vm.state is VmState.INIT or (
        vm.state is VmState.ACTIVE and vm.lcm_state not in _SETTLED_LCM
    )


def _state_line(row: dict[str, object]) -> str:
    return f"{row['id']} {row['name']} ({row['state']})"


def _failed_line(row: dict[str, object]) -> str:
    on = f" on {row['host']}" if row["host"] else ""
    return f"{row['id']} {row['name']} ({row['state']}{on})"


def vms_settled(obs: VmPool) -> GateResult:
    """``vms-settled``: no VM in a transient state; FAILED or UNKNOWN ones fail by name.

    Transient: STATE INIT, or ACTIVE with any LCM state other than RUNNING, UNKNOWN or
    FAILURE (PROLOG*, BOOT, MIGRATE, SAVE_*, EPILOG*, SHUTDOWN, CANCEL, CLEANUP, HOTPLUG).
    """
    live = [vm for vm in obs.vms if vm.state is not VmState.DONE]
    failed = [_vm_row(vm) for vm in live if _failed(vm)]
    moving = [_vm_row(vm) for vm in live if _transient(vm)]
    details = {"vm_count": len(live), "failed": failed, "transient": moving}
    return judged(
        "vms-settled",
        (
            CheckOutcome(problems=listed("VMs failed or unknown", map(_failed_line, failed))),
            CheckOutcome(
                waiting=listed("still waiting for VMs to settle", map(_state_line, moving))
            ),
        ),
        details,
        passed=f"{len(live)} VMs settled",
        fail_hint="look at each VM's log (/var/log/one/<id>.log) and its host; recover it "
        "(`onevm restart`/`onevm resubmit`) or delete it before going on",
        wait_hint="oned is still moving these VMs; if one stays in the same state, read its "
        "log (/var/log/one/<id>.log) and the host's libvirtd",
    )


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


@dataclass(frozen=True)
class VmPair:
    """One VM before and after the step (a re-created VM: under its new id)."""

    before: VmIdentity
    after: VmIdentity


@dataclass(frozen=True)
class VmPairing:
    """The VMs before and after a step, paired by id, then by name and owner (a VM
    re-created under a new id, as the 3.2 -> 3.4 hop does); what is left over is missing
    or new."""

    pairs: tuple[VmPair, ...] = ()  # by id in the order before, then the re-created ones
    recreated: tuple[VmPair, ...] = ()
    missing: tuple[VmIdentity, ...] = ()
    new: tuple[VmIdentity, ...] = ()


def pair_vms(obs: VmSnapshots) -> VmPairing:
    """Pair the VMs of ``obs`` (see ``VmPairing``)."""
    after_by_id = {vm.id: vm for vm in obs.after}
    pairs: list[VmPair] = []
    unpaired: list[VmIdentity] = []
    for vm in obs.before:
        if vm.id in after_by_id:
            pairs.append(VmPair(vm, after_by_id.pop(vm.id)))
        else:
            unpaired.append(vm)
    pool: dict[tuple[str, str], list[VmIdentity]] = defaultdict(list)
    for vm in sorted(after_by_id.values(), key=lambda v: v.id):
        pool[(vm.name, vm.owner)].append(vm)
    recreated: list[VmPair] = []
    missing: list[VmIdentity] = []
    for vm in unpaired:
        candidates = pool.get((vm.name, vm.owner))
        if candidates:
            recreated.append(VmPair(vm, candidates.pop(0)))
        else:
            missing.append(vm)
    new = tuple(vm for group in pool.values() for vm in group)
    return VmPairing((*pairs, *recreated), tuple(recreated), tuple(missing), new)


def _ident(vm: VmIdentity) -> dict[str, object]:
    return {"id": vm.id, "name": vm.name, "owner": vm.owner, "host": vm.host}


def _change(pair: VmPair, before: object, after: object) -> dict[str, object]:
    return {"id": pair.after.id, "name": pair.after.name, "before": before, "after": after}


def vms_unchanged(obs: VmSnapshots, *, same_hosts: bool = False) -> GateResult:
    """``vms-unchanged``: same VMs (names, owners; hosts if ``same_hosts``) after a step.

    VMs are paired by id, then (a VM re-created under a new id, as the 3.2 -> 3.4 hop does)
    by name and owner. Reports missing, new, renamed, re-owned, moved and re-created VMs.

    Named checks, over the pairing: ``none_missing``, ``none_new``, ``names_kept``,
    ``owners_kept``, ``hosts_kept``.
    """
    paired = pair_vms(obs)
    found = (
        none_missing(paired),
        none_new(paired),
        names_kept(paired),
        owners_kept(paired),
        hosts_kept(paired, same_hosts=same_hosts),
    )
    recreated = [
        {"name": p.before.name, "old_id": p.before.id, "new_id": p.after.id}
        for p in paired.recreated
    ]
    details = {
        "before_count": len(obs.before),
        "after_count": len(obs.after),
        **evidence(*found),
        "recreated": recreated,
        "same_hosts": same_hosts,
    }
    moved = len(found[-1].details["moved"])
    note = f", {len(recreated)} re-created under new ids" if recreated else ""
    note += f", {moved} moved" if moved else ""
    return judged(
        "vms-unchanged",
        found,
        details,
        passed=f"{len(obs.after)} VMs unchanged{note}",
        fail_prefix="VMs changed across the step: ",
        fail_hint="compare with the snapshot the step took before (run dir): re-create "
        "missing VMs from it, `onevm chown`/`onevm migrate` the ones that "
        "changed, or accept the change explicitly",
        wait_hint="wait for the scheduler to deploy them (or `onevm deploy` them to the "
        "host they were on)",
    )


def _found(
    key: str, rows: list[dict[str, object]], label: str, line: Callable[[dict[str, object]], str]
) -> CheckOutcome:
    """``rows`` as the evidence ``key``; a row fails the check, named as ``label`` and its line."""
    problems = (f"{label} {listing(line(r) for r in rows)}",) if rows else ()
    return CheckOutcome({key: rows}, problems)


def _id_name(row: dict[str, object]) -> str:
    return f"{row['id']} {row['name']}"


def _id_change(row: dict[str, object]) -> str:
    return f"{row['id']} {row['before']} -> {row['after']}"


def _id_name_change(row: dict[str, object]) -> str:
    return f"{row['id']} {row['name']} {row['before']} -> {row['after']}"


def none_missing(paired: VmPairing) -> CheckOutcome:
    """Every VM of before is there after (under its id, or re-created)."""
    return _found("missing", [_ident(vm) for vm in paired.missing], "missing", _id_name)


def none_new(paired: VmPairing) -> CheckOutcome:
    """No VM after the step that was not there before."""
    return _found("new", [_ident(vm) for vm in paired.new], "new", _id_name)


def names_kept(paired: VmPairing) -> CheckOutcome:
    """Every VM keeps its name."""
    renamed = [
        {"id": p.after.id, "before": p.before.name, "after": p.after.name}
        for p in paired.pairs
        if p.before.name != p.after.name
    ]
    return _found("renamed", renamed, "renamed", _id_change)


def owners_kept(paired: VmPairing) -> CheckOutcome:
    """Every VM keeps its owner."""
    reowned = [
        _change(p, p.before.owner, p.after.owner)
        for p in paired.pairs
        if p.before.owner != p.after.owner
    ]
    return _found("reowned", reowned, "re-owned", _id_name_change)


def hosts_kept(paired: VmPairing, *, same_hosts: bool = False) -> CheckOutcome:
    """With ``same_hosts``, every VM is on the host it was on: a moved VM fails, one not
    placed on a host yet is waited for. Without, moves are only reported."""
    moved: list[dict[str, object]] = []
    unplaced: list[dict[str, object]] = []
    for p in paired.pairs:
        if p.before.host != p.after.host:
            row = _change(p, p.before.host, p.after.host)
            (unplaced if p.after.host is None and p.before.host is not None else moved).append(row)
    details = {"moved": moved, "unplaced": unplaced}
    if not same_hosts:
        return CheckOutcome(details)
    who = listing(f"{r['id']} {r['name']} (was on {r['before']})" for r in unplaced)
    return CheckOutcome(
        details,
        _found("moved", moved, "moved", _id_name_change).problems,
        (f"VMs not placed on a host yet: {who}",) if unplaced else (),
    )


VMS_UNCHANGED_CHECKS = (none_missing, none_new, names_kept, owners_kept, hosts_kept)
"""The named checks of vms-unchanged (each with its case files)."""
