"""``record-vms``, ``shutdown-vms`` and ``recreate-vms``: the 3.2 -> 3.4 hop's way round
onedb's refusal of active VMs (opennebula-3x.md section 4.2).

State files under the run directory: ``vms.json`` (the record, written once and never
overwritten, so a resumed run re-creates what was there before the first shut-down),
``shutdown.json`` (the actions sent to each VM and the phase reached) and
``recreated.json`` (old VM id -> new VM id, written right after each allocation).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from upgrader.actions import vmrecord
from upgrader.actions.state import (
    ContextLike,
    StepLike,
    read_json,
    seconds,
    wait_until,
    write_json,
)
from upgrader.errors import OneStateError, UpgraderError
from upgrader.opennebula import parse
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import LcmState, VmState
from upgrader.opennebula.models import Permissions, Vm
from upgrader.opennebula.writes import vm_action, vm_allocate, vm_chmod, vm_chown, vm_deploy
from upgrader.opennebula.writes import vm_migrate as migrate_call

VMS_FILE = "vms.json"
SHUTDOWN_FILE = "shutdown.json"
RECREATED_FILE = "recreated.json"
_TEMPLATE_XML = re.compile(r"<TEMPLATE>.*</TEMPLATE>(?=\s*<HISTORY_RECORDS)", re.DOTALL)
_SEEN = vmrecord.SHUTTING_DOWN
_USER_ID = re.compile(r"<ID>(\d+)</ID>")


def _tag(step: object) -> str:
    return f"[step/{step.id}]"


def _interval(step: StepLike) -> float:
    return seconds(step, "poll_interval", 2.0)


def load_records(ctx: ContextLike) -> list[dict[str, Any]]:
    """The VMs ``record-vms`` wrote; an error if it never ran in this run."""
    data = read_json(ctx.run_dir / VMS_FILE)
    if data is None:
        raise UpgraderError(
            f"no VM record in {ctx.run_dir / VMS_FILE}",
            hint="the runbook must run the record-vms action before shutdown-vms/recreate-vms",
        )
    return list(data["vms"])


# ------------------------------------------------------------------------ record-vms
def record_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Record every VM that is not DONE (template, disks, NIC leases, owner, host)."""
    path = ctx.run_dir / VMS_FILE
    existing = read_json(path)
    if existing is not None:
        ctx.progress(f"{_tag(step)} keeping the record of {len(existing['vms'])} VMs made before")
        return {**_summary(existing["vms"]), "kept_existing_record": True}
    images = {image.id: image for image in client.image_pool()}
    records = []
    for listed in client.vm_pool():
        body = client.call("one.vm.info", listed.id)
        vm = parse.parse_vm(body, "one.vm.info")
        found = _TEMPLATE_XML.search(str(body))
        records.append(vmrecord.record_of(vm, images, found.group(0) if found else ""))
    write_json(path, {"vms": records})
    summary = _summary(records)
    ctx.progress(f"{_tag(step)} recorded {summary['count']} VMs in {path}")
    return summary


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    per_host: dict[str, int] = {}
    for record in records:
        key = record["host"] or "-"
        per_host[key] = per_host.get(key, 0) + 1
    inhibiting = [
        {"id": r["id"], "name": r["name"], "disk_id": d["disk_id"], "image": d["image"]}
        for r in records
        for d in r["disks"]
        if d["image_id"] is not None and not d["persistent"] and not d["save_as"]
    ]
    return {
        "count": len(records),
        "per_host": dict(sorted(per_host.items())),
        "non_persistent_disks": inhibiting,
    }


# ---------------------------------------------------------------------- shutdown-vms
def shutdown_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Bring every recorded VM to DONE: shutdown, then cancel past the budget (see next_move)."""
    mapping = read_json(ctx.run_dir / RECREATED_FILE, {})  # a run resumed after a rollback
    records = {incarnation(mapping, r): r for r in load_records(ctx)}
    path = ctx.run_dir / SHUTDOWN_FILE
    targets = sorted(records)
    saved = read_json(path, {})
    if saved.get("targets") != targets:  # first attempt, or VMs re-created by a rollback since
        saved = {"phase": vmrecord.GRACEFUL, "sent": {}, "targets": targets}
    sent: dict[str, list[str]] = saved["sent"]
    seen: list[int] = saved.get("seen_shutting_down", [])
    if ctx.dry_run:
        now = _current(client, records)
        would = {
            str(i): vmrecord.next_move(*now.get(i, (None, None)), vmrecord.GRACEFUL, [])
            for i in records
        }
        return {"dry_run": True, "would_send": would}
    budgets = {
        vmrecord.GRACEFUL: seconds(step, "shutdown_timeout", 300.0),
        vmrecord.HARD: seconds(step, "cancel_timeout", 120.0),
    }
    phase = saved["phase"]
    deadline = ctx.clock() + budgets[phase]

    def settled() -> bool:
        now = _current(client, records)
        moves = 0
        for vid in records:
            state, lcm = now.get(vid, (None, None))
            done = sent.get(str(vid), [])
            if lcm is LcmState.SHUTDOWN and "shutdown" in done and vid not in seen:
                seen.append(vid)  # so RUNNING later means the guest ignored the shutdown
                moves += 1
            observed = [*done, _SEEN] if vid in seen else done
            move = vmrecord.next_move(state, lcm, phase, observed)
            if move is not None:
                moves += _send(client, step, ctx, vid, records[vid]["name"], move, sent)
        if moves:
            write_json(
                path, {"phase": phase, "sent": sent, "targets": targets, "seen_shutting_down": seen}
            )
        return not now

    while not wait_until(ctx, deadline, _interval(step), settled):
        if phase == vmrecord.HARD:
            left = _current(client, records)
            names = ", ".join(
                f"{vid} {records[vid]['name']} ({s.name}/{lcm.name})"
                for vid, (s, lcm) in sorted(left.items())
            )
            raise UpgraderError(
                f"{len(left)} VMs are not DONE after shutdown and cancel: {names}",
                hint="onedb upgrade refuses them; end them by hand (onevm cancel/delete), then "
                "resume the run",
            )
        phase = vmrecord.HARD
        ctx.progress(f"{_tag(step)} shutdown budget spent; cancelling the VMs still up")
        write_json(
            path, {"phase": phase, "sent": sent, "targets": targets, "seen_shutting_down": seen}
        )
        deadline = ctx.clock() + budgets[phase]
    ctx.progress(f"{_tag(step)} all {len(records)} recorded VMs are DONE")
    per_vm = {
        str(vid): {
            "name": r["name"],
            "was": f"{r['state']}/{r['lcm_state']}",
            "actions": sent.get(str(vid), []),
        }
        for vid, r in sorted(records.items())
    }
    return {"done": len(records), "phase_reached": phase, "actions": sent, "vms": per_vm}


def _current(client: OneClient, records: Mapping[int, Any]) -> dict[int, tuple[VmState, LcmState]]:
    """State of each recorded VM that is not DONE yet."""
    return {
        vm.id: (vm.state, vm.lcm_state)
        for vm in client.vm_pool()
        if vm.id in records and vm.state is not VmState.DONE
    }


def _send(
    client: OneClient,
    step: StepLike,
    ctx: ContextLike,
    vid: int,
    name: str,
    move: str,
    sent: dict[str, list[str]],
) -> int:
    """Send one move; 1 if oned took it, 0 if the VM's state changed since we looked."""
    try:
        vm_action(client, move, vid)
    except OneStateError:
        return 0  # decided again in the next round
    sent.setdefault(str(vid), []).append(move)
    ctx.progress(f"{_tag(step)} VM {vid} ({name}): {move}")
    return 1


# ---------------------------------------------------------------------- recreate-vms
def recreate_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Bring each recorded VM back to life once: a VM whose current incarnation (the original,
    or the one ``recreated.json`` names) is gone is allocated again, given back its owner and
    rights, deployed on its recorded host and waited for until it runs. One still alive (a
    rollback after a shut-down that stopped half way) is left alone."""
    records = load_records(ctx)
    path = ctx.run_dir / RECREATED_FILE
    mapping: dict[str, dict[str, Any]] = read_json(path, {})
    alive = {vm.id for vm in client.vm_pool()}
    gone = [r for r in records if incarnation(mapping, r) not in alive]
    if ctx.dry_run:
        return {
            "dry_run": True,
            "would_recreate": [r["id"] for r in gone],
            "alive": len(records) - len(gone),
        }
    hosts = {host.name: host.id for host in client.host_pool()}
    me = _my_uid(client)
    for record in gone:
        key = str(record["id"])
        _check_addresses_free(client, record, mapping)
        new_id, fresh = _allocate(client, record, mapping, me)
        if fresh:  # at once: the scheduler would place a PENDING VM anywhere
            _place(client, record, new_id, hosts)
        mapping[key] = {"new_id": new_id, "status": "allocated"}
        write_json(path, mapping)
        ctx.progress(f"{_tag(step)} VM {key} ({record['name']}) allocated again as {new_id}")
        vm = _own(client, record, new_id)
        if vm.state is VmState.PENDING:
            _place(client, record, vm.id, hosts)
        mapping[key]["status"] = vmrecord.end_state(record)
        write_json(path, mapping)
    _wait_running(client, step, ctx, records, mapping, hosts)
    return {
        "recreated": {k: v["new_id"] for k, v in sorted(mapping.items(), key=_by_id)},
        "recreated_now": len(gone),
        "count": len(records),
    }


def _check_addresses_free(
    client: OneClient, record: Mapping[str, Any], mapping: Mapping[str, Any]
) -> None:
    """Refuse to re-create ``record`` while another VM holds one of its addresses.

    oned 3.2 refuses such a request with a message that names no address, and frees the
    holder's lease as it does: asking anyway would end with two VMs on one IP."""
    wanted = {
        (str(nic["network_id"]), nic["ip"])
        for nic in record.get("nics", [])
        if nic.get("ip") and nic.get("network_id") is not None
    }
    if not wanted:
        return
    mine = incarnation(mapping, record)
    for vm in client.vm_pool():
        if vm.id == mine or vm.is_done:
            continue
        held = {(n.get("NETWORK_ID", ""), n.get("IP", "")) for n in vm.nics} & wanted
        if vm.name == record["name"] and vm.id > mine:
            continue  # this record's own re-creation from before a crash
        if held:
            addresses = ", ".join(sorted(ip for _, ip in held))
            raise UpgraderError(
                f"cannot re-create VM {record['id']} ({record['name']}): its address "
                f"{addresses} is now held by VM {vm.id} ({vm.name})",
                hint=f"free the address (move VM {vm.id} to another lease or end it), or "
                f"accept a new address for {record['name']} by removing IP from its record "
                "in the run's vms.json, then resume",
            )


def incarnation(mapping: Mapping[str, Any], record: Mapping[str, Any]) -> int:
    """The id the recorded VM lives under now: its re-created one, or its own."""
    return int(mapping.get(str(record["id"]), {}).get("new_id", record["id"]))


def _by_id(item: tuple[str, Any]) -> int:
    return int(item[0])


def _my_uid(client: OneClient) -> int | None:
    found = _USER_ID.search(str(client.call("one.user.info", -1)))
    return int(found.group(1)) if found else None


def _allocate(
    client: OneClient, record: Mapping[str, Any], mapping: Mapping[str, Any], me: int | None
) -> tuple[int, bool]:
    """The VM re-created for ``record`` and whether it is new: one allocated before a crash
    (same name, owned by its owner or by us, newer than every recorded VM), or a new one."""
    taken = {v["new_id"] for v in mapping.values()}
    owners = {record["uid"], me}
    newest = incarnation(mapping, record)
    for vm in client.vm_pool():
        if vm.name == record["name"] and vm.uid in owners and vm.id > newest and vm.id not in taken:
            return vm.id, False
    try:
        return vm_allocate(client, vmrecord.reallocation_template(record)), True
    except UpgraderError as exc:
        raise UpgraderError(
            f"cannot re-create VM {record['id']} ({record['name']}): {exc}",
            hint="fix the cause (an image not READY, a network without leases), then resume",
        ) from exc


def _own(client: OneClient, record: Mapping[str, Any], new_id: int) -> Vm:
    """Give the VM back its owner, group and rights; the VM as it is now."""
    vm = client.vm(new_id)
    if (vm.uid, vm.gid) != (record["uid"], record["gid"]):
        vm_chown(client, new_id, record["uid"], record["gid"])
    wanted = record.get("permissions")
    if wanted and vm.permissions is not None and vm.permissions.octal != wanted:
        vm_chmod(client, new_id, Permissions(*(bool(b) for b in _bits(wanted))))
    return vm


def _place(
    client: OneClient, record: Mapping[str, Any], new_id: int, hosts: Mapping[str, int]
) -> None:
    """A PENDING re-created VM: held, deployed on its recorded host, or left to the scheduler.

    OneStateError means the scheduler deployed it first: a VM to run is moved to its host
    once it runs (``_wait_running``); one to hold is reported as running by the gates.
    """
    end = vmrecord.end_state(record)
    host_id = hosts.get(record["host"] or "", record.get("host_id"))
    with contextlib.suppress(OneStateError):
        if end == "hold":
            vm_action(client, "hold", new_id)
        elif end == "running" and host_id is not None:
            vm_deploy(client, new_id, int(host_id))


def _bits(octal: str) -> list[int]:
    return [(int(digit) >> shift) & 1 for digit in octal for shift in (2, 1, 0)]


def _wait_running(
    client: OneClient,
    step: StepLike,
    ctx: ContextLike,
    records: list[dict[str, Any]],
    mapping: Mapping[str, Any],
    hosts: Mapping[str, int],
) -> None:
    wanted = {incarnation(mapping, r): r for r in records if vmrecord.end_state(r) == "running"}
    deadline = ctx.clock() + seconds(step, "boot_timeout", 600.0)
    moved: set[int] = set()

    def all_running() -> bool:
        now = {vm.id: vm for vm in client.vm_pool() if vm.id in wanted}
        ready = True
        for new_id, record in wanted.items():
            vm = now.get(new_id)
            if vm is not None and vm.state is VmState.FAILED:
                raise UpgraderError(
                    f"re-created VM {new_id} ({record['name']}) FAILED to boot on {vm.host or '-'}",
                    hint="read the VM's log on the front end (/var/log/one/<id>.log), fix the "
                    "host, then resume",
                )
            if vm is None or not vm.is_running:
                ready = False
                continue
            if record["host"] and vm.host != record["host"] and record["host"] in hosts:
                ready = False
                if new_id not in moved:  # the scheduler won the race: move it home
                    migrate_call(client, new_id, hosts[record["host"]], live=True)
                    moved.add(new_id)
        return ready

    if not wait_until(ctx, deadline, _interval(step), all_running):
        now = {vm.id: vm for vm in client.vm_pool() if vm.id in wanted}
        late = [
            f"{i} {wanted[i]['name']} ({_describe(now.get(i))})"
            for i in sorted(wanted)
            if now.get(i) is None or not now[i].is_running or now[i].host != wanted[i]["host"]
        ]
        raise UpgraderError(
            f"{len(late)} re-created VMs are not RUNNING on their hosts: {', '.join(late)}",
            hint="look at the VMs (onevm show) and the hosts, then resume the run",
        )
    ctx.progress(f"{_tag(step)} {len(wanted)} re-created VMs run on their hosts")


def _describe(vm: Vm | None) -> str:
    if vm is None:
        return "gone"
    return f"{vm.state.name}/{vm.lcm_state.name} on {vm.host or '-'}"
