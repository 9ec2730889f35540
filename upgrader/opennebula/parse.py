"""Parse OpenNebula 3.2/3.4/3.6 XML documents into the models, looking elements up by name.

Right after ``onedb upgrade`` the pool calls return the bodies the migrators rewrote, with new
elements appended at the end (opennebula-3x.md section 7.2), so nothing here depends on order.
Every problem raises OneResponseError naming ``source`` (the XML-RPC method, in the client).
"""

from __future__ import annotations

from typing import Any

from upgrader.opennebula import _fast
from upgrader.opennebula._xml import Node, parse_one, parse_pool
from upgrader.opennebula.enums import (
    DiskType,
    HistoryReason,
    HostState,
    ImageState,
    ImageType,
    LcmState,
    VmState,
)
from upgrader.opennebula.models import (
    Cluster,
    Datastore,
    Group,
    History,
    Host,
    HostShare,
    Image,
    User,
    Vm,
)


def _owned(node: Node) -> dict[str, Any]:
    """The fields every owned object (VM, image, datastore) has: id, owner, group, name and
    permissions."""
    return {
        "id": node.integer("ID"),
        "uid": node.integer("UID"),
        "gid": node.integer("GID"),
        "uname": node.text("UNAME"),
        "gname": node.text("GNAME"),
        "name": node.text("NAME"),
        "permissions": node.permissions(),
    }


def _host_share(node: Node) -> HostShare:
    share = node.child("HOST_SHARE")
    return HostShare(
        disk_usage=share.integer("DISK_USAGE"),
        mem_usage=share.integer("MEM_USAGE"),
        cpu_usage=share.integer("CPU_USAGE"),
        max_disk=share.integer("MAX_DISK"),
        max_mem=share.integer("MAX_MEM"),
        max_cpu=share.integer("MAX_CPU"),
        free_disk=share.integer("FREE_DISK"),
        free_mem=share.integer("FREE_MEM"),
        free_cpu=share.integer("FREE_CPU"),
        used_disk=share.integer("USED_DISK"),
        used_mem=share.integer("USED_MEM"),
        used_cpu=share.integer("USED_CPU"),
        running_vms=share.integer("RUNNING_VMS"),
    )


def _host(node: Node) -> Host:
    return Host(
        id=node.integer("ID"),
        name=node.text("NAME"),
        state=node.enum("STATE", HostState),
        im_mad=node.text("IM_MAD"),
        vm_mad=node.text("VM_MAD"),
        vn_mad=node.text("VN_MAD"),
        tm_mad=node.opt_text("TM_MAD"),
        last_mon_time=node.integer("LAST_MON_TIME"),
        cluster_id=node.opt_integer("CLUSTER_ID"),
        cluster=node.opt_text("CLUSTER"),
        share=_host_share(node),
        template=node.template(),
    )


def _history(node: Node) -> History:
    return History(
        oid=node.opt_integer("OID"),
        seq=node.integer("SEQ"),
        hostname=node.text("HOSTNAME"),
        vm_dir=node.opt_text("VM_DIR"),
        hid=node.integer("HID"),
        stime=node.integer("STIME"),
        etime=node.integer("ETIME"),
        vmmmad=node.text("VMMMAD"),
        vnmmad=node.text("VNMMAD"),
        tmmad=node.opt_text("TMMAD"),
        ds_id=node.opt_integer("DS_ID"),
        pstime=node.integer("PSTIME"),
        petime=node.integer("PETIME"),
        rstime=node.integer("RSTIME"),
        retime=node.integer("RETIME"),
        estime=node.integer("ESTIME"),
        eetime=node.integer("EETIME"),
        reason=node.enum("REASON", HistoryReason),
    )


def _vm(node: Node) -> Vm:
    history = tuple(map(_history, node.child("HISTORY_RECORDS").each("HISTORY", "SEQ")))
    return Vm(
        **_owned(node),
        last_poll=node.integer("LAST_POLL"),
        state=node.enum("STATE", VmState),
        lcm_state=node.enum("LCM_STATE", LcmState),
        resched=node.opt_flag("RESCHED"),
        stime=node.integer("STIME"),
        etime=node.integer("ETIME"),
        deploy_id=node.text("DEPLOY_ID"),
        memory=node.integer("MEMORY"),
        cpu=node.integer("CPU"),
        net_tx=node.integer("NET_TX"),
        net_rx=node.integer("NET_RX"),
        template=node.template(),
        history=tuple(sorted(history, key=lambda record: record.seq)),
    )


def _image(node: Node) -> Image:
    return Image(
        **_owned(node),
        type=node.enum("TYPE", ImageType),
        disk_type=node.opt_enum("DISK_TYPE", DiskType),
        persistent=node.flag("PERSISTENT"),
        regtime=node.integer("REGTIME"),
        source=node.text("SOURCE"),
        path=node.text("PATH"),
        fstype=node.text("FSTYPE"),
        size=node.integer("SIZE"),
        state=node.enum("STATE", ImageState),
        running_vms=node.integer("RUNNING_VMS"),
        cloning_ops=node.opt_integer("CLONING_OPS"),
        cloning_id=node.opt_integer("CLONING_ID"),
        datastore_id=node.opt_integer("DATASTORE_ID"),
        datastore=node.opt_text("DATASTORE"),
        template=node.template(),
    )


def _datastore(node: Node) -> Datastore:
    return Datastore(
        **_owned(node),
        ds_mad=node.text("DS_MAD"),
        tm_mad=node.text("TM_MAD"),
        base_path=node.text("BASE_PATH"),
        system=node.opt_flag("SYSTEM"),
        disk_type=node.opt_enum("DISK_TYPE", DiskType),
        cluster_id=node.integer("CLUSTER_ID"),
        cluster=node.text("CLUSTER"),
        images=node.ids("IMAGES"),
        template=node.template(),
    )


def _cluster(node: Node) -> Cluster:
    return Cluster(
        id=node.integer("ID"),
        name=node.text("NAME"),
        hosts=node.ids("HOSTS"),
        datastores=node.ids("DATASTORES"),
        vnets=node.ids("VNETS"),
        template=node.opt_template(),
    )


def _user(node: Node) -> User:
    return User(
        id=node.integer("ID"),
        gid=node.integer("GID"),
        gname=node.text("GNAME"),
        name=node.text("NAME"),
        auth_driver=node.text("AUTH_DRIVER"),
        enabled=node.flag("ENABLED"),
    )


def _group(node: Node) -> Group:
    return Group(
        id=node.integer("ID"),
        name=node.text("NAME"),
        users=node.ids("USERS") if node.opt_child("USERS") is not None else (),
    )


def parse_host(text: object, source: str = "HOST") -> Host:
    """Parse a <HOST> document (``one.host.info``)."""
    return parse_one(text, "HOST", _host, source)


def parse_host_pool(text: object, source: str = "HOST_POOL") -> tuple[Host, ...]:
    """Parse a <HOST_POOL> document (``one.hostpool.info``)."""
    return parse_pool(text, "HOST_POOL", "HOST", _host, source)


def parse_vm(text: object, source: str = "VM") -> Vm:
    """Parse a <VM> document (``one.vm.info``, all history records)."""
    return parse_one(text, "VM", _vm, source)


def parse_vm_pool(text: object, source: str = "VM_POOL") -> tuple[Vm, ...]:
    """Parse a <VM_POOL> document (``one.vmpool.info``, last history record only)."""
    return parse_pool(text, "VM_POOL", "VM", _vm, source, fast=_fast.vm)


def parse_image(text: object, source: str = "IMAGE") -> Image:
    """Parse an <IMAGE> document (``one.image.info``)."""
    return parse_one(text, "IMAGE", _image, source)


def parse_image_pool(text: object, source: str = "IMAGE_POOL") -> tuple[Image, ...]:
    """Parse an <IMAGE_POOL> document (``one.imagepool.info``)."""
    return parse_pool(text, "IMAGE_POOL", "IMAGE", _image, source)


def parse_datastore(text: object, source: str = "DATASTORE") -> Datastore:
    """Parse a <DATASTORE> document (``one.datastore.info``, 3.4+)."""
    return parse_one(text, "DATASTORE", _datastore, source)


def parse_datastore_pool(text: object, source: str = "DATASTORE_POOL") -> tuple[Datastore, ...]:
    """Parse a <DATASTORE_POOL> document (``one.datastorepool.info``, 3.4+)."""
    return parse_pool(text, "DATASTORE_POOL", "DATASTORE", _datastore, source)


def parse_cluster(text: object, source: str = "CLUSTER") -> Cluster:
    """Parse a <CLUSTER> document (``one.cluster.info``, 3.4+)."""
    return parse_one(text, "CLUSTER", _cluster, source)


def parse_cluster_pool(text: object, source: str = "CLUSTER_POOL") -> tuple[Cluster, ...]:
    """Parse a <CLUSTER_POOL> document (``one.clusterpool.info``, 3.4+)."""
    return parse_pool(text, "CLUSTER_POOL", "CLUSTER", _cluster, source)


def parse_user_pool(text: object, source: str = "USER_POOL") -> tuple[User, ...]:
    """Parse a <USER_POOL> document (``one.userpool.info``)."""
    return parse_pool(text, "USER_POOL", "USER", _user, source)


def parse_group_pool(text: object, source: str = "GROUP_POOL") -> tuple[Group, ...]:
    """Parse a <GROUP_POOL> document (``one.grouppool.info``)."""
    return parse_pool(text, "GROUP_POOL", "GROUP", _group, source)
