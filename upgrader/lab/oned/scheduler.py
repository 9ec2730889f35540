"""mm_sched, the scheduler: PENDING VMs onto hosts, and 3.6's RESCHED, in simulated time.

``one start`` runs mm_sched after oned (shared/reference/opennebula-3x.md section 6). Each
cycle places PENDING VMs on MONITORING or MONITORED hosts (never DISABLED or ERROR ones,
section 3.1) that have room for the VM's CPU x 100 and MEMORY x 1024 in HOST_SHARE
(section 2.1) and meet its REQUIREMENTS (only ``ID``/``HOSTNAME``/``NAME``/``CLUSTER_ID``
clauses are read; 3.4+ writes the ``CLUSTER_ID`` one itself, section 2.2), striping: the
host with fewest RUNNING_VMS first. In 3.6 a RUNNING VM with RESCHED=1 (section 1.4) is
live-migrated to another such host.
"""

from __future__ import annotations

import re

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import Host, Vm
from upgrader.lab.oned.states import H_MONITORED, H_MONITORING, PENDING, RUNNING
from upgrader.lab.oned.vm_hosts import cpu_of, memory_mb
from upgrader.lab.oned.vm_lcm import deploy
from upgrader.lab.oned.vm_migration import migrate

_REQ = re.compile(r'\s*(ID|HOSTNAME|NAME|CLUSTER_ID)\s*(!?=)\s*"?([^"&|]*?)"?\s*$')


def _meets(vm: Vm, host: Host) -> bool:
    req = tpl.get(vm.template, "REQUIREMENTS") or ""
    for clause in filter(None, (p.strip() for p in req.split("&"))):
        m = _REQ.match(clause)
        if not m:
            continue
        key, op, value = m.groups()
        actual = {
            "ID": str(host.oid),
            "HOSTNAME": host.name,
            "NAME": host.name,
            "CLUSTER_ID": str(getattr(host, "cluster_id", -1)),
        }[key]
        if (actual == value) != (op == "="):
            return False
    return True


def _fits(vm: Vm, host: Host) -> bool:
    s = host.share
    return (
        s["MAX_CPU"] - s["CPU_USAGE"] >= cpu_of(vm) * 100
        and s["MAX_MEM"] - s["MEM_USAGE"] >= memory_mb(vm) * 1024
    )


def schedule(c: Cloud) -> None:
    """One mm_sched cycle: place PENDING VMs on monitored hosts with room (striping)."""
    hosts = [h for h in c.pool(Host).values() if h.state in (H_MONITORING, H_MONITORED)]
    per_host: dict[int, int] = {}
    dispatched = 0
    for vm in [v for v in c.pool(Vm).values() if v.state == PENDING]:
        if dispatched >= c.t.max_dispatch:
            break
        candidates = [
            h
            for h in hosts
            if per_host.get(h.oid, 0) < c.t.max_host and _fits(vm, h) and _meets(vm, h)
        ]
        if not candidates:
            continue
        best = min(candidates, key=lambda h: (h.share["RUNNING_VMS"], h.oid))
        deploy(c, vm, best)
        per_host[best.oid] = per_host.get(best.oid, 0) + 1
        dispatched += 1
    if c.version.is_36:
        for vm in [v for v in c.pool(Vm).values() if v.resched == 1 and v.lcm_state == RUNNING]:
            here = vm.history[-1].hid
            others = [h for h in hosts if h.oid != here and _fits(vm, h) and _meets(vm, h)]
            if others:
                vm.resched = 0
                migrate(c, vm, min(others, key=lambda h: (h.share["RUNNING_VMS"], h.oid)), True)
    c.at(c.t.sched_interval, schedule, c)
