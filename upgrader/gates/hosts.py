"""Host-side observations for the gates: one read-only Ansible play over the hypervisors.

``playbooks/gather-host-facts.yml`` runs ``virsh list``, asks libvirtd's init script and
reads Puppet's disable lock on every host, and hands the results back as one JSON file a
host. A host that did not answer has no file: its observation says so, and the verdicts
treat it as unreadable (inconclusive), never as healthy.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from upgrader.ansible_adapter import PlaybookCall, run_playbook
from upgrader.errors import UpgraderError
from upgrader.gates.verdicts import (
    DomainMap,
    HypervisorDomains,
    LibvirtdObservation,
    LibvirtdStatus,
    PuppetAgent,
    PuppetObservation,
    VmSeen,
)
from upgrader.opennebula import OneClient

PLAYBOOK = "gather-host-facts.yml"


class HostObserver:
    """Runs the gather play and turns its files into observations."""

    def __init__(
        self, inventory: Path | str, playbooks_dir: Path, hosts: str = "hypervisors"
    ) -> None:
        self.inventory = inventory
        self.playbooks_dir = playbooks_dir
        self.hosts = hosts

    def gather(self) -> dict[str, Mapping[str, Any] | None]:
        """host -> what it reported (None: it did not answer)."""
        with tempfile.TemporaryDirectory(prefix="upgrader-gates-") as tmp:
            out = Path(tmp) / "out"
            out.mkdir(mode=0o700)
            outcome = run_playbook(
                PlaybookCall(
                    step_id="gates",
                    playbook=self.playbooks_dir / PLAYBOOK,
                    project_dir=self.playbooks_dir,
                    inventory=self.inventory,
                    private_data_dir=Path(tmp) / "pdd",
                    extra_vars={"gate_out_dir": str(out), "gate_hosts": self.hosts},
                )
            )
            if outcome.rc not in (0, 2, 4):
                raise UpgraderError(f"the gate play could not run: {' '.join(outcome.stdout_tail)}")
            seen: dict[str, Mapping[str, Any] | None] = {
                h: None for h in outcome.stats if h != "localhost"
            }
            for path in out.glob("*.json"):
                seen[path.stem] = json.loads(path.read_text())
            return seen


def libvirtd_observation(seen: Mapping[str, Mapping[str, Any] | None]) -> LibvirtdObservation:
    """libvirtd per host, from the gather play."""
    hosts = []
    for host, data in sorted(seen.items()):
        if data is None:
            hosts.append(LibvirtdStatus(host, None, error="host did not answer"))
        else:
            hosts.append(LibvirtdStatus(host, data["libvirtd_rc"] == 0, data["libvirtd"]))
    return LibvirtdObservation(tuple(hosts))


def domain_map(client: OneClient, seen: Mapping[str, Mapping[str, Any] | None]) -> DomainMap:
    """oned's VM placement against what virsh lists on every hypervisor."""
    vms = tuple(VmSeen.from_vm(vm) for vm in client.vm_pool())
    hypervisors = []
    for host, data in sorted(seen.items()):
        if data is None:
            hypervisors.append(HypervisorDomains(host, None, "host did not answer"))
        elif data["virsh_rc"] != 0:
            hypervisors.append(HypervisorDomains(host, None, data["virsh_error"].strip()))
        else:
            hypervisors.append(HypervisorDomains(host, tuple(d for d in data["virsh"] if d)))
    return DomainMap(vms, tuple(hypervisors))


def puppet_observation(seen: Mapping[str, Mapping[str, Any] | None]) -> PuppetObservation:
    """The Puppet agent's hold on every host."""
    agents = []
    for host, data in sorted(seen.items()):
        if data is None:
            agents.append(PuppetAgent(host, None, error="host did not answer"))
            continue
        lock = data.get("puppet_lock") or ""
        if not lock:
            agents.append(PuppetAgent(host, False))
            continue
        reason = json.loads(base64.b64decode(lock) or b"{}").get("disabled_message", "")
        agents.append(PuppetAgent(host, True, reason))
    return PuppetObservation(tuple(agents))
