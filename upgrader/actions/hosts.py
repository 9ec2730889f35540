"""``disable-host``, ``enable-host``, ``drain-host`` and ``move-back-vms`` for a step's hosts.

State files under the run directory: ``hosts.json`` (each host's state before the run first
touched it, and whether the run disabled it, so that ``enable-host`` gives back only what
the run took: a host an operator had disabled stays disabled), and ``drained-<host>.json``
(per hop: each VM drained off the host, where it went, and whether it came back).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from upgrader.actions import placement
from upgrader.actions.state import (
    ContextLike,
    StepLike,
    read_json,
    seconds,
    step_hop,
    wait_until,
    write_json,
)
from upgrader.errors import UpgraderError
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import LcmState, VmState
from upgrader.opennebula.models import Host, Vm
from upgrader.opennebula.writes import host_enable, vm_migrate
from upgrader.text import slug

HOSTS_FILE = "hosts.json"


def tag(step: object) -> str:
    return f"[step/{step.id}]"


def pool_by_name(client: OneClient) -> dict[str, Host]:
    return {host.name: host for host in client.host_pool()}


def lookup(pool: Mapping[str, Host], name: str) -> Host:
    host = pool.get(name)
    if host is None:
        known = ", ".join(sorted(pool)) or "none"
        raise UpgraderError(
            f"host {name} is not in oned's host pool (known: {known})",
            hint="the inventory's hypervisors must carry the names oned knows them by",
        )
    return host


def batch_of(step: object, action: str) -> tuple[str, ...]:
    hosts = step.hosts
    if not hosts:
        raise UpgraderError(
            f"step {step.id}: {action} needs the step's hosts",
            hint="give the step a target group of hypervisors and a serial batch size",
        )
    return hosts


# ----------------------------------------------------------------- disable / enable
def _disable(client: OneClient, ctx: ContextLike, host: Host) -> bool:
    """Disable ``host``, noting in hosts.json what it was; True if this call disabled it."""
    path = ctx.run_dir / HOSTS_FILE
    known: dict[str, dict[str, Any]] = read_json(path, {})
    entry = known.setdefault(
        host.name, {"state_before": host.state.name, "disabled_by_run": host.is_enabled}
    )
    if not host.is_enabled:
        write_json(path, known)
        return False
    entry["disabled_by_run"] = True
    entry["enabled_again"] = False
    write_json(path, known)  # first: a crash right after the call still knows to enable it
    host_enable(client, host.id, enable=False)
    return True


def disable_host(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """``one.host.enable HOST false`` for each host of the batch (no-op if already disabled)."""
    pool = pool_by_name(client)
    hosts = [lookup(pool, name) for name in batch_of(step, "disable-host")]
    if ctx.dry_run:
        return {"dry_run": True, "would_disable": [h.name for h in hosts if h.is_enabled]}
    done, already = [], []
    for host in hosts:
        changed = _disable(client, ctx, host)
        (done if changed else already).append(host.name)
        ctx.progress(f"{tag(step)} host {host.name} {'disabled' if changed else 'was disabled'}")
    return {"disabled": done, "already_disabled": already}


def enable_host(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """``one.host.enable HOST true`` for the batch; without hosts (an undo step), for every
    host this run disabled. A host that was disabled before the run stays disabled."""
    path = ctx.run_dir / HOSTS_FILE
    known: dict[str, dict[str, Any]] = read_json(path, {})
    names = step.hosts or tuple(
        name
        for name, e in sorted(known.items())
        if e.get("disabled_by_run") and not e.get("enabled_again")
    )
    pool = pool_by_name(client)
    hosts = [lookup(pool, name) for name in names]
    kept = [h.name for h in hosts if not known.get(h.name, {}).get("disabled_by_run", True)]
    todo = [h for h in hosts if h.name not in kept and not h.is_enabled]
    if ctx.dry_run:
        return {"dry_run": True, "would_enable": [h.name for h in todo], "kept_disabled": kept}
    for host in todo:
        host_enable(client, host.id, enable=True)
        ctx.progress(f"{tag(step)} host {host.name} enabled")
    for host in hosts:
        if host.name in known and host.name not in kept:
            known[host.name]["enabled_again"] = True
    write_json(path, known)
    for name in kept:
        ctx.progress(f"{tag(step)} host {name} left disabled: it was disabled before the run")
    return {"enabled": [h.name for h in todo], "kept_disabled": kept}


# ------------------------------------------------------------------------- drain-host
def _drain_path(ctx: ContextLike, host: str) -> Path:
    return ctx.run_dir / f"drained-{slug(host)}.json"


def drained(ctx: ContextLike, host: str, hop: str) -> dict[str, dict[str, Any]]:
    data = read_json(_drain_path(ctx, host), {})
    return dict(data.get(hop, {}))


def save_drained(ctx: ContextLike, host: str, hop: str, vms: Mapping[str, Any]) -> None:
    path = _drain_path(ctx, host)
    data = read_json(path, {})
    data[hop] = dict(vms)
    write_json(path, data)


def _on(pool: Sequence[Vm], host: Host) -> list[Vm]:
    return [vm for vm in pool if vm.state is VmState.ACTIVE and vm.host_id == host.id]


def drain_host(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Disable each host of the batch and live-migrate its VMs to hosts with room outside it.

    A migration past ``migration_timeout`` (or one oned rolls back) stops the action with
    the host enabled again (if this run disabled it) and its VMs where they run.
    """
    batch = batch_of(step, "drain-host")
    pool = pool_by_name(client)
    hosts = [lookup(pool, name) for name in batch]
    if ctx.dry_run:
        return {"dry_run": True, "would_move": _dry_plan(client, hosts, batch)}
    for host in hosts:  # all first: the scheduler must not place anything on the batch
        _disable(client, ctx, host)
    moved: dict[str, dict[str, str]] = {}
    try:
        for host in hosts:
            moved[host.name] = _drain_one(client, step, ctx, host, batch)
    except UpgraderError as exc:
        enabled = []
        for host in hosts:
            if _disabled_by_run(ctx, host.name):
                host_enable(client, host.id, enable=True)
                _mark_enabled(ctx, host.name)
                enabled.append(host.name)
                ctx.progress(f"{tag(step)} host {host.name} enabled again after the failure")
        raise _stopped(step, exc, enabled) from exc
    return {"drained": moved}


def _stopped(step: StepLike, exc: UpgraderError, enabled: Sequence[str]) -> UpgraderError:
    """The drain's failure as the operator reads it: the step, what went wrong, and that the
    hosts it had disabled take VMs again (the exit code of the cause is kept)."""
    note = f"; {', '.join(enabled)} enabled again" if enabled else ""
    stopped = UpgraderError(f"step {step.id}: {exc}{note}", hint=exc.hint)
    stopped.exit_code = exc.exit_code
    return stopped


def _disabled_by_run(ctx: ContextLike, name: str) -> bool:
    entry = read_json(ctx.run_dir / HOSTS_FILE, {}).get(name, {})
    return bool(entry.get("disabled_by_run")) and not entry.get("enabled_again")


def _mark_enabled(ctx: ContextLike, name: str) -> None:
    path = ctx.run_dir / HOSTS_FILE
    known = read_json(path, {})
    if name in known:
        known[name]["enabled_again"] = True
        write_json(path, known)


def _dry_plan(client: OneClient, hosts: Sequence[Host], batch: Sequence[str]) -> dict[str, Any]:
    """Where each VM of the batch would go, with the earlier moves' room taken into account."""
    pool, capacity = client.vm_pool(), client.host_pool()
    reserved: dict[int, placement.Need] = {}
    plan: dict[str, Any] = {}
    for host in hosts:
        for vm in _on(pool, host):
            target = placement.place(capacity, batch, placement.need_of(vm), reserved)
            plan[str(vm.id)] = {
                "name": vm.name,
                "from": host.name,
                "to": target.name if target else None,
            }
    return plan


def _drain_one(
    client: OneClient, step: StepLike, ctx: ContextLike, host: Host, batch: Sequence[str]
) -> dict[str, str]:
    hop = step_hop(step)
    vms = drained(ctx, host.name, hop)
    budget = seconds(step, "migration_timeout", 600.0)
    interval = seconds(step, "poll_interval", 2.0)
    for vid, entry in vms.items():  # a migration in flight when the run stopped
        if entry["status"] == "migrating":
            if _back_on_source(client, int(vid), entry):
                entry["status"] = "rolled back"  # oned gave up on it: the loop tries again
                continue
            await_migration(client, ctx, int(vid), entry, budget, interval)
            entry["status"] = "moved"
    save_drained(ctx, host.name, hop, vms)
    started, moved_now = time.monotonic(), 0
    while True:
        here = _on(client.vm_pool(), host)
        if not here:
            break
        running = [vm for vm in here if vm.is_running]
        if not running:
            _settle(client, ctx, host, here, budget, interval)
            continue
        vm = running[0]
        target = placement.choose(client.host_pool(), batch, placement.need_of(vm))
        if target is None:
            raise UpgraderError(
                f"no host outside the batch ({', '.join(batch)}) has room for VM {vm.id} "
                f"({vm.name}) from {host.name}",
                hint="free capacity on other hosts, or upgrade with a smaller batch",
            )
        entry = {"name": vm.name, "from": host.name, "to": target.name, "status": "migrating"}
        vms[str(vm.id)] = {**vms.get(str(vm.id), {}), **entry}
        save_drained(ctx, host.name, hop, vms)
        ctx.progress(
            f"{tag(step)} VM {vm.id} ({vm.name}): {host.name} -> {target.name} "
            f"({_share(moved_now, moved_now + len(here), time.monotonic() - started)})"
        )
        vm_migrate(client, vm.id, target.id, live=True)
        await_migration(client, ctx, vm.id, entry, budget, interval)
        vms[str(vm.id)]["status"] = "moved"
        moved_now += 1
        save_drained(ctx, host.name, hop, vms)
    ctx.progress(f"{tag(step)} host {host.name} drained ({len(vms)} VMs moved)")
    return {vid: e["to"] for vid, e in sorted(vms.items())}


def _share(done: int, total: int, elapsed: float) -> str:
    """``drain 40 %, 2 of 5 VMs moved, ETA 1m30s``: the ETA from the pace so far."""
    line = f"drain {done * 100 // max(total, 1)} %, {done} of {total} VMs moved"
    if done:
        minutes, secs = divmod(round(elapsed / done * (total - done)), 60)
        line += f", ETA {minutes}m{secs:02d}s" if minutes else f", ETA {secs}s"
    return line


def _back_on_source(client: OneClient, vid: int, entry: Mapping[str, Any]) -> bool:
    """Whether oned ended the migration by leaving the VM running where it was."""
    vm = client.vm(vid)
    return vm.is_running and vm.host == entry["from"]


def _settle(
    client: OneClient,
    ctx: ContextLike,
    host: Host,
    here: list[Vm],
    budget: float,
    interval: float,
) -> None:
    lost = [vm for vm in here if vm.lcm_state is LcmState.UNKNOWN]
    if lost:
        names = ", ".join(f"{vm.id} ({vm.name})" for vm in lost)
        raise UpgraderError(
            f"VMs on {host.name} are UNKNOWN and cannot be live-migrated: {names}",
            hint="check them (onevm show, virsh list on the host), then resume the run",
        )
    ids = {vm.id for vm in here}

    def settled() -> bool:
        return not any(vm.id in ids and vm.is_transient for vm in _on(client.vm_pool(), host))

    if not wait_until(ctx, ctx.clock() + budget, interval, settled):
        names = ", ".join(f"{vm.id} ({vm.name}, {vm.lcm_state.name})" for vm in here)
        raise UpgraderError(f"VMs on {host.name} did not settle within {budget:g}s: {names}")


def await_migration(
    client: OneClient,
    ctx: ContextLike,
    vid: int,
    entry: Mapping[str, Any],
    budget: float,
    interval: float,
) -> None:
    """Wait until the VM runs on ``entry['to']``; raise if oned rolled it back or past budget."""

    def arrived() -> bool:
        vm = client.vm(vid)  # all history records: the stay on the source must be closed
        if vm.state is VmState.DONE:
            raise UpgraderError(f"VM {vid} ({entry['name']}) ended while being migrated")
        if not vm.is_running:
            return False
        stays = sorted(vm.history, key=lambda h: h.seq)
        left_source = len(stays) < 2 or stays[-2].etime > 0
        if vm.host == entry["to"]:
            return left_source
        raise UpgraderError(
            f"live migration of VM {vid} ({entry['name']}) from {entry['from']} to "
            f"{entry['to']} failed: it still runs on {vm.host}",
            hint="read oned.log on the front end for the migration error, then resume",
        )

    if not wait_until(ctx, ctx.clock() + budget, interval, arrived):
        raise _overdue(client, ctx, vid, entry, budget)


def _overdue(
    client: OneClient, ctx: ContextLike, vid: int, entry: Mapping[str, Any], budget: float
) -> UpgraderError:
    """A migration past its budget. OpenNebula 3.x cannot cancel a live migration, so the
    VM stays where oned has it (usually MIGRATE) and the operator is told what to wait for."""
    try:
        vm = client.vm(vid)
        now = f"{vm.state.name}/{vm.lcm_state.name}"
        if vm.host and vm.lcm_state is not LcmState.MIGRATE:  # MIGRATE: between two hosts
            now += f" on {vm.host}"
    except UpgraderError as exc:  # oned not answering is worth saying too
        now = f"unknown (oned: {exc})"
    run_id = ctx.run_id
    resume = f"`upgrader resume {run_id}`" if run_id else "resume the run"
    return UpgraderError(
        f"live migration of VM {vid} ({entry['name']}) from {entry['from']} to "
        f"{entry['to']} did not finish within {budget:g}s; the VM is {now} "
        "(OpenNebula 3.x cannot cancel a live migration)",
        hint=f"do not touch the VM while oned migrates it: check libvirtd and the network "
        f"between {entry['from']} and {entry['to']}, wait until `onevm show {vid}` says "
        f"RUNNING (on either host), then {resume}",
    )
