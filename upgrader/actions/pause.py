"""``suspend-vms`` and ``resume-vms``: stop the VMs' writes for a storage switch-over, then
give them back, on the same hosts, from the new storage.

A 3.x suspend saves the guest's memory into its VM directory on the datastore (the
checkpoint file) and frees nothing else: the delta copy takes the checkpoint along, and the
resume reads it from wherever the datastore is mounted by then.

State file ``suspended.json`` in the run directory: the VMs this run suspended, with their
host and what was sent, written once before the first suspend (so a resumed run, or the
undo, resumes exactly those VMs and never one an operator had suspended before the run).
Step vars: ``suspend_timeout`` (default 5m), ``resume_timeout`` (default 5m),
``poll_interval`` (2s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgrader.actions.state import (
    ContextLike,
    StepLike,
    read_json,
    seconds,
    step_id,
    wait_until,
    write_json,
)
from upgrader.errors import OneStateError, UpgraderError
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import LcmState, VmState
from upgrader.opennebula.writes import vm_action

SUSPENDED_FILE = "suspended.json"


def _tag(step: object) -> str:
    return f"[step/{step_id(step)}]"


def _states(client: OneClient) -> dict[int, tuple[VmState, LcmState, str]]:
    return {
        vm.id: (vm.state, vm.lcm_state, vm.name)
        for vm in client.vm_pool()
        if vm.state is not VmState.DONE
    }


def _named(ids: list[int], now: Mapping[int, tuple[VmState, LcmState, str]]) -> str:
    parts = []
    for vid in sorted(ids):
        state, lcm, name = now.get(vid, (None, None, "?"))
        where = "gone" if state is None else (lcm.name if state is VmState.ACTIVE else state.name)
        parts.append(f"{vid} {name} ({where})")
    return ", ".join(parts)


# ----------------------------------------------------------------------- suspend-vms
def suspend_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Suspend every RUNNING VM and wait until each is SUSPENDED (its memory on disk)."""
    path = ctx.run_dir / SUSPENDED_FILE
    saved = read_json(path)
    now = _states(client)
    if saved is None:
        running = {
            str(vid): {"name": name, "sent": []}
            for vid, (state, lcm, name) in sorted(now.items())
            if state is VmState.ACTIVE and lcm is LcmState.RUNNING
        }
        if ctx.dry_run:
            return {"dry_run": True, "would_suspend": sorted(int(v) for v in running)}
        saved = {"vms": running}
        write_json(path, saved)  # before the first suspend: the undo knows whom to resume
    targets = {int(v): info for v, info in saved["vms"].items()}
    ctx.progress(f"{_tag(step)} suspending {len(targets)} VMs")

    def settled() -> bool:
        now = _states(client)
        for vid, info in targets.items():
            state, lcm, _ = now.get(vid, (None, None, ""))
            if state is VmState.ACTIVE and lcm is LcmState.RUNNING and not info["sent"]:
                try:
                    vm_action(client, "suspend", vid)
                except OneStateError:
                    continue  # its state changed since we looked: next round
                info["sent"].append("suspend")
                write_json(path, {"vms": {str(k): v for k, v in targets.items()}})
                ctx.progress(f"{_tag(step)} VM {vid} ({info['name']}): suspend")
        return all(now.get(v, (None,))[0] is not VmState.ACTIVE for v in targets)

    deadline = ctx.clock() + seconds(step, "suspend_timeout", 300.0)
    if not wait_until(ctx, deadline, seconds(step, "poll_interval", 2.0), settled):
        now = _states(client)
        left = [v for v in targets if now.get(v, (None,))[0] is VmState.ACTIVE]
        raise UpgraderError(
            f"{len(left)} VMs are not SUSPENDED within the budget: {_named(left, now)}",
            hint="nothing was switched; the run's undo resumes the suspended VMs. Find why "
            "the hypervisor cannot save them (onevm show), then resume the run",
        )
    now = _states(client)
    odd = [v for v in targets if now.get(v, (None,))[0] is not VmState.SUSPENDED]
    if odd:
        raise UpgraderError(
            f"{len(odd)} VMs did not end SUSPENDED: {_named(odd, now)}",
            hint="their writes may not have stopped; check them with onevm show before "
            "resuming the run",
        )
    ctx.progress(f"{_tag(step)} all {len(targets)} VMs are SUSPENDED")
    return {"suspended": sorted(targets), "names": {str(v): i["name"] for v, i in targets.items()}}


# ------------------------------------------------------------------------ resume-vms
def resume_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Resume the VMs this run suspended and wait until each RUNs again."""
    saved = read_json(ctx.run_dir / SUSPENDED_FILE)
    if saved is None:
        ctx.progress(f"{_tag(step)} this run suspended no VM: nothing to resume")
        return {"resumed": []}
    targets = {int(v): info["name"] for v, info in saved["vms"].items()}
    if ctx.dry_run:
        return {"dry_run": True, "would_resume": sorted(targets)}
    sent: list[int] = []

    def running() -> bool:
        now = _states(client)
        for vid, name in targets.items():
            if now.get(vid, (None,))[0] is VmState.SUSPENDED and vid not in sent:
                try:
                    vm_action(client, "resume", vid)
                except OneStateError:
                    continue
                sent.append(vid)
                ctx.progress(f"{_tag(step)} VM {vid} ({name}): resume")
        return all(
            now.get(v, (None, None))[:2] == (VmState.ACTIVE, LcmState.RUNNING) for v in targets
        )

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
    return {"resumed": sorted(targets), "sent": sorted(sent)}
