"""Gather the live facts the planner needs, read-only, through the OpenNebula client."""

from __future__ import annotations

import hashlib
from pathlib import Path

from upgrader.opennebula import OneClient, Vm
from upgrader.plan.model import CloudFacts, DiskFact, HostFact, VmFact


def _disks(vm: Vm) -> tuple[DiskFact, ...]:
    out = []
    for i, disk in enumerate(vm.disks):
        persistent = (
            disk.get("SAVE", "NO").upper() == "YES"
            or "SAVE_AS" in disk
            or disk.get("CLONE", "YES").upper() == "NO"
        )
        disk_id = disk.get("DISK_ID", str(i))
        out.append(
            DiskFact(int(disk_id) if disk_id.isdigit() else i, disk.get("IMAGE"), persistent)
        )
    return tuple(out)


def gather_facts(client: OneClient, environment: str, inventory: Path | None) -> CloudFacts:
    """Version, hosts and VMs of one cloud, plus the digest of its inventory."""
    version = str(client.detect_version())
    hosts = tuple(
        HostFact(h.id, h.name, h.state.name, h.share.running_vms) for h in client.host_pool()
    )
    vms = tuple(
        VmFact(vm.id, vm.name, vm.uname, vm.state.name, vm.lcm_state.name, vm.host, _disks(vm))
        for vm in client.vm_pool()
    )
    digest = hashlib.sha256(inventory.read_bytes()).hexdigest() if inventory else ""
    return CloudFacts(environment, version, hosts, vms, digest)
