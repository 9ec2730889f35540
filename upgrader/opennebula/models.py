"""Typed, immutable snapshots of OpenNebula 3.x objects, the same for 3.2, 3.4 and 3.6.

A field that a version does not have is None (e.g. ``Host.tm_mad`` outside 3.2). Integers
and enums are converted; everything else is the text oned sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from upgrader.opennebula.enums import (
    DiskType,
    HistoryReason,
    HostState,
    ImageState,
    ImageType,
    LcmState,
    VmState,
)
from upgrader.opennebula.template import Template, Vector

# ACTIVE VMs in these LCM states sit still until someone acts; every other one is moving.
_SETTLED_LCM_STATES = frozenset({LcmState.RUNNING, LcmState.UNKNOWN})


@dataclass(frozen=True, slots=True)
class Permissions:
    """The nine use/manage/admin bits of owner, group and others."""

    owner_u: bool
    owner_m: bool
    owner_a: bool
    group_u: bool
    group_m: bool
    group_a: bool
    other_u: bool
    other_m: bool
    other_a: bool

    @property
    def octal(self) -> str:
        """The bits as three octal digits, as ``onevm chmod`` takes them (e.g. ``"600"``)."""
        rows = (
            (self.owner_u, self.owner_m, self.owner_a),
            (self.group_u, self.group_m, self.group_a),
            (self.other_u, self.other_m, self.other_a),
        )
        return "".join(str(u * 4 + m * 2 + a) for u, m, a in rows)


@dataclass(frozen=True, slots=True)
class HostShare:
    """HOST_SHARE: capacity (CPU in percent of a core, memory in KB) and what VMs reserve."""

    disk_usage: int
    mem_usage: int
    cpu_usage: int
    max_disk: int
    max_mem: int
    max_cpu: int
    free_disk: int
    free_mem: int
    free_cpu: int
    used_disk: int
    used_mem: int
    used_cpu: int
    running_vms: int


@dataclass(frozen=True, slots=True)
class Host:
    """A hypervisor host; ``tm_mad`` only in 3.2, ``cluster_id``/``cluster`` from 3.4."""

    id: int
    name: str
    state: HostState
    im_mad: str
    vm_mad: str
    vn_mad: str
    tm_mad: str | None
    last_mon_time: int
    cluster_id: int | None
    cluster: str | None
    share: HostShare
    template: Template

    @property
    def is_enabled(self) -> bool:
        """False only when the host was disabled (``onehost disable``)."""
        return self.state is not HostState.DISABLED

    @property
    def error_message(self) -> str | None:
        """The MESSAGE of the template's last ERROR vector (set when monitoring fails)."""
        errors = self.template.vectors("ERROR")
        return errors[-1].get("MESSAGE") if errors else None


@dataclass(frozen=True, slots=True)
class History:
    """One stay of a VM on a host (a HISTORY record); times are Unix seconds, 0 = not yet.

    ``vm_dir`` exists only in 3.2, ``oid`` and ``ds_id`` only in 3.6, ``tmmad`` in 3.2 and
    3.6 (in 3.6 it is the system datastore's transfer driver).
    """

    oid: int | None
    seq: int
    hostname: str
    vm_dir: str | None
    hid: int
    stime: int
    etime: int
    vmmmad: str
    vnmmad: str
    tmmad: str | None
    ds_id: int | None
    pstime: int
    petime: int
    rstime: int
    retime: int
    estime: int
    eetime: int
    reason: HistoryReason


@dataclass(frozen=True, slots=True)
class Vm:
    """A virtual machine with its template and history records (the last is the current one).

    ``memory``/``cpu``/``net_tx``/``net_rx`` are the monitoring values of the last poll
    (KB, percent, bytes); the requested capacity is in ``template`` (MEMORY in MB, CPU).
    Pool calls carry only the last history record; ``OneClient.vm`` carries all of them.
    ``resched`` exists from 3.6.
    """

    id: int
    uid: int
    gid: int
    uname: str
    gname: str
    name: str
    permissions: Permissions | None
    last_poll: int
    state: VmState
    lcm_state: LcmState
    resched: bool | None
    stime: int
    etime: int
    deploy_id: str
    memory: int
    cpu: int
    net_tx: int
    net_rx: int
    template: Template
    history: tuple[History, ...]

    @property
    def last_history(self) -> History | None:
        """The current (highest SEQ) history record, or None if the VM never had a host."""
        if len(self.history) == 1:  # what pool calls give: only the last record
            return self.history[0]
        return max(self.history, key=lambda record: record.seq) if self.history else None

    @property
    def host(self) -> str | None:
        """Hostname of the last history record, or None."""
        last = self.last_history
        return last.hostname if last else None

    @property
    def host_id(self) -> int | None:
        """Host id (HID) of the last history record, or None."""
        last = self.last_history
        return last.hid if last else None

    @property
    def disks(self) -> tuple[Vector, ...]:
        """The template's DISK vectors."""
        return self.template.vectors("DISK")

    @property
    def nics(self) -> tuple[Vector, ...]:
        """The template's NIC vectors."""
        return self.template.vectors("NIC")

    @property
    def is_running(self) -> bool:
        """ACTIVE and RUNNING."""
        return self.state is VmState.ACTIVE and self.lcm_state is LcmState.RUNNING

    @property
    def is_done(self) -> bool:
        """In the DONE state (deleted; kept in the database only)."""
        return self.state is VmState.DONE

    @property
    def is_transient(self) -> bool:
        """oned is moving the VM between states (booting, saving, migrating, ...).

        True for STATE INIT and for ACTIVE with any LCM state other than RUNNING or UNKNOWN;
        such a VM must be left to settle before an upgrade step.
        """
        if self.state is VmState.INIT:
            return True
        return self.state is VmState.ACTIVE and self.lcm_state not in _SETTLED_LCM_STATES


@dataclass(frozen=True, slots=True)
class Image:
    """An image; ``datastore_id``/``datastore`` from 3.4, ``disk_type``/``cloning_*`` 3.6."""

    id: int
    uid: int
    gid: int
    uname: str
    gname: str
    name: str
    permissions: Permissions | None
    type: ImageType
    disk_type: DiskType | None
    persistent: bool
    regtime: int
    source: str
    path: str
    fstype: str
    size: int
    state: ImageState
    running_vms: int
    cloning_ops: int | None
    cloning_id: int | None
    datastore_id: int | None
    datastore: str | None
    template: Template


@dataclass(frozen=True, slots=True)
class Datastore:
    """A datastore (3.4+); ``system`` and ``disk_type`` exist from 3.6."""

    id: int
    uid: int
    gid: int
    uname: str
    gname: str
    name: str
    permissions: Permissions | None
    ds_mad: str
    tm_mad: str
    base_path: str
    system: bool | None
    disk_type: DiskType | None
    cluster_id: int
    cluster: str
    images: tuple[int, ...]
    template: Template


@dataclass(frozen=True, slots=True)
class Cluster:
    """A cluster (3.4+) and the ids of its members; ``template`` exists from 3.6."""

    id: int
    name: str
    hosts: tuple[int, ...]
    datastores: tuple[int, ...]
    vnets: tuple[int, ...]
    template: Template | None


@dataclass(frozen=True, slots=True)
class User:
    """A user, without its password hash or quotas."""

    id: int
    gid: int
    gname: str
    name: str
    auth_driver: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class Group:
    """A group and the ids of its users."""

    id: int
    name: str
    users: tuple[int, ...]
