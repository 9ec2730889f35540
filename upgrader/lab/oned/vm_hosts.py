"""Where a VM is and what it reserves there: history records, the host index, HOST_SHARE.

Not a state machine of its own, but what every VM transition goes through. A VM's
current host is the one of its last history record (shared/reference/opennebula-3x.md
section 2.2); a VM placed on a host reserves CPU x 100 and MEMORY(MB) x 1024 of it in
CPU_USAGE/MEM_USAGE and counts in RUNNING_VMS (section 2.1,
``VirtualMachine::get_requirements``). The domain a VM's host runs is named
``one-<id>``, with its disks where 3.2 (``/var/lib/one/<id>/images``) or 3.4+
(``/var/lib/one/datastores/0/<id>``) keeps them (section 5.3).
"""

from __future__ import annotations

import math

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import History, Host, Vm
from upgrader.lab.oned.states import now
from upgrader.lab.oned.virt import Domain


def memory_mb(vm: Vm) -> int:
    """TEMPLATE/MEMORY in MB (0 when absent or not a number)."""
    try:
        return int(float(tpl.get(vm.template, "MEMORY", "0") or 0))
    except ValueError:
        return 0


def cpu_of(vm: Vm) -> float:
    """TEMPLATE/CPU (0.0 when absent or not a number)."""
    try:
        return float(tpl.get(vm.template, "CPU", "0") or 0)
    except ValueError:
        return 0.0


def set_state(c: Cloud, vm: Vm, state: int, lcm: int) -> None:
    """Change a VM's state and keep host capacity and the host index right."""
    before = set(c.hosts_of(vm))
    vm.state, vm.lcm_state = state, lcm
    rehost(c, vm, before)


def rehost(c: Cloud, vm: Vm, before: set[int]) -> None:
    """After a history change: move the VM between hosts in the index."""
    after = set(c.hosts_of(vm))
    for hid in before - after:
        c.vms_on_host.get(hid, set()).discard(vm.oid)
    for hid in after - before:
        c.vms_on_host.setdefault(hid, set()).add(vm.oid)
    for hid in before ^ after:
        update_share(c, hid)
    c.save(vm)


def update_share(c: Cloud, hid: int) -> None:
    """CPU_USAGE, MEM_USAGE and RUNNING_VMS: what the VMs placed on the host reserve."""
    host = c.pool(Host).get(hid)
    if host is None:
        return
    vms = [c.pool(Vm)[v] for v in c.vms_on_host.get(hid, ()) if v in c.pool(Vm)]
    host.share["CPU_USAGE"] = int(sum(cpu_of(v) * 100 for v in vms))
    host.share["MEM_USAGE"] = sum(memory_mb(v) * 1024 for v in vms)
    host.share["RUNNING_VMS"] = len(vms)
    c.save(host)


def current_host(c: Cloud, vm: Vm) -> Host | None:
    """The host of the VM's last history record."""
    if not vm.history:
        return None
    return c.pool(Host).get(vm.history[-1].hid)


def domain_of(c: Cloud, vm: Vm) -> Domain:
    """The hypervisor domain the VM's host runs for it."""
    disks = []
    for i, disk in enumerate(tpl.vectors(vm.template, "DISK")):
        dev = tpl.vget(disk, "TARGET") or f"hd{chr(ord('a') + i)}"
        if c.series == "3.2":
            src = f"/var/lib/one/{vm.oid}/images/disk.{i}"
        else:
            src = f"/var/lib/one/datastores/0/{vm.oid}/disk.{i}"
        disks.append((dev, src))
    vcpu = int(tpl.get(vm.template, "VCPU", "0") or 0) or max(1, math.ceil(cpu_of(vm)))
    return Domain(f"one-{vm.oid}", vm.oid, memory_mb(vm) * 1024, vcpu, tuple(disks))


def add_history(c: Cloud, vm: Vm, host: Host) -> History:
    """A new history record on ``host``, starting now (the caller re-indexes the VM)."""
    t = now(c)
    h = History(
        oid=vm.oid,
        seq=len(vm.history),
        hostname=host.name,
        hid=host.oid,
        stime=t,
        vmmmad=host.vm_mad,
        vnmmad=host.vn_mad,
        tmmad=host.tm_mad if c.series == "3.2" else "shared",
        ds_id=0,
        pstime=t,
    )
    vm.history.append(h)
    return h
