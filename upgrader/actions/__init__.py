"""The orchestrator actions runbook steps name with ``action:``; they act through the
OpenNebula API (``upgrader.opennebula``), never through Ansible.

Each action is ``(step, ctx) -> Mapping`` (the executor journals the mapping as the step's
outcome), keeps its state in JSON files under ``ctx.run_dir`` so a resumed step picks up
where it stopped, reports through ``ctx.progress`` and changes nothing when ``ctx.dry_run``.

    record-vms     every VM not DONE -> vms.json (template, disks, leases, owner, host)
    shutdown-vms   every recorded VM to DONE: shutdown, past the budget cancel (3.2 -> 3.4)
    recreate-vms   each recorded VM allocated again, chowned, deployed on its host, RUNNING
    disable-host   one.host.enable false for the batch
    enable-host    one.host.enable true for the batch (undo: every host the run disabled)
    drain-host     disable the batch, live-migrate its VMs to hosts with room outside it
    move-back-vms  live-migrate the VMs drained off the batch back to it
    suspend-vms    suspend every RUNNING VM (their writes stop) for a storage switch-over
    resume-vms     resume the VMs the run suspended
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from upgrader.actions import hosts, move_back, pause, vms
from upgrader.opennebula.client import OneClient

ActionFn = Callable[[Any, Any], Mapping[str, Any]]

_ACTIONS: dict[str, Callable[..., Mapping[str, Any]]] = {
    "record-vms": vms.record_vms,
    "shutdown-vms": vms.shutdown_vms,
    "recreate-vms": vms.recreate_vms,
    "disable-host": hosts.disable_host,
    "enable-host": hosts.enable_host,
    "drain-host": hosts.drain_host,
    "move-back-vms": move_back.move_back_vms,
    "suspend-vms": pause.suspend_vms,
    "resume-vms": pause.resume_vms,
}

NAMES = frozenset(_ACTIONS)
"""The action names this package implements."""


def build_actions(client: OneClient) -> dict[str, ActionFn]:
    """Every action, bound to ``client`` (the executor's ``actions`` mapping)."""
    return {name: partial(fn, client) for name, fn in _ACTIONS.items()}


__all__ = ["NAMES", "build_actions"]
