"""move-back-vms: live-migrate the VMs drained off a batch of hosts back to them.

The other half of drain-host (``hosts.py``): it reads what drain-host recorded per host and
hop, and is idempotent (a VM already back, or gone, is counted and left).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgrader.actions.hosts import (
    await_migration,
    batch_of,
    drained,
    lookup,
    pool_by_name,
    save_drained,
    tag,
)
from upgrader.actions.state import ContextLike, StepLike, seconds, step_hop
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.models import Host
from upgrader.opennebula.writes import vm_migrate


def move_back_vms(client: OneClient, step: StepLike, ctx: ContextLike) -> Mapping[str, Any]:
    """Live-migrate the VMs drained off each host of the batch back to it (idempotent)."""
    if step.vars.get("move_back", True) is False:
        return {"skipped": "the runbook says move_back: false"}
    hop = step_hop(step)
    batch = batch_of(step, "move-back-vms")
    pool = pool_by_name(client)
    budget = seconds(step, "migration_timeout", 600.0)
    interval = seconds(step, "poll_interval", 2.0)
    result: dict[str, Any] = {}
    for name in batch:
        host = lookup(pool, name)
        vms = drained(ctx, name, hop)
        result[name] = {}
        for vid, entry in sorted(vms.items(), key=lambda item: int(item[0])):
            outcome = _bring_back(client, step, ctx, host, int(vid), entry, budget, interval)
            result[name][vid] = outcome
            if outcome in ("back", "gone") and not ctx.dry_run:
                vms[vid]["back"] = outcome
                save_drained(ctx, name, hop, vms)
    return {"dry_run": True, "would_move_back": result} if ctx.dry_run else {"moved_back": result}


def _bring_back(
    client: OneClient,
    step: StepLike,
    ctx: ContextLike,
    host: Host,
    vid: int,
    entry: Mapping[str, Any],
    budget: float,
    interval: float,
) -> str:
    vm = next((v for v in client.vm_pool() if v.id == vid), None)
    if vm is None:
        return "gone"
    if vm.host == host.name and vm.is_running:
        return "back"
    if ctx.dry_run:
        return f"would move from {vm.host}"
    back = {"name": entry["name"], "from": vm.host, "to": host.name}
    if vm.is_running:
        ctx.progress(f"{tag(step)} VM {vid} ({vm.name}): {vm.host} -> {host.name} (back)")
        vm_migrate(client, vid, host.id, live=True)
    await_migration(client, ctx, vid, back, budget, interval)
    return "back"
