"""The host state machine: host monitoring, the VM poll and the host-error hook, in simulated time.

Every enabled host runs two cycles. Monitoring (``src/im/InformationManager.cc``,
shared/reference/opennebula-3x.md section 3.1): in 3.2/3.4 a round takes the host to
MONITORING whatever it was; in 3.6 MONITORED -> MONITORING and ERROR ->
MONITORING_ERROR; success gives MONITORED with the probe's values (section 6.1: fixed
in 3.2/3.4, random usage in 3.6) copied to HOST_SHARE, failure gives ERROR with an
ERROR=[MESSAGE, TIMESTAMP] attribute (section 2.1). DISABLED hosts are not monitored.
The VM poll moves a VM that the hypervisor no longer runs from RUNNING to UNKNOWN and
back when it reappears (section 3.3), with the dummy poll's monitoring values
(section 6.1).

A host that enters ERROR runs the HOST_HOOK of oned.conf, ``ft/host_error.rb $HID -r``
(resubmit) or ``-d`` (delete), on its active VMs, through ``vm_lcm``.
"""

from __future__ import annotations

import random
import time

from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import Host, Vm
from upgrader.lab.oned.states import (
    ACTIVE,
    H_DISABLED,
    H_ERROR,
    H_MONITORED,
    H_MONITORING,
    H_MONITORING_ERROR,
    RUNNING,
    UNKNOWN,
    is_current,
    new_token,
    now,
)
from upgrader.lab.oned.vm_hosts import memory_mb, set_state
from upgrader.lab.oned.vm_lcm import finalize, resubmit

TOTALCPU = 800
TOTALMEMORY = 16777216


def start_monitoring(c: Cloud, host: Host, delay: float | None = None) -> None:
    """Start (or restart) the monitoring and VM polling cycles of a host."""
    token = new_token(host)
    first = min(5.0, c.t.monitoring_interval) if delay is None else delay
    c.at(first, _monitor_begin, c, host.oid, token)
    c.at(first + c.t.monitor + 0.5, _poll, c, host.oid, token)


def _monitor_begin(c: Cloud, hid: int, token: int) -> None:
    host = c.pool(Host).get(hid)
    if host is None or not is_current(host, token) or host.state == H_DISABLED:
        return
    host._was_error = host.state in (H_ERROR, H_MONITORING_ERROR)
    if c.version.is_36:
        host.state = {H_MONITORED: H_MONITORING, H_ERROR: H_MONITORING_ERROR}.get(
            host.state, host.state
        )
    else:
        host.state = H_MONITORING
    c.save(host)
    c.at(c.t.monitor, _monitor_end, c, hid, token)


def _monitor_end(c: Cloud, hid: int, token: int) -> None:
    host = c.pool(Host).get(hid)
    if host is None or not is_current(host, token) or host.state == H_DISABLED:
        return
    reason = c.host_down_reason(host)
    t = now(c)
    if reason:
        message = f"Error monitoring host {hid} : MONITOR FAILURE {hid} {reason}"
        tpl.put(host.template, "ERROR", [("MESSAGE", message), ("TIMESTAMP", time.ctime(t))])
        host.state = H_ERROR
        c.save(host)
        if not getattr(host, "_was_error", False):
            _host_error_hook(c, host)
    else:
        probe(c, host, t)
    c.at(c.t.monitoring_interval, _monitor_begin, c, hid, token)


def probe(c: Cloud, host: Host, t: int) -> None:
    """A successful monitoring round at time ``t``: the probe's values, MONITORED."""
    used_mem = used_cpu = 0
    if c.version.is_36:  # the 3.6 probes report random usage
        used_mem, used_cpu = random.randrange(TOTALMEMORY), random.randrange(TOTALCPU)  # noqa: S311
    hyper = "kvm" if "kvm" in host.im_mad else "dummy"
    attrs = [(k, v) for k, v in host.template if k != "ERROR"]
    values = {
        "HYPERVISOR": hyper,
        "HOSTNAME": host.name,
        "TOTALCPU": str(TOTALCPU),
        "CPUSPEED": "2.2GHz",
        "TOTALMEMORY": str(TOTALMEMORY),
        "USEDMEMORY": str(used_mem),
        "FREEMEMORY": str(TOTALMEMORY - used_mem),
        "FREECPU": str(TOTALCPU - used_cpu),
        "USEDCPU": str(used_cpu),
    }
    attrs = [(k, v) for k, v in attrs if k not in values] + list(values.items())
    host.template = attrs
    host.share.update(
        MAX_CPU=TOTALCPU,
        MAX_MEM=TOTALMEMORY,
        FREE_CPU=TOTALCPU - used_cpu,
        FREE_MEM=TOTALMEMORY - used_mem,
        USED_CPU=used_cpu,
        USED_MEM=used_mem,
    )
    host.state = H_MONITORED
    host.last_mon_time = t
    c.save(host)
    if c.version.is_36:
        samples = c.monitoring.setdefault(("host", host.oid), [])
        samples.append(host.body)
        del samples[:-5]


def _poll(c: Cloud, hid: int, token: int) -> None:
    """The VMM poll of every VM on one host."""
    host = c.pool(Host).get(hid)
    if host is None or not is_current(host, token):
        return
    down = c.host_down_reason(host) if host.state != H_DISABLED else None
    running = set(c.virt.running(host.name))
    t = now(c)
    for vmid in sorted(c.vms_on_host.get(hid, ())):
        vm = c.pool(Vm).get(vmid)
        if vm is None or vm.lcm_state not in (RUNNING, UNKNOWN) or vm.history[-1].hid != hid:
            continue
        if down or f"one-{vmid}" not in running:
            if vm.lcm_state == RUNNING:
                set_state(c, vm, ACTIVE, UNKNOWN)
            continue
        vm.last_poll = t
        if c.version.is_36:
            mem = memory_mb(vm) * 1024 or 256
            vm.memory = random.randint(mem // 5, mem * 99 // 100)  # noqa: S311
            vm.cpu = random.randint(5, 99)  # noqa: S311
            vm.net_tx += random.randint(0, 100000)  # noqa: S311
            vm.net_rx += random.randint(0, 100000)  # noqa: S311
        else:
            vm.net_tx = 12345
        if vm.lcm_state == UNKNOWN:
            vm.lcm_state = RUNNING
        c.save(vm)
        if c.version.is_36:
            samples = c.monitoring.setdefault(("vm", vmid), [])
            samples.append(vm.body)
            del samples[:-2]
    c.at(c.t.polling_interval, _poll, c, hid, token)


def _host_error_hook(c: Cloud, host: Host) -> None:
    """HOST_HOOK on ERROR: ``ft/host_error.rb $HID -r`` (resubmit) or ``-d`` (delete)."""
    if c.host_error_hook == "none":
        return
    for vmid in sorted(c.vms_on_host.get(host.oid, ())):
        vm = c.pool(Vm).get(vmid)
        if vm is None or vm.state != ACTIVE or vm.history[-1].hid != host.oid:
            continue
        if c.host_error_hook == "resubmit":
            resubmit(c, vm)
        else:
            finalize(c, vm)
