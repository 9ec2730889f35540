"""Pure: what ``record-vms`` keeps of a VM, the template that re-creates it, and the next
move of ``shutdown-vms`` for a VM in a given state.

A record is plain JSON (it is written to ``<run_dir>/vms.json``). Its ``template`` keeps every
attribute oned returned in ``one.vm.info`` in document order, vectors as lists of pairs, so
nothing the owner wrote is lost; ``reallocation_template`` drops only what oned adds at
allocation (disk sources, clone/save flags, datastore, lease MAC and bridge, VMID, an
automatic VNC port) and binds disks to their images by IMAGE_ID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from upgrader.opennebula.enums import LcmState, VmState
from upgrader.opennebula.models import Image, Vm
from upgrader.opennebula.template import Vector

# DISK sub-attributes oned writes when it binds an image (3.2: Image::disk_attribute; 3.4+:
# Datastore::disk_attribute adds DATASTORE*, TM_MAD, CLUSTER_ID).
_IMAGE_DISK_RUNTIME = frozenset(
    {
        "CLONE",
        "DISK_ID",
        "IMAGE",
        "IMAGE_ID",
        "IMAGE_UNAME",
        "READONLY",
        "SAVE",
        "SAVE_AS",
        "SOURCE",
        "TYPE",
        "DATASTORE",
        "DATASTORE_ID",
        "TM_MAD",
        "CLUSTER_ID",
    }
)
_DISK_RUNTIME = frozenset({"DISK_ID", "SAVE_AS", "DATASTORE", "DATASTORE_ID", "TM_MAD"})
# NIC sub-attributes oned writes from the virtual network when it leases an address.
_NIC_RUNTIME = frozenset(
    {
        "BRIDGE",
        "MAC",
        "NETWORK",
        "NETWORK_UNAME",
        "VLAN",
        "VLAN_ID",
        "PHYDEV",
        "CLUSTER_ID",
    }
)
_TOP_RUNTIME = frozenset({"VMID", "NAME"})
VNC_BASE_PORT = 5900  # oned 3.x gives a VM without GRAPHICS/PORT the port 5900 + its id

Pairs = list[list[str]]


def _pairs(vector: Vector) -> Pairs:
    return [[key, value] for key, value in vector.items()]


def _disk(vector: Vector, images: Mapping[int, Image]) -> dict[str, Any]:
    image_id = vector.get("IMAGE_ID")
    iid = int(image_id) if image_id and image_id.isdigit() else None
    image = images.get(iid) if iid is not None else None
    persistent = (
        image.persistent
        if image is not None
        else vector.get("CLONE", "").upper() == "NO" and vector.get("SAVE", "").upper() == "YES"
    )
    return {
        "disk_id": vector.get("DISK_ID"),
        "image_id": iid,
        "image": vector.get("IMAGE"),
        "persistent": bool(iid is not None and persistent),
        "save_as": vector.get("SAVE_AS"),
        "type": vector.get("TYPE"),
        "target": vector.get("TARGET"),
        "source": vector.get("SOURCE"),
    }


def _nic(vector: Vector) -> dict[str, Any]:
    network_id = vector.get("NETWORK_ID")
    return {
        "network_id": int(network_id) if network_id and network_id.isdigit() else None,
        "network": vector.get("NETWORK"),
        "ip": vector.get("IP"),
        "mac": vector.get("MAC"),
    }


def record_of(vm: Vm, images: Mapping[int, Image], template_xml: str = "") -> dict[str, Any]:
    """The JSON record of one VM (``vm`` from ``one.vm.info``), with its raw TEMPLATE XML."""
    perms = vm.permissions
    return {
        "id": vm.id,
        "name": vm.name,
        "uid": vm.uid,
        "uname": vm.uname,
        "gid": vm.gid,
        "gname": vm.gname,
        "permissions": None if perms is None else perms.octal,
        "state": vm.state.name,
        "lcm_state": vm.lcm_state.name,
        "host": vm.host,
        "host_id": vm.host_id,
        "memory_mb": _number(vm.template.text("MEMORY")),
        "cpu": _number(vm.template.text("CPU")),
        "template": [
            [name, value if isinstance(value, str) else _pairs(value)]
            for name, value in vm.template.entries
        ],
        "template_xml": template_xml,
        "disks": [_disk(d, images) for d in vm.disks],
        "nics": [_nic(n) for n in vm.nics],
    }


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _vector_text(name: str, pairs: Sequence[tuple[str, str]]) -> str:
    inner = ",\n  ".join(f"{key} = {_quote(value)}" for key, value in pairs)
    return f"{name} = [\n  {inner} ]"


def _realloc_disk(pairs: Pairs) -> list[tuple[str, str]]:
    attrs = dict((k, v) for k, v in pairs)
    # A disk saved with savedisk holds the VM's data in the new image: use that one.
    image_id = attrs.get("SAVE_AS") or attrs.get("IMAGE_ID")
    if image_id is None:
        return [(k, v) for k, v in pairs if k not in _DISK_RUNTIME]
    kept = [(k, v) for k, v in pairs if k not in _IMAGE_DISK_RUNTIME]
    return [("IMAGE_ID", image_id), *kept]


def _realloc_nic(pairs: Pairs) -> list[tuple[str, str]]:
    if not any(k == "NETWORK_ID" for k, _ in pairs):
        return [(k, v) for k, v in pairs if k not in ("MAC",)]
    return [(k, v) for k, v in pairs if k not in _NIC_RUNTIME]


def _realloc_graphics(pairs: Pairs, old_id: int) -> list[tuple[str, str]]:
    auto = str(VNC_BASE_PORT + old_id)
    return [(k, v) for k, v in pairs if not (k == "PORT" and v == auto)]


def reallocation_template(record: Mapping[str, Any]) -> str:
    """The ``one.vm.allocate`` text that re-creates the recorded VM with its name."""
    lines = [f"NAME = {_quote(str(record['name']))}"]
    for name, value in record["template"]:
        if name in _TOP_RUNTIME:
            continue
        if isinstance(value, str):
            lines.append(f"{name} = {_quote(value)}")
            continue
        if name == "DISK":
            pairs = _realloc_disk(value)
        elif name == "NIC":
            pairs = _realloc_nic(value)
        elif name == "GRAPHICS":
            pairs = _realloc_graphics(value, int(record["id"]))
        else:
            pairs = [(k, v) for k, v in value]
        lines.append(_vector_text(name, pairs))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ shutdown-vms
GRACEFUL, HARD = "graceful", "hard"
SHUTTING_DOWN = "(seen shutting down)"  # an observation kept with the moves sent
_SETTLE = frozenset({LcmState.RUNNING, LcmState.UNKNOWN, LcmState.FAILURE})


def next_move(
    state: VmState | None, lcm: LcmState | None, phase: str, sent: Sequence[str]
) -> str | None:
    """The ``one.vm.action`` to send a VM on its way to DONE now, or None to wait.

    ``state`` None means the VM is DONE (gone from the pool). In the graceful phase a
    RUNNING VM gets ``shutdown`` (ACPI; the guest closes its disks), and ``cancel`` at once if
    it is RUNNING again after it was seen in SHUTDOWN (the guest ignored it); a SUSPENDED or STOPPED
    one is resumed first, so that it too is shut down by its guest. In the hard phase, a
    VM still RUNNING gets ``cancel``: the hypervisor destroys it without the guest, and the
    epilog still saves persistent and save-as disks back (``finalize`` would not). Only
    what cannot reach DONE any other way is finalized: a VM never deployed (PENDING,
    HOLD), a FAILED one, and in the hard phase one the hypervisor lost (UNKNOWN, FAILURE)
    or that stayed SUSPENDED/STOPPED. Transient LCM states are waited for.
    """
    if state is None or state is VmState.DONE:
        return None
    if state is VmState.PENDING and "resume" in sent and phase == GRACEFUL:
        return None  # a STOPPED VM resumed: the scheduler deploys it, then it is shut down
    if state in (VmState.PENDING, VmState.HOLD, VmState.FAILED):
        return None if "finalize" in sent else "finalize"
    if state in (VmState.SUSPENDED, VmState.STOPPED):
        if phase == GRACEFUL:
            return None if "resume" in sent else "resume"
        return None if "finalize" in sent else "finalize"
    if state is not VmState.ACTIVE or lcm not in _SETTLE:
        return None  # INIT, or moving between states: wait
    if lcm is LcmState.RUNNING:
        # RUNNING again after SHUTDOWN: the guest ignored ACPI and the driver gave up
        refused = "shutdown" in sent and SHUTTING_DOWN in sent
        move = "shutdown" if phase == GRACEFUL and not refused else "cancel"
        return None if move in sent else move
    if phase == HARD:
        return None if "finalize" in sent else "finalize"
    return None


def end_state(record: Mapping[str, Any]) -> str:
    """How ``recreate-vms`` leaves the VM: ``running`` on its host, ``pending`` or ``hold``."""
    state = record.get("state")
    if state == "PENDING":
        return "pending"
    if state in ("HOLD", "FAILED", "INIT"):
        return "hold"
    return "running"
