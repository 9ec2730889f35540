"""Typed write calls on an OpenNebula 3.2/3.4/3.6 oned (VMs and hosts), over ``OneClient.call``.

Arities and action names are the same in 3.2, 3.4 and 3.6 for every call here
(opennebula-3x.md section 1.4); ``one.vm.action`` names new in 3.6 (``resched``,
``unresched``, ``reset``) are refused for older versions before oned is asked.
Failures arrive as the client's ``OneApiError`` subclasses (``OneStateError`` for a VM in the
wrong state, ``OneNotFoundError`` for an unknown id).
"""

from __future__ import annotations

from typing import Final

from upgrader.errors import UsageError
from upgrader.opennebula.client import OneClient
from upgrader.opennebula.enums import OneVersion
from upgrader.opennebula.models import Permissions

VM_ACTIONS: Final = frozenset(
    {
        "shutdown",
        "hold",
        "release",
        "stop",
        "cancel",
        "suspend",
        "resume",
        "restart",
        "finalize",
        "resubmit",
        "reboot",
    }
)
"""``one.vm.action`` names every 3.x version accepts."""
VM_ACTIONS_36: Final = VM_ACTIONS | {"resched", "unresched", "reset"}


def vm_action(client: OneClient, action: str, vm_id: int, version: OneVersion | None = None) -> int:
    """``one.vm.action ACTION VM``; the action must exist in ``version`` (default: in every 3.x)."""
    known = VM_ACTIONS_36 if version is OneVersion.V3_6 else VM_ACTIONS
    if action not in known:
        raise UsageError(
            f"'{action}' is not a one.vm.action of OpenNebula {version or '3.2/3.4'}; "
            f"known: {', '.join(sorted(known))}"
        )
    return int(client.call("one.vm.action", action, vm_id))


def vm_allocate(client: OneClient, template: str) -> int:
    """``one.vm.allocate TEMPLATE`` (same arity in every 3.x): the new VM's id, PENDING."""
    return int(client.call("one.vm.allocate", template))


def vm_deploy(client: OneClient, vm_id: int, host_id: int) -> int:
    """``one.vm.deploy VM HOST``: a PENDING VM onto the host."""
    return int(client.call("one.vm.deploy", vm_id, host_id))


def vm_migrate(client: OneClient, vm_id: int, host_id: int, *, live: bool = True) -> int:
    """``one.vm.migrate VM HOST LIVE``: a RUNNING VM to another host (live by default)."""
    return int(client.call("one.vm.migrate", vm_id, host_id, live))


def vm_chown(client: OneClient, vm_id: int, uid: int, gid: int) -> int:
    """``one.vm.chown VM UID GID`` (-1 keeps the current one)."""
    return int(client.call("one.vm.chown", vm_id, uid, gid))


def vm_chmod(client: OneClient, vm_id: int, permissions: Permissions) -> int:
    """``one.vm.chmod VM`` with the nine use/manage/admin bits of ``permissions``."""
    bits = (
        permissions.owner_u,
        permissions.owner_m,
        permissions.owner_a,
        permissions.group_u,
        permissions.group_m,
        permissions.group_a,
        permissions.other_u,
        permissions.other_m,
        permissions.other_a,
    )
    return int(client.call("one.vm.chmod", vm_id, *(int(b) for b in bits)))


def host_enable(client: OneClient, host_id: int, *, enable: bool) -> int:
    """``one.host.enable HOST BOOL``: true sets INIT (monitored again), false DISABLED."""
    return int(client.call("one.host.enable", host_id, enable))
