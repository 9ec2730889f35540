"""``one.vm*`` and ``one.template*`` methods: creation, deploy, actions, migration."""

from __future__ import annotations

import hashlib
from typing import Any

from upgrader.lab.oned import nics as vm_nics
from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned import vm_lcm, vm_migration
from upgrader.lab.oned.api import Api, handles
from upgrader.lab.oned.cloud import INTERNAL, XML_RPC_API, OneFailure, not_found
from upgrader.lab.oned.objects import Datastore, Group, Host, Image, User, Vm, VmTemplate
from upgrader.lab.oned.states import DONE, PENDING


@handles("one.vmpool.info")
def _vmpool(api: Api, user: User, flag: int, start: int, end: int, state: int) -> str:
    if state < -2 or state > 7:
        raise OneFailure(XML_RPC_API, "Incorrect filter_flag, state")
    vms = api.filtered(user, Vm, flag, start, end)
    if state == -1:
        vms = [v for v in vms if v.state != DONE]
    elif state >= 0:
        vms = [v for v in vms if v.state == state]
    return api.pool(Vm, vms)


@handles("one.vm.info")
def _vm_info(api: Api, user: User, vmid: int) -> str:
    api.owned(user, api.c.get(Vm, vmid), "USE VM")
    return api.info(Vm, vmid)


@handles("one.vm.allocate")
def _vm_allocate(api: Api, user: User, text: str) -> int:
    return create_vm(api, user, api.parse(text, "virtual machine"), None)


@handles("one.template.instantiate")
def _instantiate(api: Api, user: User, tid: int, name: str) -> int:
    tmpl = api.owned(user, api.c.get(VmTemplate, tid), "USE TEMPLATE")
    attrs = [(k, list(v) if isinstance(v, list) else v) for k, v in tmpl.template]
    return create_vm(api, user, attrs, name or None)


def create_vm(api: Api, user: User, attrs: tpl.Attrs, name: str | None) -> int:
    """Allocate a PENDING VM as ``VirtualMachine::insert`` does: NICs leased from their
    networks first, then disks bound to their images; a failure gives the leases back."""
    c = api.c
    oid = c.last_oid[Vm] + 1
    attrs = [(k, list(v) if isinstance(v, list) else v) for k, v in attrs]
    given_name = tpl.get(attrs, "NAME")
    nics = tpl.vectors(attrs, "NIC")  # leased in place, as oned's nic->replace() does
    try:
        vm_nics.lease_all(c, user, oid, nics)
        disks, images = _bind_disks(api, oid, tpl.vectors(attrs, "DISK"))
    except OneFailure:
        vm_nics.release_all(c, oid, nics)
        raise
    attrs = [(k, v) for k, v in attrs if k not in ("DISK", "NIC", "NAME", "VMID")]
    attrs += [("DISK", d) for d in disks] + [("NIC", n) for n in nics]
    vm_name = name or given_name or f"one-{oid}"
    attrs += [("NAME", vm_name), ("VMID", str(oid))]
    vm = Vm(
        **api.owner(user),
        name=vm_name,
        state=PENDING,
        stime=api.now(),
        template=attrs,
    )
    for img in images:
        img.running_vms += 1
        img.state = 8 if (img.persistent and c.version.is_36) else 2
        c.save(img)
    c.add(Vm, vm)
    return vm.oid


def _find_image(api: Api, disk: tpl.Vector) -> Image:
    iid = tpl.vget(disk, "IMAGE_ID")
    if iid is not None:
        img = api.c.pool(Image).get(int(iid)) if iid.isdigit() else None
        if img is None:
            raise OneFailure(
                INTERNAL, f"Error allocating a new virtual machine. Error getting image [{iid}]."
            )
        return img
    name = tpl.vget(disk, "IMAGE") or ""
    img = api.c.find(Image, name)
    if img is None:
        raise OneFailure(
            INTERNAL, f"Error allocating a new virtual machine. Image {name} does not exist."
        )
    return img


def _bind_disks(
    api: Api, vmid: int, disks: list[tpl.Vector]
) -> tuple[list[tpl.Vector], list[Image]]:
    out, images = [], []
    for i, given in enumerate(disks):
        disk = [(k, v) for k, v in given if k != "DISK_ID"] + [("DISK_ID", str(i))]
        if tpl.vget(disk, "IMAGE_ID") is None and tpl.vget(disk, "IMAGE") is None:
            out.append(disk)
            continue
        img = _find_image(api, disk)
        if img.state not in (1, 2) or (img.persistent and img.running_vms > 0):
            raise OneFailure(
                INTERNAL,
                f"Error allocating a new virtual machine. Cannot get "
                f"image [{img.oid}]: it is not ready or already in use.",
            )
        target = tpl.vget(disk, "TARGET") or f"hd{chr(ord('a') + i)}"
        bound = [
            ("CLONE", "NO" if img.persistent else "YES"),
            ("DISK_ID", str(i)),
            ("IMAGE", img.name),
            ("IMAGE_ID", str(img.oid)),
            ("READONLY", "NO"),
            ("SAVE", "YES" if img.persistent else "NO"),
            ("SOURCE", img.source),
            ("TARGET", target),
            ("TYPE", "DISK"),
        ]
        if api.c.version.has_clusters:
            ds = api.c.pool(Datastore).get(img.datastore_id)
            bound += [
                ("DATASTORE", img.datastore),
                ("DATASTORE_ID", str(img.datastore_id)),
                ("TM_MAD", ds.tm_mad if ds else "shared"),
            ]
        out.append(bound)
        images.append(img)
    return out, images


@handles("one.vm.deploy")
def _deploy(api: Api, user: User, vmid: int, hid: int) -> int:
    vm = api.c.get(Vm, vmid)
    host = api.c.get(Host, hid)
    api.require_admin(user, f"ADMIN VM [{vmid}]")
    vm_lcm.deploy(api.c, vm, host)
    return vmid


@handles("one.vm.action")
def _action(api: Api, user: User, name: str, vmid: int) -> int:
    vm = api.owned(user, api.c.get(Vm, vmid), "MANAGE VM")
    if name not in api.c.version.actions:
        raise OneFailure(INTERNAL, "Internal error. Action result not defined")
    if name in ("resched", "unresched"):
        api.require_admin(user, f"ADMIN VM [{vmid}]")
    vm_lcm.action(api.c, vm, name)
    return vmid


@handles("one.vm.migrate")
def _migrate(api: Api, user: User, vmid: int, hid: int, live: bool) -> int:
    vm = api.c.get(Vm, vmid)
    host = api.c.get(Host, hid)
    api.require_admin(user, f"ADMIN VM [{vmid}]")
    vm_migration.migrate(api.c, vm, host, live)
    return vmid


@handles("one.vm.savedisk")
def _savedisk(api: Api, user: User, vmid: int, disk_id: int, name: str, itype: str) -> int:
    c = api.c
    vm = api.owned(user, c.get(Vm, vmid), "MANAGE VM")
    disk = next(
        (d for d in tpl.vectors(vm.template, "DISK") if tpl.vget(d, "DISK_ID") == str(disk_id)),
        None,
    )
    if disk is None:
        raise OneFailure(INTERNAL, "The disk does not exist")
    if tpl.vget(disk, "SAVE_AS") is not None:
        raise OneFailure(INTERNAL, f"The disk {disk_id} is already going to be saved")
    src_id = tpl.vget(disk, "IMAGE_ID")
    source = c.pool(Image).get(int(src_id)) if src_id and src_id.isdigit() else None
    if source is None and c.version.has_clusters:
        raise OneFailure(INTERNAL, "Cannot use selected DISK")
    api.unique(Image, name, "image", "IMAGE")
    types = {"OS": 0, "CDROM": 1, "DATABLOCK": 2}
    img_type = types.get(itype.upper(), source.type if source else 0)
    digest = hashlib.md5(f"{api.now()}:{vmid}:{disk_id}".encode()).hexdigest()  # noqa: S324
    base = (
        f"/var/lib/one/datastores/{source.datastore_id}"
        if c.version.has_clusters and source
        else "/var/lib/one/images"
    )
    img = Image(
        **api.owner(user),
        name=name,
        type=img_type,
        regtime=api.now(),
        source=f"{base}/{digest}",
        state=4,
        size=source.size if source else 0,
        datastore_id=source.datastore_id if source else 1,
        datastore=source.datastore if source else "default",
        template=[("NAME", name), ("SAVED_DISK_ID", str(disk_id)), ("SAVED_VM_ID", str(vmid))],
    )
    iid = c.add(Image, img)
    tpl.vset(disk, "SAVE_AS", str(iid))
    tpl.vset(disk, "SAVE", "YES")
    if c.version.has_clusters and img.datastore_id in c.pool(Datastore):
        ds = c.pool(Datastore)[img.datastore_id]
        ds.images.append(iid)
        c.save(ds)
    c.save(vm)
    return iid


@handles("one.vm.chown")
def _vm_chown(api: Api, user: User, vmid: int, uid: int, gid: int) -> int:
    vm = api.c.get(Vm, vmid)
    api.require_admin(user, f"ADMIN VM [{vmid}]")
    if uid >= 0:
        owner = api.c.pool(User).get(uid)
        if owner is None:
            raise not_found(User, uid)
        vm.uid, vm.uname = uid, owner.name
    if gid >= 0:
        group = api.c.pool(Group).get(gid)
        if group is None:
            raise not_found(Group, gid)
        vm.gid, vm.gname = gid, group.name
    api.c.save(vm)
    return vmid


@handles("one.vm.monitoring")
def _vm_monitoring(api: Api, user: User, vmid: int) -> str:
    api.owned(user, api.c.get(Vm, vmid), "USE VM")
    return (
        "<MONITORING_DATA>" + "".join(api.c.monitoring.get(("vm", vmid), [])) + "</MONITORING_DATA>"
    )


@handles("one.vmpool.monitoring")
def _vmpool_monitoring(api: Api, user: User, flag: int) -> str:
    vms = api.filtered(user, Vm, flag, -1, -1)
    bodies = [b for vm in vms for b in api.c.monitoring.get(("vm", vm.oid), [])]
    return "<MONITORING_DATA>" + "".join(bodies) + "</MONITORING_DATA>"


@handles("one.vmpool.accounting")
def _accounting(api: Api, user: User, flag: int, start: int, end: int) -> str:
    parts = ["<HISTORY_RECORDS>"]
    for vm in api.filtered(user, Vm, flag, -1, -1):
        snapshot = _accounting_vm(vm, api.c.series)
        for h in vm.history:
            if start != -1 and h.etime != 0 and h.etime < start:
                continue
            if end != -1 and h.stime > end:
                continue
            parts.append(h.to_xml(api.c.series)[: -len("</HISTORY>")] + snapshot + "</HISTORY>")
    parts.append("</HISTORY_RECORDS>")
    return "".join(parts)


def _accounting_vm(vm: Vm, series: str) -> str:
    copy: Any = Vm(**{k: getattr(vm, k) for k in vars(vm) if not k.startswith("_")})
    copy.history, copy.memory, copy.cpu, copy.net_tx, copy.net_rx = [], 0, 0, 0, 0
    return copy.to_xml(series)


# --------------------------------------------------------------- templates
@handles("one.templatepool.info")
def _templatepool(api: Api, user: User, flag: int, start: int, end: int) -> str:
    return api.pool(VmTemplate, api.filtered(user, VmTemplate, flag, start, end))


@handles("one.template.info")
def _template_info(api: Api, user: User, tid: int) -> str:
    api.owned(user, api.c.get(VmTemplate, tid), "USE TEMPLATE")
    return api.info(VmTemplate, tid)


@handles("one.template.allocate")
def _template_allocate(api: Api, user: User, text: str) -> int:
    attrs = api.parse(text, "virtual machine template")
    name = tpl.get(attrs, "NAME") or ""
    if not name:
        raise OneFailure(
            INTERNAL, "Error allocating a new virtual machine template. No NAME in template."
        )
    return api.c.add(
        VmTemplate,
        VmTemplate(
            **api.owner(user),
            name=name,
            regtime=api.now(),
            template=attrs,
        ),
    )
