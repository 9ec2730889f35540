"""Verdicts of the gates that read OpenNebula itself: oned, hosts, VMs, duplicate domains.

Each function takes an observation (a frozen dataclass of plain data, built from what the
gate read through ``OneClient`` or on the hypervisors) plus the gate's parameters, and
returns a ``GateResult``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from upgrader.executor import GateResult
from upgrader.gates.verdicts_base import FAIL, INCONCLUSIVE, PASS, listing, result
from upgrader.opennebula.enums import HostState, LcmState, VmState
from upgrader.opennebula.models import Host, Vm
from upgrader.versions import RELEASES

# ------------------------------------------------------------------ observations


@dataclass(frozen=True)
class OnedAnswer:
    """Whether oned answered a read-only call at ``endpoint``, or the error text."""

    endpoint: str
    answered: bool
    error: str = ""
    host_count: int | None = None


@dataclass(frozen=True)
class OnedVersionSeen:
    """The series found by probing, ``onedb version`` on the front end, the oned package."""

    probed_series: str | None  # "3.4"; None when the probe failed
    onedb_version: str | None  # "3.4.1"; None when `onedb version` could not be read
    package_version: str | None = None  # installed opennebula package, e.g. "3.4.1"
    probe_error: str = ""


@dataclass(frozen=True)
class HostSeen:
    """One host as oned lists it."""

    id: int
    name: str
    state: HostState
    error: str | None = None  # the last ERROR/MESSAGE of the host template

    @classmethod
    def from_host(cls, host: Host) -> HostSeen:
        return cls(host.id, host.name, host.state, host.error_message)


@dataclass(frozen=True)
class HostPool:
    """Every host oned lists."""

    hosts: tuple[HostSeen, ...]

    @classmethod
    def from_hosts(cls, hosts: Iterable[Host]) -> HostPool:
        return cls(tuple(HostSeen.from_host(h) for h in hosts))


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


# ------------------------------------------------------------------ oned


def oned_reachable(obs: OnedAnswer) -> GateResult:
    """``oned-reachable``: oned answered a read-only call."""
    gate = "oned-reachable"
    if obs.answered:
        count = "" if obs.host_count is None else f" with {obs.host_count} hosts"
        return result(
            gate,
            PASS,
            f"oned at {obs.endpoint} answered{count}",
            endpoint=obs.endpoint,
            host_count=obs.host_count,
        )
    error = obs.error or "no answer"
    lowered = error.lower()
    if "authenticat" in lowered or "auth" in lowered.split():
        hint = (
            "oned answers but refuses the credentials: check the user and password "
            "(one_auth) upgrader.yml points at"
        )
    else:
        hint = (
            "start oned on the front end (Pacemaker resource oned, or /etc/init.d/one "
            "start) and check the endpoint in upgrader.yml; oned.log says why it stopped"
        )
    return result(
        gate,
        FAIL,
        f"oned at {obs.endpoint} did not answer: {error}",
        hint,
        endpoint=obs.endpoint,
        error=error,
    )


def _series(version: str) -> str:
    return ".".join(version.strip().lstrip("vV").split(".")[:2])


def oned_version(
    obs: OnedVersionSeen,
    *,
    expect: str = "",
    db_version: str | None = None,
    require_onedb: bool = True,
) -> GateResult:
    """``oned-version``: oned is the expected series and its database is the version it needs.

    ``expect`` is a series ("3.4") or a release ("3.4.1"); ``db_version`` overrides the
    database version the installed oned needs (default: the package release, or the
    release upgrader installs for the series).
    """
    gate = "oned-version"
    expected_series = _series(expect) if expect else None
    details = {
        "probed_series": obs.probed_series,
        "onedb_version": obs.onedb_version,
        "package_version": obs.package_version,
        "expected_series": expected_series,
    }
    if obs.probed_series is None:
        return result(
            gate,
            INCONCLUSIVE,
            f"could not probe oned's version: {obs.probe_error or 'no answer'}",
            "check oned-reachable first: the version is probed through oned",
            **details,
            error=obs.probe_error,
        )
    if expected_series and obs.probed_series != expected_series:
        return result(
            gate,
            FAIL,
            f"oned is {obs.probed_series}, expected {expected_series}",
            "the installed opennebula package is not the one this step expects: "
            "see the previous step's output and `dpkg -l opennebula` on the front end",
            **details,
        )
    if obs.package_version and _series(obs.package_version) != obs.probed_series:
        return result(
            gate,
            FAIL,
            f"package {obs.package_version} installed but oned answers as {obs.probed_series}",
            "the running oned is not the installed one: restart oned "
            "(Pacemaker resource oned) after the package upgrade",
            **details,
        )
    needed = db_version or obs.package_version or RELEASES.get(obs.probed_series)
    details["needed_db_version"] = needed
    if obs.onedb_version is None:
        if not require_onedb:
            return result(
                gate,
                PASS,
                f"oned is {obs.probed_series} (database version "
                "not confirmed: `onedb version` was not read)",
                **details,
            )
        return result(
            gate,
            INCONCLUSIVE,
            f"oned is {obs.probed_series} but `onedb version` could not be read",
            "run `onedb version` as oneadmin on the front end and check the "
            "database credentials in oned.conf (DB section)",
            **details,
        )
    if needed and obs.onedb_version.strip() != needed:
        who = f"oned {obs.package_version}" if obs.package_version else f"oned {needed}"
        return result(
            gate,
            FAIL,
            f"database is at {obs.onedb_version} but {who} needs {needed}",
            f"the database upgrade stopped short of {needed} (a package once shipped "
            "an onedb that stopped one migration early, and oned then refused the "
            "database): stop oned, back up the database and run `onedb upgrade "
            f"--backup <file>` with the onedb of {needed}, then start oned",
            **details,
        )
    return result(
        gate, PASS, f"oned is {obs.probed_series}, database at {obs.onedb_version}", **details
    )


# ------------------------------------------------------------------ hosts

# INIT: just added, not polled yet; MONITORING (3.6: MONITORING_MONITORED) and 3.6's
# MONITORING_ERROR: a poll is under way. All settle by themselves.
_TRANSIENT_HOST_STATES = frozenset(
    {HostState.INIT, HostState.MONITORING, HostState.MONITORING_ERROR}
)


def hosts_monitored(
    obs: HostPool,
    *,
    allow_disabled: Sequence[str] = (),
    expect_hosts: Sequence[str] = (),
) -> GateResult:
    """``hosts-monitored``: every host MONITORED (transient monitoring states waited out).

    ERROR fails naming the host and its message; DISABLED fails unless the step disabled
    the host itself (``allow_disabled``); ``expect_hosts`` must all be listed.
    """
    gate = "hosts-monitored"
    errors = [
        {"id": h.id, "name": h.name, "error": h.error or "(no message)"}
        for h in obs.hosts
        if h.state is HostState.ERROR
    ]
    disabled = [
        h.name for h in obs.hosts if h.state is HostState.DISABLED and h.name not in allow_disabled
    ]
    waiting = [
        {"id": h.id, "name": h.name, "state": HostState(h.state).name}
        for h in obs.hosts
        if h.state in _TRANSIENT_HOST_STATES
    ]
    listed = {h.name for h in obs.hosts}
    missing = [name for name in expect_hosts if name not in listed]
    details = {
        "hosts": {h.name: HostState(h.state).name for h in obs.hosts},
        "errors": errors,
        "disabled": disabled,
        "waiting": waiting,
        "missing": missing,
    }
    if not obs.hosts:
        return result(
            gate,
            FAIL,
            "oned lists no hosts",
            "add the hypervisors back with `onehost create` or check that upgrader "
            "talks to the right oned",
            **details,
        )
    problems = [f"{e['name']} in ERROR: {e['error']}" for e in errors]
    problems += [f"{name} DISABLED" for name in disabled]
    problems += [f"{name} not listed" for name in missing]
    if problems:
        hints = []
        if errors:
            hints.append(
                "read the host's error (`onehost show`), fix ssh/libvirtd on it, "
                "then `onehost enable` it or wait for the next monitoring cycle"
            )
        if disabled:
            hints.append(
                f"re-enable {listing(disabled)} with `onehost enable` if nobody "
                "disabled it on purpose"
            )
        if missing:
            hints.append("a host upgrader knew is gone from oned: `onehost create` it again")
        return result(gate, FAIL, "; ".join(problems), "; ".join(hints), **details)
    if waiting:
        who = listing(f"{w['name']} ({w['state']})" for w in waiting)
        return result(
            gate,
            INCONCLUSIVE,
            f"still waiting for {who}",
            "monitoring is under way; if it does not settle, check that oned can "
            "ssh to the host and run its probes (`onehost show`, oned.log)",
            **details,
        )
    return result(gate, PASS, f"all {len(obs.hosts)} hosts MONITORED", **details)


# ------------------------------------------------------------------ VMs

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
