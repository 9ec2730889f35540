"""VM migration between hosts (``one.vm.migrate`` and 3.6's rescheduling), in simulated time.

Transitions follow oned 3.x (shared/reference/opennebula-3x.md section 3.3): live
migration RUNNING -> MIGRATE -> RUNNING, for a time proportional to the VM's memory;
cold migration RUNNING -> SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT -> RUNNING, the boot
being ``vm_lcm``'s. A migration opens a history record on the new host at once; one
that fails (a host down, the lab's ``migration-fail`` fault) drops it, and the VM runs
on where it was. The lab's ``migration-hang`` fault holds a live migration in MIGRATE
until it is cleared.
"""

from __future__ import annotations

from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import Host, Vm
from upgrader.lab.oned.states import (
    MIGRATE,
    PROLOG_MIGRATE,
    REASON_USER,
    RUNNING,
    SAVE_MIGRATE,
    is_current,
    new_token,
    now,
)
from upgrader.lab.oned.vm_hosts import add_history, domain_of, memory_mb, rehost
from upgrader.lab.oned.vm_lcm import Rearm, enter, prolog_done, running_only


def migrate(c: Cloud, vm: Vm, host: Host, live: bool) -> None:
    """Live (MIGRATE) or cold (SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT) migration."""
    running_only(vm)
    before = set(c.hosts_of(vm))
    add_history(c, vm, host)
    if live:
        vm.lcm_state = MIGRATE
        rehost(c, vm, before)
        delay = c.t.migrate_base + memory_mb(vm) * c.t.migrate_per_mb
        c.at(delay, _migrate_done, c, vm, new_token(vm))
    else:
        vm.lcm_state = SAVE_MIGRATE
        rehost(c, vm, before)
        delay = c.t.save_base + memory_mb(vm) * c.t.save_per_mb
        c.at(delay, _cold_saved, c, vm, new_token(vm))


def _migration_blocked(c: Cloud, vm: Vm, name: str) -> bool:
    src, dst = vm.history[-2].hostname, vm.history[-1].hostname
    return c.fault(name, src) is not None or c.fault(name, dst) is not None


def _migrate_done(c: Cloud, vm: Vm, token: int) -> None:
    if not is_current(vm, token):
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
    t = now(c)
    if failed:
        vm.history.pop()  # back on the source, as if never moved
        vm.history[-1].etime = 0
        vm.lcm_state = RUNNING
        rehost(c, vm, before)
        return
    prev, new = vm.history[-2], vm.history[-1]
    prev.etime = prev.retime = t
    prev.reason = REASON_USER
    new.petime = new.rstime = t
    c.virt.stop(prev.hostname, f"one-{vm.oid}")
    c.virt.start(new.hostname, domain_of(c, vm))
    vm.lcm_state = RUNNING
    rehost(c, vm, before)
    c.save(vm)
    c._dirty_history.add((vm.oid, prev.seq))


def _cold_saved(c: Cloud, vm: Vm, token: int) -> None:
    if not is_current(vm, token):
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
    prev.etime = prev.retime = now(c)
    prev.reason = REASON_USER
    c._dirty_history.add((vm.oid, prev.seq))
    enter(c, vm, PROLOG_MIGRATE, c.t.prolog_migrate, prolog_done)


REARM: dict[int, Rearm] = {
    PROLOG_MIGRATE: (lambda c, vm, tok: c.at(c.t.prolog_migrate, prolog_done, c, vm, tok)),
    MIGRATE: (lambda c, vm, tok: c.at(c.t.migrate_base, _migrate_done, c, vm, tok)),
    SAVE_MIGRATE: (lambda c, vm, tok: c.at(c.t.save_base, _cold_saved, c, vm, tok)),
}
"""The LCM states of this module that a restarted oned resumes (``runtime.rearm``)."""
