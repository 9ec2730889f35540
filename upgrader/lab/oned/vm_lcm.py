"""The VM lifecycle on one host: deploy, the ``one.vm.action`` actions, DONE, in simulated time.

Transitions follow oned 3.x (shared/reference/opennebula-3x.md section 3.3): deploy
PENDING -> PROLOG -> BOOT -> RUNNING; shutdown -> SHUTDOWN -> EPILOG -> DONE;
stop/suspend through SAVE_STOP/SAVE_SUSPEND, resume; cancel; resubmit via CLEANUP. The
states each action is accepted in are those of section 1.4 (``DispatchManagerActions.cc``).
Driver actions on a host whose libvirtd crashed or that cannot be reached fail the way
they fail in 3.x, and the domains already running there keep running: that is how a
resubmitting host-error hook ends with one VM running on two hosts.

Moves between hosts are ``vm_migration``'s; RUNNING <-> UNKNOWN is the VM poll's
(``monitoring``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from upgrader.lab.oned import nics
from upgrader.lab.oned import template_attrs as tpl
from upgrader.lab.oned.cloud import INTERNAL, Cloud, OneFailure
from upgrader.lab.oned.objects import Host, Image, Vm
from upgrader.lab.oned.states import (
    ACTIVE,
    BOOT,
    CANCEL,
    CLEANUP,
    DONE,
    EPILOG,
    EPILOG_STOP,
    FAILED,
    HOLD,
    INIT,
    LCM_INIT,
    PENDING,
    PROLOG,
    PROLOG_RESUME,
    REASON_CANCEL,
    REASON_ERROR,
    REASON_STOP_RESUME,
    REASON_USER,
    RUNNING,
    SAVE_STOP,
    SAVE_SUSPEND,
    SHUTDOWN,
    STOPPED,
    SUSPENDED,
    UNKNOWN,
    is_current,
    new_token,
    now,
    wrong_state,
)
from upgrader.lab.oned.vm_hosts import (
    add_history,
    current_host,
    domain_of,
    memory_mb,
    rehost,
    set_state,
)


def _reachable_host(c: Cloud, vm: Vm) -> Host | None:
    """The VM's current host if its drivers can act there (no crashed libvirtd, reachable)."""
    host = current_host(c, vm)
    if host is None or c.host_down_reason(host):
        return None
    return host


def enter(c: Cloud, vm: Vm, lcm: int, delay: float, done: Callable[..., None], *args: Any) -> None:
    """ACTIVE/``lcm`` until ``done(c, vm, token, *args)`` ends it ``delay`` seconds later."""
    set_state(c, vm, ACTIVE, lcm)
    c.at(delay, done, c, vm, new_token(vm), *args)


# ------------------------------------------------------------------- deploy
def deploy(c: Cloud, vm: Vm, host: Host) -> None:
    """PENDING -> ACTIVE/PROLOG on ``host`` (or PROLOG_RESUME after a stop)."""
    if vm.state != PENDING:
        raise wrong_state()
    resuming = bool(vm.history) and vm.history[-1].reason == REASON_STOP_RESUME
    before = set(c.hosts_of(vm))
    add_history(c, vm, host)
    vm.state, vm.lcm_state = ACTIVE, PROLOG_RESUME if resuming else PROLOG
    rehost(c, vm, before)
    c.at(c.t.prolog, prolog_done, c, vm, new_token(vm))


def prolog_done(c: Cloud, vm: Vm, token: int) -> None:
    """The end of a PROLOG, PROLOG_RESUME or PROLOG_MIGRATE: BOOT."""
    if not is_current(vm, token):
        return
    vm.history[-1].petime = now(c)
    _boot(c, vm)


def _boot(c: Cloud, vm: Vm) -> None:
    vm.history[-1].rstime = vm.history[-1].rstime or now(c)
    enter(c, vm, BOOT, c.t.boot, _boot_done)


def _boot_done(c: Cloud, vm: Vm, token: int) -> None:
    if not is_current(vm, token):
        return
    host = _reachable_host(c, vm)
    if host is None:
        _fail(c, vm)
        return
    c.virt.start(host.name, domain_of(c, vm))
    vm.deploy_id = f"one-{vm.oid}"
    vm.last_poll = now(c)
    set_state(c, vm, ACTIVE, RUNNING)


def _fail(c: Cloud, vm: Vm) -> None:
    """A boot that the driver could not do: FAILED, as 3.x leaves it."""
    h = vm.history[-1]
    h.etime = h.retime = now(c)
    h.reason = REASON_ERROR
    set_state(c, vm, FAILED, LCM_INIT)


# --------------------------------------------------------------- vm.action
def action(c: Cloud, vm: Vm, name: str) -> None:
    """``one.vm.action``: dispatch by action name (the version's list was checked before)."""
    handler = _ACTIONS.get(name)
    if handler is None:
        raise OneFailure(INTERNAL, "Internal error. Action result not defined")
    handler(c, vm)


def running_only(vm: Vm) -> None:
    """Refuse, as oned does, an action for a VM that is not ACTIVE/RUNNING."""
    if vm.state != ACTIVE or vm.lcm_state != RUNNING:
        raise wrong_state()


def _shutdown(c: Cloud, vm: Vm) -> None:
    running_only(vm)
    ignores = (tpl.get(vm.template, "LAB_IGNORES_ACPI", "NO") or "").upper() == "YES"
    delay = c.t.shutdown_timeout if ignores else c.t.shutdown
    enter(c, vm, SHUTDOWN, delay, _shutdown_done, ignores)


def _shutdown_done(c: Cloud, vm: Vm, token: int, ignored: bool) -> None:
    if not is_current(vm, token):
        return
    host = _reachable_host(c, vm)
    if ignored or host is None:
        set_state(c, vm, ACTIVE, RUNNING)  # shutdown failure: the guest is still running
        return
    c.virt.stop(host.name, f"one-{vm.oid}")
    _epilog(c, vm, EPILOG)


def _epilog(c: Cloud, vm: Vm, lcm: int) -> None:
    h = vm.history[-1]
    h.retime = h.estime = now(c)
    enter(c, vm, lcm, c.t.epilog, _epilog_done, lcm)


def _epilog_done(c: Cloud, vm: Vm, token: int, lcm: int) -> None:
    if not is_current(vm, token):
        return
    h = vm.history[-1]
    h.eetime = h.etime = now(c)
    if lcm == EPILOG_STOP:
        h.reason = REASON_STOP_RESUME
        set_state(c, vm, STOPPED, LCM_INIT)
        return
    _done(c, vm)


def _done(c: Cloud, vm: Vm) -> None:
    vm.etime = now(c)
    release_resources(c, vm)
    set_state(c, vm, DONE, LCM_INIT)


def _cancel(c: Cloud, vm: Vm) -> None:
    running_only(vm)
    enter(c, vm, CANCEL, c.t.cancel, _cancel_done)


def _cancel_done(c: Cloud, vm: Vm, token: int) -> None:
    if not is_current(vm, token):
        return
    host = _reachable_host(c, vm)
    if host is None:
        set_state(c, vm, ACTIVE, RUNNING)
        return
    c.virt.stop(host.name, f"one-{vm.oid}")
    vm.history[-1].reason = REASON_CANCEL
    _epilog(c, vm, EPILOG)


def _save(c: Cloud, vm: Vm, lcm: int) -> None:
    running_only(vm)
    delay = c.t.save_base + memory_mb(vm) * c.t.save_per_mb
    enter(c, vm, lcm, delay, _save_done, lcm)


def _save_done(c: Cloud, vm: Vm, token: int, lcm: int) -> None:
    if not is_current(vm, token):
        return
    host = _reachable_host(c, vm)
    if host is None:
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
    running_only(vm)


def _reset(c: Cloud, vm: Vm) -> None:
    running_only(vm)
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
    host = _reachable_host(c, vm)
    if host is not None:
        c.virt.stop(host.name, f"one-{vm.oid}")


def finalize(c: Cloud, vm: Vm) -> None:
    """Any state -> DONE at once (an active VM's domain is destroyed where reachable)."""
    if vm.state == DONE:
        return
    new_token(vm)
    if vm.state == ACTIVE:
        _destroy_domain(c, vm)
        h = vm.history[-1]
        h.etime = h.retime or now(c)
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
    enter(c, vm, CLEANUP, c.t.cancel, _cleanup_done)


def _cleanup_done(c: Cloud, vm: Vm, token: int) -> None:
    if not is_current(vm, token):
        return
    _destroy_domain(c, vm)
    h = vm.history[-1]
    h.etime = h.retime = now(c)
    h.reason = REASON_USER
    set_state(c, vm, PENDING, LCM_INIT)


def _resched(c: Cloud, vm: Vm, flag: int) -> None:
    running_only(vm)
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


# ------------------------------------------------------------------- restart
Rearm = Callable[[Cloud, Vm, int], None]
"""Arms again, with a new token, the timer that ends a VM's current LCM state."""

REARM: dict[int, Rearm] = {
    PROLOG: (lambda c, vm, tok: c.at(c.t.prolog, prolog_done, c, vm, tok)),
    PROLOG_RESUME: (lambda c, vm, tok: c.at(c.t.prolog, prolog_done, c, vm, tok)),
    BOOT: (lambda c, vm, tok: c.at(c.t.boot, _boot_done, c, vm, tok)),
    SAVE_STOP: (lambda c, vm, tok: c.at(c.t.save_base, _save_done, c, vm, tok, SAVE_STOP)),
    SAVE_SUSPEND: (lambda c, vm, tok: c.at(c.t.save_base, _save_done, c, vm, tok, SAVE_SUSPEND)),
    SHUTDOWN: (lambda c, vm, tok: c.at(c.t.shutdown, _shutdown_done, c, vm, tok, False)),
    CANCEL: (lambda c, vm, tok: c.at(c.t.cancel, _cancel_done, c, vm, tok)),
    EPILOG: (lambda c, vm, tok: c.at(c.t.epilog, _epilog_done, c, vm, tok, EPILOG)),
    EPILOG_STOP: (lambda c, vm, tok: c.at(c.t.epilog, _epilog_done, c, vm, tok, EPILOG_STOP)),
    CLEANUP: (lambda c, vm, tok: c.at(c.t.cancel, _cleanup_done, c, vm, tok)),
}
"""The LCM states of this module that a restarted oned resumes (``runtime.rearm``)."""
