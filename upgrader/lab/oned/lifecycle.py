"""VM and host state machines, the scheduler and the host-error hook, in simulated time.

Transitions follow oned 3.x (shared/reference/opennebula-3x.md section 3.3): deploy
PENDING -> PROLOG -> BOOT -> RUNNING; shutdown -> SHUTDOWN -> EPILOG -> DONE; live
migration MIGRATE for a time proportional to the VM's memory; cold migration
SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT; stop/suspend/resume; resubmit via CLEANUP.
Driver actions on a host whose libvirtd crashed or that cannot be reached fail the way
they fail in 3.x, and the domains already running there keep running: that is how a
resubmitting host-error hook ends with one VM running on two hosts.
"""

from __future__ import annotations

import math
import random
import re
import time
from typing import Any

from upgrader.lab.oned import nics
from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import ACTION, INTERNAL, Cloud, OneFailure
from upgrader.lab.oned.objects import History, Host, Image, Vm
from upgrader.lab.oned.virt import Domain

# VM states and LCM states used below.
INIT, PENDING, HOLD, ACTIVE, STOPPED, SUSPENDED, DONE, FAILED = range(8)
(
    LCM_INIT,
    PROLOG,
    BOOT,
    RUNNING,
    MIGRATE,
    SAVE_STOP,
    SAVE_SUSPEND,
    SAVE_MIGRATE,
    PROLOG_MIGRATE,
    PROLOG_RESUME,
    EPILOG_STOP,
    EPILOG,
    SHUTDOWN,
    CANCEL,
    FAILURE,
    CLEANUP,
    UNKNOWN,
) = range(17)
H_INIT, H_MONITORING, H_MONITORED, H_ERROR, H_DISABLED, H_MONITORING_ERROR = range(6)
REASON_NONE, REASON_ERROR, REASON_STOP_RESUME, REASON_USER, REASON_CANCEL = range(5)

TOTALCPU = 800
TOTALMEMORY = 16777216


def wrong_state() -> OneFailure:
    """oned's answer to an action the VM's state does not allow."""
    return OneFailure(ACTION, "Wrong state to perform action")


# ------------------------------------------------------------------ helpers
def _now(c: Cloud) -> int:
    return int(c.clock.now())


def _token(vm: Any) -> int:
    vm._op = getattr(vm, "_op", 0) + 1
    return vm._op


def _valid(vm: Any, token: int) -> bool:
    return getattr(vm, "_op", 0) == token


def _memory_mb(vm: Vm) -> int:
    try:
        return int(float(tpl.get(vm.template, "MEMORY", "0") or 0))
    except ValueError:
        return 0


def _cpu(vm: Vm) -> float:
    try:
        return float(tpl.get(vm.template, "CPU", "0") or 0)
    except ValueError:
        return 0.0


def set_state(c: Cloud, vm: Vm, state: int, lcm: int) -> None:
    """Change a VM's state and keep host capacity and the host index right."""
    before = set(c.hosts_of(vm))
    vm.state, vm.lcm_state = state, lcm
    after = set(c.hosts_of(vm))
    for hid in before - after:
        c.vms_on_host.get(hid, set()).discard(vm.oid)
    for hid in after - before:
        c.vms_on_host.setdefault(hid, set()).add(vm.oid)
    for hid in before ^ after:
        update_share(c, hid)
    c.save(vm)


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
    host.share["CPU_USAGE"] = int(sum(_cpu(v) * 100 for v in vms))
    host.share["MEM_USAGE"] = sum(_memory_mb(v) * 1024 for v in vms)
    host.share["RUNNING_VMS"] = len(vms)
    c.save(host)


def current_host(c: Cloud, vm: Vm) -> Host | None:
    """The host of the VM's last history record."""
    if not vm.history:
        return None
    return c.pool(Host).get(vm.history[-1].hid)


def _domain(c: Cloud, vm: Vm) -> Domain:
    disks = []
    for i, disk in enumerate(tpl.vectors(vm.template, "DISK")):
        dev = tpl.vget(disk, "TARGET") or f"hd{chr(ord('a') + i)}"
        if c.series == "3.2":
            src = f"/var/lib/one/{vm.oid}/images/disk.{i}"
        else:
            src = f"/var/lib/one/datastores/0/{vm.oid}/disk.{i}"
        disks.append((dev, src))
    vcpu = int(tpl.get(vm.template, "VCPU", "0") or 0) or max(1, math.ceil(_cpu(vm)))
    return Domain(f"one-{vm.oid}", vm.oid, _memory_mb(vm) * 1024, vcpu, tuple(disks))


def _add_history(c: Cloud, vm: Vm, host: Host) -> History:
    now = _now(c)
    h = History(
        oid=vm.oid,
        seq=len(vm.history),
        hostname=host.name,
        hid=host.oid,
        stime=now,
        vmmmad=host.vm_mad,
        vnmmad=host.vn_mad,
        tmmad=host.tm_mad if c.series == "3.2" else "shared",
        ds_id=0,
        pstime=now,
    )
    vm.history.append(h)
    return h


# ------------------------------------------------------------------- deploy
def deploy(c: Cloud, vm: Vm, host: Host) -> None:
    """PENDING -> ACTIVE/PROLOG on ``host`` (or PROLOG_RESUME after a stop)."""
    if vm.state != PENDING:
        raise wrong_state()
    resuming = bool(vm.history) and vm.history[-1].reason == REASON_STOP_RESUME
    before = set(c.hosts_of(vm))
    _add_history(c, vm, host)
    vm.state, vm.lcm_state = ACTIVE, PROLOG_RESUME if resuming else PROLOG
    rehost(c, vm, before)
    c.at(c.t.prolog, _prolog_done, c, vm, _token(vm))


def _prolog_done(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    vm.history[-1].petime = _now(c)
    _boot(c, vm)


def _boot(c: Cloud, vm: Vm) -> None:
    vm.history[-1].rstime = vm.history[-1].rstime or _now(c)
    set_state(c, vm, ACTIVE, BOOT)
    c.at(c.t.boot, _boot_done, c, vm, _token(vm))


def _boot_done(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    host = current_host(c, vm)
    if host is None or c.host_down_reason(host):
        _fail(c, vm)
        return
    c.virt.start(host.name, _domain(c, vm))
    vm.deploy_id = f"one-{vm.oid}"
    vm.last_poll = _now(c)
    set_state(c, vm, ACTIVE, RUNNING)


def _fail(c: Cloud, vm: Vm) -> None:
    """A boot that the driver could not do: FAILED, as 3.x leaves it."""
    h = vm.history[-1]
    h.etime = h.retime = _now(c)
    h.reason = REASON_ERROR
    set_state(c, vm, FAILED, LCM_INIT)


# --------------------------------------------------------------- vm.action
def action(c: Cloud, vm: Vm, name: str) -> None:
    """``one.vm.action``: dispatch by action name (the version's list was checked before)."""
    handler = _ACTIONS.get(name)
    if handler is None:
        raise OneFailure(INTERNAL, "Internal error. Action result not defined")
    handler(c, vm)


def _running_only(vm: Vm) -> None:
    if vm.state != ACTIVE or vm.lcm_state != RUNNING:
        raise wrong_state()


def _shutdown(c: Cloud, vm: Vm) -> None:
    _running_only(vm)
    set_state(c, vm, ACTIVE, SHUTDOWN)
    ignores = (tpl.get(vm.template, "LAB_IGNORES_ACPI", "NO") or "").upper() == "YES"
    delay = c.t.shutdown_timeout if ignores else c.t.shutdown
    c.at(delay, _shutdown_done, c, vm, _token(vm), ignores)


def _shutdown_done(c: Cloud, vm: Vm, token: int, ignored: bool) -> None:
    if not _valid(vm, token):
        return
    host = current_host(c, vm)
    if ignored or host is None or c.host_down_reason(host):
        set_state(c, vm, ACTIVE, RUNNING)  # shutdown failure: the guest is still running
        return
    c.virt.stop(host.name, f"one-{vm.oid}")
    _epilog(c, vm, EPILOG)


def _epilog(c: Cloud, vm: Vm, lcm: int) -> None:
    h = vm.history[-1]
    h.retime = h.estime = _now(c)
    set_state(c, vm, ACTIVE, lcm)
    c.at(c.t.epilog, _epilog_done, c, vm, _token(vm), lcm)


def _epilog_done(c: Cloud, vm: Vm, token: int, lcm: int) -> None:
    if not _valid(vm, token):
        return
    h = vm.history[-1]
    h.eetime = h.etime = _now(c)
    if lcm == EPILOG_STOP:
        h.reason = REASON_STOP_RESUME
        set_state(c, vm, STOPPED, LCM_INIT)
        return
    _done(c, vm)


def _done(c: Cloud, vm: Vm) -> None:
    vm.etime = _now(c)
    release_resources(c, vm)
    set_state(c, vm, DONE, LCM_INIT)


def _cancel(c: Cloud, vm: Vm) -> None:
    _running_only(vm)
    set_state(c, vm, ACTIVE, CANCEL)
    c.at(c.t.cancel, _cancel_done, c, vm, _token(vm))


def _cancel_done(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    host = current_host(c, vm)
    if host is None or c.host_down_reason(host):
        set_state(c, vm, ACTIVE, RUNNING)
        return
    c.virt.stop(host.name, f"one-{vm.oid}")
    vm.history[-1].reason = REASON_CANCEL
    _epilog(c, vm, EPILOG)


def _save(c: Cloud, vm: Vm, lcm: int) -> None:
    _running_only(vm)
    set_state(c, vm, ACTIVE, lcm)
    delay = c.t.save_base + _memory_mb(vm) * c.t.save_per_mb
    c.at(delay, _save_done, c, vm, _token(vm), lcm)


def _save_done(c: Cloud, vm: Vm, token: int, lcm: int) -> None:
    if not _valid(vm, token):
        return
    host = current_host(c, vm)
    if host is None or c.host_down_reason(host):
        set_state(c, vm, ACTIVE, RUNNING)
        return
    c.virt.stop(host.name, f"one-{vm.oid}")
    if lcm == SAVE_STOP:
        _epilog(c, vm, EPILOG_STOP)
    elif lcm == SAVE_SUSPEND:
        set_state(c, vm, SUSPENDED, LCM_INIT)


def _resume(c: Cloud, vm: Vm) -> None:
    if vm.state == STOPPED:
        set_state(c, vm, PENDING, LCM_INIT)
    elif vm.state == SUSPENDED:
        _boot(c, vm)
    else:
        raise wrong_state()


def _restart(c: Cloud, vm: Vm) -> None:
    if vm.state != ACTIVE or vm.lcm_state not in (UNKNOWN, BOOT):
        raise wrong_state()
    _boot(c, vm)


def _reboot(c: Cloud, vm: Vm) -> None:
    _running_only(vm)


def _reset(c: Cloud, vm: Vm) -> None:
    _running_only(vm)
    _boot(c, vm)


def _hold(c: Cloud, vm: Vm) -> None:
    if vm.state != PENDING:
        raise wrong_state()
    set_state(c, vm, HOLD, LCM_INIT)


def _release(c: Cloud, vm: Vm) -> None:
    if vm.state != HOLD:
        raise wrong_state()
    set_state(c, vm, PENDING, LCM_INIT)


def _destroy_domain(c: Cloud, vm: Vm) -> None:
    """Destroy the VM's domain if the driver can reach its host; otherwise it keeps running."""
    host = current_host(c, vm)
    if host is not None and not c.host_down_reason(host):
        c.virt.stop(host.name, f"one-{vm.oid}")


def finalize(c: Cloud, vm: Vm) -> None:
    """Any state -> DONE at once (an active VM's domain is destroyed where reachable)."""
    if vm.state == DONE:
        return
    _token(vm)
    if vm.state == ACTIVE:
        _destroy_domain(c, vm)
        h = vm.history[-1]
        h.etime = h.retime or _now(c)
    _done(c, vm)


def resubmit(c: Cloud, vm: Vm) -> None:
    """Back to PENDING: via CLEANUP for an active VM."""
    if vm.state in (INIT, PENDING):
        return
    if vm.state in (HOLD, STOPPED, FAILED):
        set_state(c, vm, PENDING, LCM_INIT)
        return
    if vm.state != ACTIVE:
        raise wrong_state()
    set_state(c, vm, ACTIVE, CLEANUP)
    c.at(c.t.cancel, _cleanup_done, c, vm, _token(vm))


def _cleanup_done(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    _destroy_domain(c, vm)
    h = vm.history[-1]
    h.etime = h.retime = _now(c)
    h.reason = REASON_USER
    set_state(c, vm, PENDING, LCM_INIT)


def _resched(c: Cloud, vm: Vm, flag: int) -> None:
    _running_only(vm)
    vm.resched = flag
    c.save(vm)


_ACTIONS = {
    "shutdown": _shutdown,
    "hold": _hold,
    "release": _release,
    "stop": lambda c, vm: _save(c, vm, SAVE_STOP),
    "cancel": _cancel,
    "suspend": lambda c, vm: _save(c, vm, SAVE_SUSPEND),
    "resume": _resume,
    "restart": _restart,
    "finalize": finalize,
    "resubmit": resubmit,
    "reboot": _reboot,
    "resched": lambda c, vm: _resched(c, vm, 1),
    "unresched": lambda c, vm: _resched(c, vm, 0),
    "reset": _reset,
}


# ---------------------------------------------------------------- migration
def migrate(c: Cloud, vm: Vm, host: Host, live: bool) -> None:
    """Live (MIGRATE) or cold (SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT) migration."""
    _running_only(vm)
    before = set(c.hosts_of(vm))
    _add_history(c, vm, host)
    if live:
        vm.lcm_state = MIGRATE
        rehost(c, vm, before)
        delay = c.t.migrate_base + _memory_mb(vm) * c.t.migrate_per_mb
        c.at(delay, _migrate_done, c, vm, _token(vm))
    else:
        vm.lcm_state = SAVE_MIGRATE
        rehost(c, vm, before)
        delay = c.t.save_base + _memory_mb(vm) * c.t.save_per_mb
        c.at(delay, _cold_saved, c, vm, _token(vm))


def _migration_blocked(c: Cloud, vm: Vm, name: str) -> bool:
    src, dst = vm.history[-2].hostname, vm.history[-1].hostname
    return c.fault(name, src) is not None or c.fault(name, dst) is not None


def _migrate_done(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    if _migration_blocked(c, vm, "migration-hang"):
        c.at(1.0, _migrate_done, c, vm, token)  # hangs until the fault is cleared
        return
    src, dst = c.pool(Host).get(vm.history[-2].hid), c.pool(Host).get(vm.history[-1].hid)
    failed = (
        _migration_blocked(c, vm, "migration-fail")
        or src is None
        or dst is None
        or c.host_down_reason(src)
        or c.host_down_reason(dst)
    )
    before = set(c.hosts_of(vm))
    now = _now(c)
    if failed:
        vm.history.pop()  # back on the source, as if never moved
        vm.history[-1].etime = 0
        vm.lcm_state = RUNNING
        rehost(c, vm, before)
        return
    prev, new = vm.history[-2], vm.history[-1]
    prev.etime = prev.retime = now
    prev.reason = REASON_USER
    new.petime = new.rstime = now
    c.virt.stop(prev.hostname, f"one-{vm.oid}")
    c.virt.start(new.hostname, _domain(c, vm))
    vm.lcm_state = RUNNING
    rehost(c, vm, before)
    c.save(vm)
    c._dirty_history.add((vm.oid, prev.seq))


def _cold_saved(c: Cloud, vm: Vm, token: int) -> None:
    if not _valid(vm, token):
        return
    src = c.pool(Host).get(vm.history[-2].hid)
    before = set(c.hosts_of(vm))
    if src is None or c.host_down_reason(src) or _migration_blocked(c, vm, "migration-fail"):
        vm.history.pop()
        vm.history[-1].etime = 0
        vm.lcm_state = RUNNING
        rehost(c, vm, before)
        return
    c.virt.stop(src.name, f"one-{vm.oid}")
    prev = vm.history[-2]
    prev.etime = prev.retime = _now(c)
    prev.reason = REASON_USER
    c._dirty_history.add((vm.oid, prev.seq))
    set_state(c, vm, ACTIVE, PROLOG_MIGRATE)
    c.at(c.t.prolog_migrate, _prolog_done, c, vm, _token(vm))


# ---------------------------------------------------------------- resources
def release_resources(c: Cloud, vm: Vm) -> None:
    """At DONE: images are released (saved disks become READY), leases freed."""
    for disk in tpl.vectors(vm.template, "DISK"):
        iid = tpl.vget(disk, "IMAGE_ID")
        if iid is not None and iid.isdigit() and int(iid) in c.pool(Image):
            img = c.pool(Image)[int(iid)]
            img.running_vms = max(0, img.running_vms - 1)
            if img.running_vms == 0 and img.state in (2, 8):
                img.state = 1
            c.save(img)
        save_as = tpl.vget(disk, "SAVE_AS")
        if save_as is not None and save_as.isdigit() and int(save_as) in c.pool(Image):
            saved = c.pool(Image)[int(save_as)]
            saved.state = 1
            c.save(saved)
    nics.release_all(c, vm.oid, tpl.vectors(vm.template, "NIC"))


# ------------------------------------------------------------ monitoring
def start_monitoring(c: Cloud, host: Host, delay: float | None = None) -> None:
    """Start (or restart) the monitoring and VM polling cycles of a host."""
    token = _token(host)
    first = min(5.0, c.t.monitoring_interval) if delay is None else delay
    c.at(first, _monitor_begin, c, host.oid, token)
    c.at(first + c.t.monitor + 0.5, _poll, c, host.oid, token)


def _monitor_begin(c: Cloud, hid: int, token: int) -> None:
    host = c.pool(Host).get(hid)
    if host is None or not _valid(host, token) or host.state == H_DISABLED:
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
    if host is None or not _valid(host, token) or host.state == H_DISABLED:
        return
    reason = c.host_down_reason(host)
    now = _now(c)
    if reason:
        message = f"Error monitoring host {hid} : MONITOR FAILURE {hid} {reason}"
        tpl.put(host.template, "ERROR", [("MESSAGE", message), ("TIMESTAMP", time.ctime(now))])
        host.state = H_ERROR
        c.save(host)
        if not getattr(host, "_was_error", False):
            _host_error_hook(c, host)
    else:
        _probe(c, host, now)
    c.at(c.t.monitoring_interval, _monitor_begin, c, hid, token)


def _probe(c: Cloud, host: Host, now: int) -> None:
    used_mem = used_cpu = 0
    if c.version.is_36:  # the 3.6 probes report random usage
        used_mem, used_cpu = random.randrange(TOTALMEMORY), random.randrange(TOTALCPU)  # noqa: S311
    hyper = "kvm" if "kvm" in host.im_mad else "dummy"
    attrs = [(k, v) for k, v in host.template if k != "ERROR"]
    probe = {
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
    attrs = [(k, v) for k, v in attrs if k not in probe] + list(probe.items())
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
    host.last_mon_time = now
    c.save(host)
    if c.version.is_36:
        samples = c.monitoring.setdefault(("host", host.oid), [])
        samples.append(host.body)
        del samples[:-5]


def _poll(c: Cloud, hid: int, token: int) -> None:
    """The VMM poll of every VM on one host."""
    host = c.pool(Host).get(hid)
    if host is None or not _valid(host, token):
        return
    down = c.host_down_reason(host) if host.state != H_DISABLED else None
    running = set(c.virt.running(host.name))
    now = _now(c)
    for vmid in sorted(c.vms_on_host.get(hid, ())):
        vm = c.pool(Vm).get(vmid)
        if vm is None or vm.lcm_state not in (RUNNING, UNKNOWN) or vm.history[-1].hid != hid:
            continue
        if down or f"one-{vmid}" not in running:
            if vm.lcm_state == RUNNING:
                set_state(c, vm, ACTIVE, UNKNOWN)
            continue
        vm.last_poll = now
        if c.version.is_36:
            mem = _memory_mb(vm) * 1024 or 256
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


# ---------------------------------------------------------------- scheduler
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
        s["MAX_CPU"] - s["CPU_USAGE"] >= _cpu(vm) * 100
        and s["MAX_MEM"] - s["MEM_USAGE"] >= _memory_mb(vm) * 1024
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


# ------------------------------------------------------------------- restart
_REARM = {
    PROLOG: (lambda c, vm, tok: c.at(c.t.prolog, _prolog_done, c, vm, tok)),
    PROLOG_RESUME: (lambda c, vm, tok: c.at(c.t.prolog, _prolog_done, c, vm, tok)),
    PROLOG_MIGRATE: (lambda c, vm, tok: c.at(c.t.prolog_migrate, _prolog_done, c, vm, tok)),
    BOOT: (lambda c, vm, tok: c.at(c.t.boot, _boot_done, c, vm, tok)),
    MIGRATE: (lambda c, vm, tok: c.at(c.t.migrate_base, _migrate_done, c, vm, tok)),
    SAVE_MIGRATE: (lambda c, vm, tok: c.at(c.t.save_base, _cold_saved, c, vm, tok)),
    SAVE_STOP: (lambda c, vm, tok: c.at(c.t.save_base, _save_done, c, vm, tok, SAVE_STOP)),
    SAVE_SUSPEND: (lambda c, vm, tok: c.at(c.t.save_base, _save_done, c, vm, tok, SAVE_SUSPEND)),
    SHUTDOWN: (lambda c, vm, tok: c.at(c.t.shutdown, _shutdown_done, c, vm, tok, False)),
    CANCEL: (lambda c, vm, tok: c.at(c.t.cancel, _cancel_done, c, vm, tok)),
    EPILOG: (lambda c, vm, tok: c.at(c.t.epilog, _epilog_done, c, vm, tok, EPILOG)),
    EPILOG_STOP: (lambda c, vm, tok: c.at(c.t.epilog, _epilog_done, c, vm, tok, EPILOG_STOP)),
    CLEANUP: (lambda c, vm, tok: c.at(c.t.cancel, _cleanup_done, c, vm, tok)),
}


def rearm(c: Cloud) -> None:
    """After a restart: resume the timed work oned was doing (drivers answer again)."""
    for vm in c.pool(Vm).values():
        if vm.state == ACTIVE and vm.lcm_state in _REARM:
            _REARM[vm.lcm_state](c, vm, _token(vm))
    for host in c.pool(Host).values():
        c.virt.add_host(host.name)
        if host.state != H_DISABLED:
            start_monitoring(c, host)
    # mm_sched's timer first fires one SCHED_INTERVAL after it starts, as later passes do
    c.at(c.t.sched_interval, schedule, c)
