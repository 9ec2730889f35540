"""``suspend-vms`` and ``resume-vms``: stop the VMs' writes for a storage switch-over, then
give them back, on the same hosts, from the new storage.

A 3.x suspend saves the guest's memory into its VM directory on the datastore (the
checkpoint file) and frees nothing else: the delta copy takes the checkpoint along, and the
resume reads it from wherever the datastore is mounted by then. Where the hypervisor cannot
suspend, the runbook says ``stop_with: stop``: oned then saves the VM, moves its directory
back to the front end and frees the host (STOPPED); resume makes it PENDING again and this
action deploys it on the host it left, not where the scheduler would put it.

State file ``suspended.json`` in the run directory: the VMs this run suspended, with their
host and what was sent, written once before the first suspend (so a resumed run, or the
undo, resumes exactly those VMs and never one an operator had suspended before the run).
Step vars: ``stop_with`` (suspend or stop; default suspend), ``suspend_timeout`` (default
5m), ``resume_timeout`` (default 5m), ``poll_interval`` (2s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgrader.actions.state import (
    ContextLike,
    StepLike,
    read_json,
    seconds,
    wait_until,
    write_json,
)
from upgrader.errors import OneStateError, UpgraderError
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import HostState, LcmState, VmState
from upgrader.opennebula.writes import vm_action, vm_deploy

SUSPENDED_FILE = "suspended.json"
_PAUSED = {"suspend": VmState.SUSPENDED, "stop": VmState.STOPPED}


def _tag(step: object) -> str:
    return f"[step/{step.id}]"


def _states(client: OneClient) -> dict[int, tuple[VmState, LcmState, str]]:
    return {
        vm.id: (vm.state, vm.lcm_state, vm.name)
        for vm in client.vm_pool()
        if vm.state is not VmState.DONE
    }


def _how(step: StepLike) -> str:
    how = str(step.vars.get("stop_with", "suspend"))
    if how not in _PAUSED:
        raise UpgraderError(
            f"step var stop_with must be suspend or stop, not {how!r}",
            hint="fix the runbook, then resume the run",
        )
    return how


def _named(ids: list[int], now: Mapping[int, tuple[VmState, LcmState, str]]) -> str:
    parts = []
    for vid in sorted(ids):
        state, lcm, name = now.get(vid, (None, None, "?"))
        where = "gone" if state is None else (lcm.name if state is VmState.ACTIVE else state.name)
        parts.append(f"{vid} {name} ({where})")
    return ", ".join(parts)


# ----------------------------------------------------------------------- suspend-vms
def suspend_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Suspend (or stop) every RUNNING VM and wait until each is SUSPENDED (STOPPED)."""
    how = _how(step)
    path = ctx.run_dir / SUSPENDED_FILE
    saved = read_json(path)
    now = _states(client)
    if saved is None:
        hosts = {vm.id: vm.host for vm in client.vm_pool()}
        running = {
            str(vid): {"name": name, "sent": [], "host": hosts.get(vid), "how": how}
            for vid, (state, lcm, name) in sorted(now.items())
            if state is VmState.ACTIVE and lcm is LcmState.RUNNING
        }
        if ctx.dry_run:
            return {"dry_run": True, "would_suspend": sorted(int(v) for v in running)}
        saved = {"vms": running}
        write_json(path, saved)  # before the first suspend: the undo knows whom to resume
    targets = {int(v): info for v, info in saved["vms"].items()}
    # A VM that RUNs again at the start of this attempt was resumed since (a failed run's
    # undo): this attempt suspends it again. Within one attempt a move is sent only once.
    again = [
        v
        for v, info in targets.items()
        if info["sent"] and now.get(v, (None, None))[:2] == (VmState.ACTIVE, LcmState.RUNNING)
    ]
    for vid in again:
        targets[vid]["sent"] = []
    if again:
        write_json(path, {"vms": {str(k): v for k, v in targets.items()}})
    word = {"suspend": "suspending", "stop": "stopping"}[how]
    ctx.progress(f"{_tag(step)} {word} {len(targets)} VMs")

    def settled() -> bool:
        now = _states(client)
        for vid, info in targets.items():
            state, lcm, _ = now.get(vid, (None, None, ""))
            if state is VmState.ACTIVE and lcm is LcmState.RUNNING and not info["sent"]:
                move = info.get("how", how)
                try:
                    vm_action(client, move, vid)
                except OneStateError:
                    continue  # its state changed since we looked: next round
                info["sent"].append(move)
                write_json(path, {"vms": {str(k): v for k, v in targets.items()}})
                ctx.progress(f"{_tag(step)} VM {vid} ({info['name']}): {move}")
        return all(now.get(v, (None,))[0] is not VmState.ACTIVE for v in targets)

    deadline = ctx.clock() + seconds(step, "suspend_timeout", 300.0)
    if not wait_until(ctx, deadline, seconds(step, "poll_interval", 2.0), settled):
        now = _states(client)
        left = [v for v in targets if now.get(v, (None,))[0] is VmState.ACTIVE]
    else:
        left = []
    if left:
        raise UpgraderError(
            f"{len(left)} VMs are not {_PAUSED[how].name} within the budget: {_named(left, now)}",
            hint="nothing was switched; the run's undo resumes the suspended VMs. Find why "
            "the hypervisor cannot save them (onevm show), then resume the run",
        )
    now = _states(client)
    odd = [v for v in targets if now.get(v, (None,))[0] is not _PAUSED[targets[v].get("how", how)]]
    if odd:
        raise UpgraderError(
            f"{len(odd)} VMs did not end {_PAUSED[how].name}: {_named(odd, now)}",
            hint="their writes may not have stopped; check them with onevm show before "
            "resuming the run",
        )
    ctx.progress(f"{_tag(step)} all {len(targets)} VMs are {_PAUSED[how].name}")
    return {"suspended": sorted(targets), "names": {str(v): i["name"] for v, i in targets.items()}}


# ------------------------------------------------------------------------ resume-vms
_LOST = (HostState.ERROR, HostState.MONITORING_ERROR)


def resume_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Resume the VMs this run suspended and wait until each RUNs again."""
    saved = read_json(ctx.run_dir / SUSPENDED_FILE)
    if saved is None:
        ctx.progress(f"{_tag(step)} this run suspended no VM: nothing to resume")
        return {"resumed": []}
    infos = {int(v): info for v, info in saved["vms"].items()}
    targets = {vid: info["name"] for vid, info in infos.items()}
    if ctx.dry_run:
        return {"dry_run": True, "would_resume": sorted(targets)}
    sent: list[int] = []
    deployed: list[int] = []
    host_ids = {h.name: h.id for h in client.host_pool()}

    def running() -> bool:
        now = _states(client)
        # Never resume onto a host that cannot be reached: the VM would FAIL there. Left
        # SUSPENDED, it resumes once the host is back. oned notices a lost host only at its
        # next monitoring (minutes in 3.x); the run knows at once when its play could not
        # reach the host (the switch that failed because of it, just before this undo).
        oned_lost = {h.name for h in client.host_pool() if h.state in _LOST}
        lost = oned_lost | ctx.unreachable
        for vid, name in targets.items():
            state = now.get(vid, (None,))[0]
            if infos[vid].get("host") in lost:
                continue
            if state in (VmState.SUSPENDED, VmState.STOPPED) and vid not in sent:
                try:
                    vm_action(client, "resume", vid)
                except OneStateError:
                    continue
                sent.append(vid)
                ctx.progress(f"{_tag(step)} VM {vid} ({name}): resume")
            elif state is VmState.PENDING and vid in sent and vid not in deployed:
                host = infos[vid].get("host")  # a stopped VM goes back where it ran
                if host in host_ids:
                    try:
                        vm_deploy(client, vid, host_ids[host])
                    except OneStateError:
                        continue
                    deployed.append(vid)
                    ctx.progress(f"{_tag(step)} VM {vid} ({name}): deploy on {host}")
        waiting = [
            v for v in targets if now.get(v, (None, None))[:2] != (VmState.ACTIVE, LcmState.RUNNING)
        ]
        # A VM whose host cannot be reached will not run again however long we wait: say so
        # now (the host lost mid-window), not after the whole budget.
        if waiting and all(infos[v].get("host") in lost for v in waiting):
            gone = {str(infos[v].get("host")) for v in waiting}
            hosts = ", ".join(sorted(gone))
            who = "oned cannot" if gone <= oned_lost else "this run could not"
            raise UpgraderError(
                f"{len(waiting)} VMs cannot run again: {who} reach their host ({hosts}): "
                f"{_named(waiting, now)}",
                hint=f"bring {hosts} back until oned monitors it, then resume the run; the "
                "other VMs run",
            )
        return not waiting

    deadline = ctx.clock() + seconds(step, "resume_timeout", 300.0)
    if not wait_until(ctx, deadline, seconds(step, "poll_interval", 2.0), running):
        now = _states(client)
        left = [
            v for v in targets if now.get(v, (None, None))[:2] != (VmState.ACTIVE, LcmState.RUNNING)
        ]
        raise UpgraderError(
            f"{len(left)} VMs are not RUNNING again within the budget: {_named(left, now)}",
            hint="check that the datastore is mounted on their hosts and that each VM's "
            "checkpoint is there (onevm show), then resume the run",
        )
    ctx.progress(f"{_tag(step)} all {len(targets)} VMs RUN again")
    return {"resumed": sorted(targets), "sent": sorted(sent), "deployed": sorted(deployed)}
