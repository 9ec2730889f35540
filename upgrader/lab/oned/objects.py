"""The simulator's pool objects and their XML, per version, as oned 3.x writes them.

Each class declares its elements in oned's order with the versions that have them
(shared/reference/opennebula-3x.md section 2). One generic writer and one generic
reader serve every class, so element order and version differences live in one table.
Readers look elements up by name: bodies rewritten by ``onedb upgrade`` have the new
elements at the end, exactly as the Ruby migrators leave them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from upgrader.lab.oned import template_attrs as tpl

PERM_TAGS = (
    "OWNER_U",
    "OWNER_M",
    "OWNER_A",
    "GROUP_U",
    "GROUP_M",
    "GROUP_A",
    "OTHER_U",
    "OTHER_M",
    "OTHER_A",
)
SHARE_TAGS = (
    "DISK_USAGE",
    "MEM_USAGE",
    "CPU_USAGE",
    "MAX_DISK",
    "MAX_MEM",
    "MAX_CPU",
    "FREE_DISK",
    "FREE_MEM",
    "FREE_CPU",
    "USED_DISK",
    "USED_MEM",
    "USED_CPU",
    "RUNNING_VMS",
)
QUOTA_TAGS = ("DATASTORE_QUOTA", "NETWORK_QUOTA", "VM_QUOTA", "IMAGE_QUOTA")


@dataclass(frozen=True)
class Field:
    """One element: its tag, the attribute holding it, its kind and the series that have it."""

    tag: str
    attr: str
    kind: str = (
        "int"  # int | str | perms | template | share | ids | history | range | leases | quotas
    )
    series: tuple[str, ...] = ("3.2", "3.4", "3.6")
    default: Any = None


ALL = ("3.2", "3.4", "3.6")
S34 = ("3.4", "3.6")
S36 = ("3.6",)


def _owner_fields() -> list[Field]:
    return [
        Field("ID", "oid"),
        Field("UID", "uid", default=0),
        Field("GID", "gid", default=0),
        Field("UNAME", "uname", "str", default="oneadmin"),
        Field("GNAME", "gname", "str", default="oneadmin"),
        Field("NAME", "name", "str", default=""),
        Field("PERMISSIONS", "perms", "perms"),
    ]


class PoolObject:
    """Base of every pool object: attributes named by its SPEC, plus the stored body."""

    TAG: ClassVar[str]
    TABLE: ClassVar[str]
    SPEC: ClassVar[list[Field]]
    DEFAULT_PERMS: ClassVar[tuple[int, ...]] = (1, 1, 0, 0, 0, 0, 0, 0, 0)

    def __init__(self, **values: Any) -> None:
        for f in self.SPEC:
            setattr(self, f.attr, _default(f, self))
        for key, value in values.items():
            setattr(self, key, value)
        self.body = ""  # the body as stored in the database (what pool calls return)

    def to_xml(self, series: str, *, full: bool = False) -> str:
        """Serialise in canonical order for ``series``; ``full`` = the ``*.info`` form."""
        return write(self, series, full=full)

    @classmethod
    def from_xml(cls, text: str) -> PoolObject:
        """Rebuild an object from a stored body, element by element name."""
        return read(cls, ET.fromstring(text))


def _default(f: Field, obj: PoolObject) -> Any:
    if f.kind == "perms":
        return list(obj.DEFAULT_PERMS)
    if f.kind in ("template", "ids", "history", "leases"):
        return []
    if f.kind == "share":
        return dict.fromkeys(SHARE_TAGS, 0)
    if f.default is not None:
        return f.default
    return "" if f.kind == "str" else (0 if f.kind == "int" else None)


def write(obj: PoolObject, series: str, *, full: bool = False) -> str:
    """Generic writer: the elements of ``obj.SPEC`` present in ``series``, in order."""
    parts = [f"<{obj.TAG}>"]
    for f in obj.SPEC:
        if series not in f.series:
            continue
        value = getattr(obj, f.attr)
        parts.append(_write_field(f, value, series, full))
    parts.append(f"</{obj.TAG}>")
    return "".join(parts)


def _write_field(f: Field, value: Any, series: str, full: bool) -> str:
    tag = f.tag
    kind = f.kind
    if kind == "int":
        return f"<{tag}>{int(value)}</{tag}>"
    if kind == "str":
        return f"<{tag}>{escape(str(value))}</{tag}>"
    if kind == "perms":
        inner = "".join(f"<{t}>{int(v)}</{t}>" for t, v in zip(PERM_TAGS, value, strict=True))
        return f"<{tag}>{inner}</{tag}>"
    if kind == "template":
        return tpl.to_xml(value, tag)
    if kind == "share":
        return f"<{tag}>" + "".join(f"<{t}>{int(value[t])}</{t}>" for t in SHARE_TAGS) + f"</{tag}>"
    if kind == "ids":
        return f"<{tag}>" + "".join(f"<ID>{i}</ID>" for i in value) + f"</{tag}>"
    if kind == "history":
        records = value if full else value[-1:]
        if not records:
            return f"<{tag}/>"
        return f"<{tag}>" + "".join(h.to_xml(series) for h in records) + f"</{tag}>"
    if kind == "range":
        if value is None:
            return ""
        return f"<{tag}><IP_START>{value[0]}</IP_START><IP_END>{value[1]}</IP_END></{tag}>"
    if kind == "leases":
        if not full:
            return ""
        inner = "".join(
            f"<LEASE><IP>{ip}</IP><MAC>{mac}</MAC><USED>{used}</USED><VID>{vid}</VID></LEASE>"
            for ip, mac, used, vid in value
        )
        return f"<{tag}>{inner}</{tag}>"
    if kind == "quotas":
        return "".join(f"<{t}></{t}>" for t in QUOTA_TAGS)
    raise ValueError(f"unknown field kind {kind}")


def read(cls: type[PoolObject], elem: ET.Element) -> PoolObject:
    """Generic reader: by element name, whatever the order; absent elements keep defaults."""
    obj = cls.__new__(cls)
    PoolObject.__init__(obj)
    for f in cls.SPEC:
        child = elem.find(f.tag) if f.kind != "quotas" else None
        if child is None:
            continue
        setattr(obj, f.attr, _read_field(f, child))
    return obj


def _read_field(f: Field, child: ET.Element) -> Any:
    kind = f.kind
    if kind == "int":
        return int(child.text or 0)
    if kind == "str":
        return child.text or ""
    if kind == "perms":
        return [int(child.findtext(t) or 0) for t in PERM_TAGS]
    if kind == "template":
        return tpl.from_element(child)
    if kind == "share":
        return {t: int(child.findtext(t) or 0) for t in SHARE_TAGS}
    if kind == "ids":
        return [int(i.text or 0) for i in child.findall("ID")]
    if kind == "history":
        return [
            History.from_xml(ET.tostring(h, encoding="unicode")) for h in child.findall("HISTORY")
        ]
    if kind == "range":
        return (child.findtext("IP_START") or "", child.findtext("IP_END") or "")
    if kind == "leases":
        return [
            (
                lease.findtext("IP") or "",
                lease.findtext("MAC") or "",
                int(lease.findtext("USED") or 0),
                int(lease.findtext("VID") or -1),
            )
            for lease in child.findall("LEASE")
        ]
    return None


class History(PoolObject):
    """One history record: a VM's stay on one host."""

    TAG = "HISTORY"
    TABLE = "history"
    SPEC = [
        Field("OID", "oid", series=S36),
        Field("SEQ", "seq"),
        Field("HOSTNAME", "hostname", "str"),
        Field("VM_DIR", "vm_dir", "str", series=("3.2",), default="/var/lib/one/"),
        Field("HID", "hid"),
        Field("STIME", "stime"),
        Field("ETIME", "etime"),
        Field("VMMMAD", "vmmmad", "str"),
        Field("VNMMAD", "vnmmad", "str"),
        Field("TMMAD", "tmmad", "str", series=("3.2", "3.6")),
        Field("DS_ID", "ds_id", series=S36),
        Field("PSTIME", "pstime"),
        Field("PETIME", "petime"),
        Field("RSTIME", "rstime"),
        Field("RETIME", "retime"),
        Field("ESTIME", "estime"),
        Field("EETIME", "eetime"),
        Field("REASON", "reason"),
    ]


class Vm(PoolObject):
    """A virtual machine (vm_pool)."""

    TAG = "VM"
    TABLE = "vm_pool"
    SPEC = [
        *_owner_fields(),
        Field("LAST_POLL", "last_poll"),
        Field("STATE", "state"),
        Field("LCM_STATE", "lcm_state"),
        Field("RESCHED", "resched", series=S36),
        Field("STIME", "stime"),
        Field("ETIME", "etime"),
        Field("DEPLOY_ID", "deploy_id", "str"),
        Field("MEMORY", "memory"),
        Field("CPU", "cpu"),
        Field("NET_TX", "net_tx"),
        Field("NET_RX", "net_rx"),
        Field("TEMPLATE", "template", "template"),
        Field("HISTORY_RECORDS", "history", "history"),
    ]


class Host(PoolObject):
    """A hypervisor host (host_pool)."""

    TAG = "HOST"
    TABLE = "host_pool"
    SPEC = [
        Field("ID", "oid"),
        Field("NAME", "name", "str"),
        Field("STATE", "state"),
        Field("IM_MAD", "im_mad", "str"),
        Field("VM_MAD", "vm_mad", "str"),
        Field("VN_MAD", "vn_mad", "str"),
        Field("TM_MAD", "tm_mad", "str", series=("3.2",)),
        Field("LAST_MON_TIME", "last_mon_time"),
        Field("CLUSTER_ID", "cluster_id", series=S34, default=-1),
        Field("CLUSTER", "cluster", "str", series=S34),
        Field("HOST_SHARE", "share", "share"),
        Field("TEMPLATE", "template", "template"),
    ]


class Image(PoolObject):
    """A disk image (image_pool)."""

    TAG = "IMAGE"
    TABLE = "image_pool"
    SPEC = [
        *_owner_fields(),
        Field("TYPE", "type"),
        Field("DISK_TYPE", "disk_type", series=S36),
        Field("PERSISTENT", "persistent"),
        Field("REGTIME", "regtime"),
        Field("SOURCE", "source", "str"),
        Field("PATH", "path", "str"),
        Field("FSTYPE", "fstype", "str"),
        Field("SIZE", "size"),
        Field("STATE", "state"),
        Field("RUNNING_VMS", "running_vms"),
        Field("CLONING_OPS", "cloning_ops", series=S36),
        Field("CLONING_ID", "cloning_id", series=S36, default=-1),
        Field("DATASTORE_ID", "datastore_id", series=S34, default=1),
        Field("DATASTORE", "datastore", "str", series=S34, default="default"),
        Field("TEMPLATE", "template", "template"),
    ]


class Datastore(PoolObject):
    """A datastore (datastore_pool, 3.4+)."""

    TAG = "DATASTORE"
    TABLE = "datastore_pool"
    DEFAULT_PERMS = (1, 1, 0, 1, 0, 0, 0, 0, 0)
    SPEC = [
        *_owner_fields(),
        Field("DS_MAD", "ds_mad", "str"),
        Field("TM_MAD", "tm_mad", "str"),
        Field("BASE_PATH", "base_path", "str"),
        Field("SYSTEM", "system", series=S36),
        Field("DISK_TYPE", "disk_type", series=S36),
        Field("CLUSTER_ID", "cluster_id", default=-1),
        Field("CLUSTER", "cluster", "str"),
        Field("IMAGES", "images", "ids"),
        Field("TEMPLATE", "template", "template"),
    ]


class Cluster(PoolObject):
    """A cluster (cluster_pool, 3.4+)."""

    TAG = "CLUSTER"
    TABLE = "cluster_pool"
    SPEC = [
        Field("ID", "oid"),
        Field("NAME", "name", "str"),
        Field("HOSTS", "hosts", "ids"),
        Field("DATASTORES", "datastores", "ids"),
        Field("VNETS", "vnets", "ids"),
        Field("TEMPLATE", "template", "template", series=S36),
    ]


class VmTemplate(PoolObject):
    """A VM template (template_pool)."""

    TAG = "VMTEMPLATE"
    TABLE = "template_pool"
    SPEC = [
        *_owner_fields(),
        Field("REGTIME", "regtime"),
        Field("TEMPLATE", "template", "template"),
    ]


class VNet(PoolObject):
    """A virtual network (network_pool). Its leases live in the ``leases`` table, not in the
    body: only ``one.vn.info`` shows them (see ``leases.py``)."""

    TAG = "VNET"
    TABLE = "network_pool"
    cursor = 0  # oned's in-memory ``current`` of the lease search: not stored, 0 at start
    SPEC = [
        *_owner_fields(),
        Field("CLUSTER_ID", "cluster_id", series=S34, default=-1),
        Field("CLUSTER", "cluster", "str", series=S34),
        Field("TYPE", "type"),
        Field("BRIDGE", "bridge", "str"),
        Field("VLAN", "vlan"),
        Field("PHYDEV", "phydev", "str"),
        Field("VLAN_ID", "vlan_id", "str"),
        Field("RANGE", "range", "range"),
        Field("TOTAL_LEASES", "total_leases"),
        Field("TEMPLATE", "template", "template"),
        Field("LEASES", "leases", "leases"),
    ]


class User(PoolObject):
    """A user (user_pool); PASSWORD holds the SHA1 of the password for the core driver."""

    TAG = "USER"
    TABLE = "user_pool"
    SPEC = [
        Field("ID", "oid"),
        Field("GID", "gid"),
        Field("GNAME", "gname", "str"),
        Field("NAME", "name", "str"),
        Field("PASSWORD", "password", "str"),
        Field("AUTH_DRIVER", "auth_driver", "str", default="core"),
        Field("ENABLED", "enabled", default=1),
        Field("TEMPLATE", "template", "template"),
        Field("QUOTAS", "quotas", "quotas", series=S36),
    ]


class Group(PoolObject):
    """A group (group_pool)."""

    TAG = "GROUP"
    TABLE = "group_pool"
    SPEC = [
        Field("ID", "oid"),
        Field("NAME", "name", "str"),
        Field("USERS", "users", "ids"),
        Field("QUOTAS", "quotas", "quotas", series=S36),
    ]


POOL_TAGS = {
    Vm: "VM_POOL",
    Host: "HOST_POOL",
    Image: "IMAGE_POOL",
    Datastore: "DATASTORE_POOL",
    Cluster: "CLUSTER_POOL",
    VmTemplate: "VMTEMPLATE_POOL",
    VNet: "VNET_POOL",
    User: "USER_POOL",
    Group: "GROUP_POOL",
}
