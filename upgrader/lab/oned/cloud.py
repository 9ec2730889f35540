"""The simulated cloud's state: pools, persistence, ids, and the event queue.

``Cloud`` owns every pool object, keeps the stored body of each up to date (pool calls
return those bodies), writes changes to the database in batches, and runs timed
events in simulated time. The state machines live in their own modules: a VM's life in
``vm_lcm.py``, its moves in ``vm_migration.py``, hosts (monitoring, VM poll, error hook)
in ``monitoring.py``, mm_sched in ``scheduler.py``, their numbers in ``states.py``;
XML-RPC handlers in ``api.py``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from upgrader.lab.oned import leases
from upgrader.lab.oned.clock import SimClock
from upgrader.lab.oned.objects import (
    Cluster,
    Datastore,
    Group,
    History,
    Host,
    Image,
    PoolObject,
    User,
    Vm,
    VmTemplate,
    VNet,
)
from upgrader.lab.oned.releases import OnedVersion
from upgrader.lab.oned.store import TABLES, Store
from upgrader.lab.oned.virt import VirtView

# Error codes of oned's Request.h.
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000

OBJECT_NAMES = {
    Vm: "virtual machine",
    Host: "host",
    VNet: "virtual network",
    Image: "image",
    User: "user",
    VmTemplate: "virtual machine template",
    Group: "group",
    Datastore: "datastore",
    Cluster: "cluster",
}
POOL_CLASSES: tuple[type[PoolObject], ...] = (
    User,
    Group,
    Host,
    Image,
    VmTemplate,
    VNet,
    Vm,
    Datastore,
    Cluster,
)


class OneFailure(Exception):
    """A failed call: oned's error code and the message after ``[Class] ``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(cls: type[PoolObject], oid: int) -> OneFailure:
    """oned's NO_EXISTS answer for ``cls`` ``oid``."""
    return OneFailure(NO_EXISTS, f"Error getting {OBJECT_NAMES[cls]} [{oid}].")


def sha1(text: str) -> str:
    """How the core auth driver stores passwords."""
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - what oned 3.x stores


@dataclass
class Timings:
    """Simulated durations in seconds (divided by --speed in real time)."""

    prolog: float = 6.0
    boot: float = 4.0
    shutdown: float = 8.0
    shutdown_timeout: float = 90.0  # a guest that ignores ACPI: back to RUNNING after this
    epilog: float = 4.0
    cancel: float = 1.0
    save_base: float = 2.0
    save_per_mb: float = 1 / 200
    migrate_base: float = 2.0
    migrate_per_mb: float = 1 / 100  # live migration: ~100 MB/s of guest memory
    prolog_migrate: float = 4.0
    monitor: float = 2.0
    monitoring_interval: float = 60.0
    polling_interval: float = 60.0
    sched_interval: float = 30.0
    max_dispatch: int = 30
    max_host: int = 1


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    fn: Callable[..., None] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)


class Cloud:
    """Every pool of one simulated oned, guarded by one lock."""

    def __init__(
        self,
        version: OnedVersion,
        store: Store,
        virt: VirtView,
        clock: SimClock,
        timings: Timings | None = None,
        host_error_hook: str = "none",
    ) -> None:
        self.version = version
        self.series = version.series
        self.store = store
        self.virt = virt
        self.clock = clock
        self.t = timings or Timings()
        self.host_error_hook = host_error_hook
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.pools: dict[type[PoolObject], dict[int, Any]] = {c: {} for c in POOL_CLASSES}
        self.last_oid: dict[type[PoolObject], int] = dict.fromkeys(POOL_CLASSES, -1)
        self.acl: list[tuple[int, int, int, int]] = []
        self.faults: dict[tuple[str, str], dict[str, Any]] = {}
        self.vms_on_host: dict[int, set[int]] = {}
        self.monitoring: dict[tuple[str, int], list[str]] = {}  # 3.6 samples
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._dirty: set[tuple[type[PoolObject], int]] = set()
        self._dirty_history: set[tuple[int, int]] = set()
        self._deleted: set[tuple[type[PoolObject], int]] = set()

    # ----------------------------------------------------------------- pools
    def pool(self, cls: type[PoolObject]) -> dict[int, Any]:
        """The objects of one pool by oid (insertion = oid order)."""
        return self.pools[cls]

    def get(self, cls: type[PoolObject], oid: int) -> Any:
        """One object, or oned's not-found failure."""
        obj = self.pools[cls].get(oid)
        if obj is None:
            raise not_found(cls, oid)
        return obj

    def find(self, cls: type[PoolObject], name: str) -> Any | None:
        """The object called ``name``, if any."""
        for obj in self.pools[cls].values():
            if obj.name == name:
                return obj
        return None

    def add(self, cls: type[PoolObject], obj: PoolObject, *, first_user_oid: int = 0) -> int:
        """Give ``obj`` the next oid of its pool, store it, and return the oid."""
        oid = max(self.last_oid[cls] + 1, first_user_oid)
        self.last_oid[cls] = oid
        obj.oid = oid  # type: ignore[attr-defined]
        self.pools[cls][oid] = obj
        self.save(obj)
        return oid

    def remove(self, obj: PoolObject) -> None:
        """Drop an object from its pool and the database."""
        cls = type(obj)
        del self.pools[cls][obj.oid]  # type: ignore[attr-defined]
        self._deleted.add((cls, obj.oid))  # type: ignore[attr-defined]
        self._dirty.discard((cls, obj.oid))  # type: ignore[attr-defined]

    def save(self, obj: PoolObject) -> None:
        """Re-serialise ``obj`` as its stored body and mark it for the database."""
        obj.body = obj.to_xml(self.series)
        self._dirty.add((type(obj), obj.oid))  # type: ignore[attr-defined]
        if isinstance(obj, Vm) and obj.history:
            self._dirty_history.add((obj.oid, obj.history[-1].seq))

    def pool_xml(self, cls: type[PoolObject], objs: list[Any], tag: str) -> str:
        """A pool document: the stored bodies, in oid order."""
        return f"<{tag}>" + "".join(o.body for o in objs) + f"</{tag}>"

    # ------------------------------------------------------------ persistence
    def load(self) -> None:
        """Read every pool from the database (bodies as stored, then parsed by name)."""
        for cls in POOL_CLASSES:
            for oid, body in self.store.bodies(cls.TABLE):
                obj = cls.from_xml(body)
                obj.body = body
                self.pools[cls][oid] = obj
            self.last_oid[cls] = (
                self.store.last_oid(cls.TABLE) if "pool_control" in self.store.tables() else -1
            )
        histories: dict[int, list[History]] = {}
        for vid, _seq, body in self.store.history_bodies():
            histories.setdefault(vid, []).append(History.from_xml(body))  # type: ignore[arg-type]
        for vid, vm in self.pools[Vm].items():
            if vid in histories:
                vm.history = histories[vid]
        for nid, net in self.pools[VNet].items():
            net.leases = leases.from_bodies(self.store.lease_bodies(nid))
        self.acl = list(self.store.conn.execute("SELECT oid, user, resource, rights FROM acl"))
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the VM-per-host index from VM states."""
        self.vms_on_host = {hid: set() for hid in self.pools[Host]}
        for vm in self.pools[Vm].values():
            for hid in self.hosts_of(vm):
                self.vms_on_host.setdefault(hid, set()).add(vm.oid)

    def hosts_of(self, vm: Vm) -> list[int]:
        """Hosts whose capacity ``vm`` holds: its current one, and the source while migrating."""
        if vm.state not in (3, 5) or not vm.history:  # ACTIVE or SUSPENDED hold capacity
            return []
        hosts = [vm.history[-1].hid]
        if vm.lcm_state == 4 and len(vm.history) > 1:  # MIGRATE
            hosts.append(vm.history[-2].hid)
        return hosts

    def flush(self) -> None:
        """Write every changed object to the database in one transaction."""
        if not (self._dirty or self._deleted or self._dirty_history):
            return
        dirty, self._dirty = self._dirty, set()
        deleted, self._deleted = self._deleted, set()
        dirty_history, self._dirty_history = self._dirty_history, set()
        with self.store.transaction():
            for cls, oid in deleted:
                self.store.delete(cls.TABLE, "oid", oid)
                if cls is VNet:
                    self.store.delete("leases", "oid", oid)
            for cls, oid in dirty:
                obj = self.pools[cls].get(oid)
                if obj is not None:
                    self.store.upsert(cls.TABLE, self.row(obj))
                if isinstance(obj, VNet):  # oned writes each lease as it changes
                    self.store.replace_leases(oid, [leases.to_row(oid, le) for le in obj.leases])
            for vid, seq in dirty_history:
                vm = self.pools[Vm].get(vid)
                if vm is None:
                    continue
                for h in vm.history:
                    if h.seq == seq:
                        self.store.upsert("history", self.history_row(vid, h))
            for cls in POOL_CLASSES:
                if self.last_oid[cls] >= 0 and cls.TABLE in TABLES[self.series]:
                    self.store.set_last_oid(cls.TABLE, self.last_oid[cls])

    def row(self, obj: Any) -> dict[str, object]:
        """The database row of a pool object."""
        perms = getattr(obj, "perms", [1, 1, 0, 0, 0, 0, 0, 0, 0])
        row: dict[str, object] = {
            "oid": obj.oid,
            "name": obj.name,
            "body": obj.body,
            "uid": getattr(obj, "uid", 0),
            "gid": getattr(obj, "gid", 0),
            "owner_u": perms[0],
            "group_u": perms[3],
            "other_u": perms[6],
        }
        if isinstance(obj, Vm):
            row.update(last_poll=obj.last_poll, state=obj.state, lcm_state=obj.lcm_state)
        if isinstance(obj, Host):
            row.update(state=obj.state, last_mon_time=obj.last_mon_time)
        return row

    def history_row(self, vid: int, h: History) -> dict[str, object]:
        """The history table row of one record."""
        row: dict[str, object] = {"vid": vid, "seq": h.seq, "body": h.to_xml(self.series)}
        if self.version.is_36:
            row.update(stime=h.stime, etime=h.etime)
        return row

    # -------------------------------------------------------------- bootstrap
    def bootstrap(self, admin: str, password: str) -> None:
        """What a first start of oned creates: users, groups, ACLs, (3.4+) datastores."""
        self.add(Group, Group(name="oneadmin", users=[0, 1]))
        self.add(Group, Group(name="users", users=[]))
        self.add(User, User(name=admin, gid=0, gname="oneadmin", password=sha1(password)))
        self.add(
            User,
            User(
                name="serveradmin",
                gid=0,
                gname="oneadmin",
                auth_driver="server_cipher",
                password=sha1(secrets.token_hex(16)),
            ),
        )
        group_id, all_id = 0x200000000, 0x400000000
        vm, host, net, image, tmpl, ds = (
            0x1000000000,
            0x2000000000,
            0x4000000000,
            0x8000000000,
            0x20000000000,
            0x100000000000,
        )
        self.acl = [
            (
                0,
                group_id | 1,
                all_id | vm | net | image | tmpl,
                0x8,
            ),  # @1 VM+NET+IMAGE+TEMPLATE/* CREATE
            (1, group_id | 1, all_id | host, 0x2),  # @1 HOST/* MANAGE
        ]
        if self.version.has_clusters:
            self.acl.append((2, group_id | 1, ds | 0x100000000 | 1, 0x1))  # @1 DATASTORE/#1 USE
            self.add(
                Datastore,
                Datastore(
                    name="system",
                    ds_mad="-",
                    tm_mad="shared",
                    base_path="/var/lib/one/datastores/0",
                    system=1 if self.version.is_36 else 0,
                    template=[("DS_MAD", "-"), ("TM_MAD", "shared")]
                    + ([("SYSTEM", "YES")] if self.version.is_36 else []),
                ),
            )
            self.add(
                Datastore,
                Datastore(
                    name="default",
                    ds_mad="fs",
                    tm_mad="shared",
                    base_path="/var/lib/one/datastores/1",
                    perms=[1, 1, 0, 1, 0, 0, 1, 0, 0],
                    template=[("DS_MAD", "fs"), ("TM_MAD", "shared")],
                ),
            )
            self.last_oid[Datastore] = 99
            self.last_oid[Cluster] = 99
        with self.store.transaction():
            for row in self.acl:
                self.store.conn.execute(
                    "INSERT OR REPLACE INTO acl (oid, user, resource, rights) VALUES (?,?,?,?)", row
                )
        self.flush()

    # ------------------------------------------------------------------ events
    def at(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` after ``delay`` simulated seconds (under the lock)."""
        heapq.heappush(self._events, _Event(self.clock.now() + delay, next(self._seq), fn, args))
        self.wake.notify_all()

    def run_due(self) -> float:
        """Run every due event; return real seconds until the next one (capped)."""
        now = self.clock.now()
        while self._events and self._events[0].due <= now:
            ev = heapq.heappop(self._events)
            ev.fn(*ev.args)
        if not self._events:
            return 0.2
        return max(0.0, min(0.2, self.clock.real_seconds(self._events[0].due - now)))

    # ------------------------------------------------------------------ faults
    def fault(self, name: str, target: str = "") -> dict[str, Any] | None:
        """The parameters of an active fault on ``target`` (or on every target), if any."""
        for key in ((name, target), (name, "")):
            if key in self.faults:
                return self.faults[key]
        return None

    def host_down_reason(self, host: Host) -> str | None:
        """Why drivers cannot act on ``host`` right now, or None when they can."""
        if self.fault("host-unreachable", host.name) is not None:
            return f"ssh: connect to host {host.name} port 22: No route to host"
        if self.fault("libvirtd-crash", host.name) is not None:
            return "error: failed to connect to the hypervisor"
        return None
