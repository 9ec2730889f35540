"""Images, users, groups, ACLs, virtual networks, datastores and clusters."""

from __future__ import annotations

import hashlib
from typing import Any

from upgrader.lab.oned import leases
from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.api import Api, handles
from upgrader.lab.oned.cloud import INTERNAL, OneFailure, not_found, sha1
from upgrader.lab.oned.objects import Cluster, Datastore, Group, Host, Image, User, VNet

_IMAGE_TYPES = {"OS": 0, "CDROM": 1, "DATABLOCK": 2}


# ------------------------------------------------------------------ images
@handles("one.imagepool.info")
def _imagepool(api: Api, user: User, flag: int, start: int, end: int) -> str:
    return api.pool(Image, api.filtered(user, Image, flag, start, end))


@handles("one.image.info")
def _image_info(api: Api, user: User, iid: int) -> str:
    api.owned(user, api.c.get(Image, iid), "USE IMAGE")
    return api.info(Image, iid)


@handles("one.image.allocate")
def _image_allocate(api: Api, user: User, text: str, ds_id: int = 1) -> int:
    c = api.c
    attrs = api.parse(text, "image")
    name = tpl.get(attrs, "NAME") or ""
    if not name:
        raise OneFailure(INTERNAL, "Error allocating a new image. No NAME in template.")
    ds = None
    if c.version.has_clusters:
        ds = c.pool(Datastore).get(ds_id)
        if ds is None:
            raise not_found(Datastore, ds_id)
        if ds_id == 0 or ds.system == 1:
            raise OneFailure(INTERNAL, "New images cannot be allocated in the system datastore.")
    api.unique(Image, name, "image", "IMAGE")
    itype = _IMAGE_TYPES.get((tpl.get(attrs, "TYPE") or "OS").upper())
    if itype is None:
        raise OneFailure(INTERNAL, "Error allocating a new image. Unknown TYPE.")
    path, source = tpl.get(attrs, "PATH") or "", tpl.get(attrs, "SOURCE") or ""
    if not path and not source and itype != 2:
        raise OneFailure(INTERNAL, "Error allocating a new image. PATH or SOURCE must be defined.")
    digest = hashlib.md5(f"{api.now()}:{c.last_oid[Image] + 1}".encode()).hexdigest()  # noqa: S324
    base = ds.base_path if ds is not None else "/var/lib/one/images"
    persistent = (tpl.get(attrs, "PERSISTENT") or "NO").upper() == "YES"
    size = int(tpl.get(attrs, "SIZE") or 0) or 1024
    img = Image(
        **api.owner(user),
        name=name,
        type=itype,
        persistent=int(persistent),
        regtime=api.now(),
        source=source or f"{base}/{digest}",
        path=path,
        size=size,
        state=1,
        fstype=tpl.get(attrs, "FSTYPE") or "",
        datastore_id=ds.oid if ds else 1,
        datastore=ds.name if ds else "default",
        template=attrs,
    )
    iid = c.add(Image, img)
    if ds is not None:
        ds.images.append(iid)
        c.save(ds)
    return iid


@handles("one.image.persistent")
def _image_persistent(api: Api, user: User, iid: int, persistent: bool) -> int:
    img = api.owned(user, api.c.get(Image, iid), "MANAGE IMAGE")
    if img.running_vms > 0:
        raise OneFailure(INTERNAL, "Cannot change persistent state of an image in use.")
    img.persistent = int(persistent)
    api.c.save(img)
    return iid


# ------------------------------------------------------------ users/groups
@handles("one.userpool.info")
def _userpool(api: Api, user: User) -> str:
    users = list(api.c.pool(User).values()) if api.admin(user) else [user]
    return api.pool(User, users)


@handles("one.user.info")
def _user_info(api: Api, user: User, uid: int) -> str:
    if uid == -1:
        uid = user.oid
    if uid != user.oid:
        api.require_admin(user, f"USE USER [{uid}]")
    return api.info(User, uid)


@handles("one.user.allocate")
def _user_allocate(api: Api, user: User, name: str, password: str, driver: str) -> int:
    api.require_admin(user, "CREATE USER")
    api.unique(User, name, "user", "USER")
    users = api.c.pool(Group)[1]
    uid = api.c.add(
        User,
        User(
            name=name,
            gid=1,
            gname=users.name,
            password=sha1(password),
            auth_driver=driver or "core",
        ),
    )
    users.users.append(uid)
    api.c.save(users)
    return uid


@handles("one.grouppool.info")
def _grouppool(api: Api, user: User) -> str:
    groups = [g for g in api.c.pool(Group).values() if api.admin(user) or g.oid == user.gid]
    return api.pool(Group, groups)


@handles("one.group.info")
def _group_info(api: Api, user: User, gid: int) -> str:
    if gid == -1:
        gid = user.gid
    if gid != user.gid:
        api.require_admin(user, f"USE GROUP [{gid}]")
    return api.info(Group, gid)


@handles("one.acl.info")
def _acl_info(api: Api, user: User) -> str:
    rules = "".join(
        f"<ACL><ID>{oid}</ID><USER>{u:x}</USER><RESOURCE>{r:x}</RESOURCE>"
        f"<RIGHTS>{rights:x}</RIGHTS></ACL>"
        for oid, u, r, rights in api.c.acl
    )
    return f"<ACL_POOL>{rules}</ACL_POOL>"


# ---------------------------------------------------------------- networks
@handles("one.vnpool.info")
def _vnpool(api: Api, user: User, flag: int, start: int, end: int) -> str:
    return api.pool(VNet, api.filtered(user, VNet, flag, start, end))


@handles("one.vn.info")
def _vn_info(api: Api, user: User, nid: int) -> str:
    api.owned(user, api.c.get(VNet, nid), "USE NET")
    return api.info(VNet, nid)


@handles("one.vn.allocate")
def _vn_allocate(api: Api, user: User, text: str, cluster_id: int = -1) -> int:
    c = api.c
    attrs = api.parse(text, "virtual network")
    name = tpl.get(attrs, "NAME") or ""
    if not name or len(name) > 128:
        why = "NAME cannot be empty." if not name else "NAME is too long; max length is 128 chars."
        raise OneFailure(INTERNAL, f"Error allocating a new virtual network. {why}")
    cluster = None
    if cluster_id != -1:
        cluster = c.pool(Cluster).get(cluster_id)
        if cluster is None:
            raise not_found(Cluster, cluster_id)
    api.unique(VNet, name, "virtual network", "NET")
    try:
        net = _new_vnet(attrs, c.last_oid[VNet] + 1, api.owner(user))
    except leases.LeaseError as exc:
        raise OneFailure(INTERNAL, f"Error allocating a new virtual network. {exc}") from None
    net.cluster_id, net.cluster = cluster_id, cluster.name if cluster else ""
    nid = c.add(VNet, net)
    if cluster is not None:
        cluster.vnets.append(nid)
        c.save(cluster)
    return nid


def _new_vnet(attrs: tpl.Attrs, oid: int, owner: dict[str, Any]) -> VNet:
    """``VirtualNetwork::insert``: the attributes it keeps out of the template, its leases."""
    kind = leases.erase(attrs, "TYPE").upper()
    if kind not in ("RANGED", "FIXED"):
        raise leases.LeaseError(
            f'Wrong type "{kind}" in template for Virtual Network.'
            if kind
            else "No TYPE in template for Virtual Network."
        )
    name = leases.erase(attrs, "NAME")
    phydev, vlan_id = leases.erase(attrs, "PHYDEV"), leases.erase(attrs, "VLAN_ID")
    vlan = leases.erase(attrs, "VLAN").upper()
    bridge = leases.erase(attrs, "BRIDGE") or (f"onebr{oid}" if phydev else "")
    if not bridge:
        raise leases.LeaseError("No BRIDGE in template for Virtual Network.")
    net = VNet(
        **owner,
        name=name,
        type=leases.RANGED if kind == "RANGED" else leases.FIXED,
        bridge=bridge,
        vlan=int(vlan == "YES" or (not vlan and bool(phydev))),
        phydev=phydev,
        vlan_id=vlan_id,
    )
    if kind == "RANGED":
        net.range = leases.ranged(attrs)
    else:
        net.leases = leases.fixed(attrs)
    net.template = attrs
    return net


# -------------------------------------------------------- datastores, clusters
@handles("one.datastorepool.info")
def _dspool(api: Api, user: User) -> str:
    return api.pool(Datastore, list(api.c.pool(Datastore).values()))


@handles("one.datastore.info")
def _ds_info(api: Api, user: User, ds_id: int) -> str:
    return api.info(Datastore, ds_id)


@handles("one.datastore.update")
def _ds_update(api: Api, user: User, ds_id: int, text: str) -> int:
    ds = api.c.get(Datastore, ds_id)
    api.require_admin(user, f"MANAGE DATASTORE [{ds_id}]")
    attrs = api.parse(text, "datastore template")
    ds.ds_mad = tpl.get(attrs, "DS_MAD") or ds.ds_mad
    ds.tm_mad = tpl.get(attrs, "TM_MAD") or ds.tm_mad
    tpl.put(attrs, "DS_MAD", ds.ds_mad)
    tpl.put(attrs, "TM_MAD", ds.tm_mad)
    if api.c.version.is_36 and ds_id == 0:
        tpl.put(attrs, "SYSTEM", "YES")  # datastore 0 stays the system datastore
    ds.template = attrs
    api.c.save(ds)
    return ds_id


@handles("one.clusterpool.info")
def _clusterpool(api: Api, user: User) -> str:
    return api.pool(Cluster, list(api.c.pool(Cluster).values()))


@handles("one.cluster.info")
def _cluster_info(api: Api, user: User, cid: int) -> str:
    return api.info(Cluster, cid)


@handles("one.cluster.update")
def _cluster_update(api: Api, user: User, cid: int, text: str) -> int:
    cluster = api.c.get(Cluster, cid)
    api.require_admin(user, f"MANAGE CLUSTER [{cid}]")
    cluster.template = api.parse(text, "cluster template")
    api.c.save(cluster)
    return cid


# ---------------------------------------------------------- cluster members
@handles("one.cluster.allocate")
def _cluster_allocate(api: Api, user: User, name: str) -> int:
    api.require_admin(user, "CREATE CLUSTER")
    api.unique(Cluster, name, "cluster", "CLUSTER")
    return api.c.add(Cluster, Cluster(name=name))


_MEMBERS = {
    "host": (Host, "hosts"),
    "datastore": (Datastore, "datastores"),
    "vnet": (VNet, "vnets"),
}


def _move(api: Api, kind: str, cluster: Cluster | None, oid: int) -> None:
    """Put object ``oid`` in ``cluster`` (None: in no cluster), out of any other one."""
    cls, attr = _MEMBERS[kind]
    obj = api.c.get(cls, oid)
    for other in api.c.pool(Cluster).values():
        if oid in getattr(other, attr) and other is not cluster:
            getattr(other, attr).remove(oid)
            api.c.save(other)
    if cluster is not None and oid not in getattr(cluster, attr):
        getattr(cluster, attr).append(oid)
        api.c.save(cluster)
    obj.cluster_id = cluster.oid if cluster else -1
    obj.cluster = cluster.name if cluster else ""
    api.c.save(obj)


def _member_handlers(kind: str) -> None:
    @handles(f"one.cluster.add{kind}")
    def _add(api: Api, user: User, cid: int, oid: int) -> int:
        api.require_admin(user, f"ADMIN CLUSTER [{cid}]")
        _move(api, kind, api.c.get(Cluster, cid), oid)
        return cid

    @handles(f"one.cluster.del{kind}")
    def _del(api: Api, user: User, cid: int, oid: int) -> int:
        api.require_admin(user, f"ADMIN CLUSTER [{cid}]")
        api.c.get(Cluster, cid)
        _move(api, kind, None, oid)  # 3.x takes the object id and ignores the cluster's
        return cid


for _kind in _MEMBERS:
    _member_handlers(_kind)


@handles("one.cluster.delete")
def _cluster_delete(api: Api, user: User, cid: int) -> int:
    api.require_admin(user, f"ADMIN CLUSTER [{cid}]")
    cluster = api.c.get(Cluster, cid)
    if cid < 100:
        raise OneFailure(INTERNAL, "System clusters (ID < 100) cannot be deleted.")
    for what in ("hosts", "datastores", "vnets"):
        if getattr(cluster, what):
            raise OneFailure(
                INTERNAL,
                f"Cannot delete cluster. Cluster {cid} is not empty, it "
                f"contains {len(getattr(cluster, what))} {what}.",
            )
    api.c.remove(cluster)
    return cid
