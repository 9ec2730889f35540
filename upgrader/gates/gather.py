"""Host-side observations for the gates: one read-only Ansible play over the hosts.

``playbooks/gather-host-facts.yml`` visits the hypervisors (``virsh list``, libvirtd's init
script, Puppet's disable lock, the datastore mount), the NFS servers (the export's file
system) and the front ends (the agents the Pacemaker CIB references, ``oned -v``,
``crm_mon``, ``crm_verify``, ``onedb version``), and hands back one JSON file a host. A host
that did not answer has no file: its observation says so, and the verdicts treat it as
unreadable (inconclusive), never as healthy.

One gather serves every gate of a round (the gates evaluated together before or after a
step, or by ``upgrader gates``), and visits only the groups those gates read; a gate that
waits and looks again gathers afresh what it reads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from upgrader.ansible_adapter.outcome import PlaybookCall
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.errors import UpgraderError
from upgrader.gates.model import (
    AGENTS,
    ALL_PARTS,
    FRONTENDS,
    GROUPS,
    HYPERVISORS,
    NFS_SERVERS,
    Gathered,
    HostData,
)
from upgrader.gates.targets import TargetsObservation, check_targets

# The gather result and its parts live in ``model`` (pure); named here too for the callers.
__all__ = [
    "AGENTS",
    "ALL_PARTS",
    "FRONTENDS",
    "GROUPS",
    "HYPERVISORS",
    "NFS_SERVERS",
    "PLAYBOOK",
    "Gathered",
    "HostData",
    "HostObserver",
]

PLAYBOOK = "gather-host-facts.yml"
# The gather play as a whole (ssh itself gives up on a dead host within about 15 s).
GATHER_TIMEOUT = 300.0
_NOTHING = "!all"  # a host pattern that matches no host: the play is skipped


class HostObserver:
    """Runs the gather play and keeps its result for the rest of the round."""

    def __init__(
        self,
        inventory: Path | str,
        playbooks_dir: Path,
        hosts: str = "hypervisors",
        *,
        frontends: str = "frontends",
        nfs_servers: str = "nfs_servers",
        vault_password_file: Path | None = None,
    ) -> None:
        self.inventory = inventory
        self.playbooks_dir = playbooks_dir
        self.hosts = hosts
        self.frontends = frontends
        self.nfs_servers = nfs_servers
        self.vault_password_file = vault_password_file
        self._round = Gathered(hypervisors={})
        self._have: frozenset[str] = frozenset()
        self._planned: frozenset[str] = frozenset()

    def new_round(self, parts: frozenset[str] = frozenset()) -> None:
        """Forget the last gather: the next gate of the round looks at the hosts again, and
        its gather covers ``parts`` too (what the round's other gates will read)."""
        self._have = frozenset()
        self._planned = parts

    def gather(self, parts: frozenset[str] = ALL_PARTS, *, fresh: bool = False) -> Gathered:
        """This round's gather of ``parts`` (run now for what the round has not gathered yet,
        or for all of ``parts`` if ``fresh``)."""
        if fresh or parts - self._have:
            wanted = parts if fresh else (parts | self._planned) - self._have
            if AGENTS in wanted:
                wanted |= {FRONTENDS}  # the agents are checked by the front ends' play
            self._round = self._round.updated(self._run(wanted), wanted)
            if FRONTENDS in wanted and AGENTS not in wanted:
                self._have -= {AGENTS}  # the front ends' answers now come without the agents
            self._have |= wanted
        return self._round

    def targets(self) -> TargetsObservation:
        """What every host runs, asked apart from the gather and with raw commands only
        (``targets.PLAYBOOK``): the targets-supported gate's look (a ``TargetReader``)."""
        return check_targets(
            self.inventory,
            self.playbooks_dir,
            frontends=self.frontends,
            hypervisors=self.hosts,
            nfs_servers=self.nfs_servers,
            vault_password_file=self.vault_password_file,
        )

    def _run(self, parts: frozenset[str]) -> Gathered:
        with tempfile.TemporaryDirectory(prefix="upgrader-gates-") as tmp:
            outcome = run_playbook(
                PlaybookCall(
                    step_id="gates",
                    playbook=self.playbooks_dir / PLAYBOOK,
                    project_dir=self.playbooks_dir,
                    inventory=self.inventory,
                    private_data_dir=Path(tmp) / "pdd",
                    extra_vars={
                        "gate_hosts": self.hosts if HYPERVISORS in parts else _NOTHING,
                        "gate_frontends": self.frontends if FRONTENDS in parts else _NOTHING,
                        "gate_agents_check": AGENTS in parts,
                        "gate_nfs_hosts": self.nfs_servers if NFS_SERVERS in parts else _NOTHING,
                    },
                    timeout=GATHER_TIMEOUT,
                    vault_password_file=self.vault_password_file,
                )
            )
        if outcome.rc not in (0, 2, 4):
            raise UpgraderError(
                f"the gate play could not run: {' '.join(outcome.stdout_tail)}",
                hint="run `ansible-inventory -i <inventory> --graph` and check ssh to the hosts",
            )
        members = outcome.data.get("gate_members")
        if not isinstance(members, Mapping):
            raise UpgraderError(
                f"the gate play did not say which hosts it visits: {' '.join(outcome.stdout_tail)}"
            )
        return Gathered(
            **{
                group: _read(outcome.data.get(f"gate_{group}"), members.get(group) or [])
                for group in GROUPS
            }
        )


def _read(answers: Any, members: list[str]) -> dict[str, HostData]:
    """host -> what it answered; members that did not answer map to None."""
    seen: dict[str, HostData] = dict.fromkeys(members)
    if isinstance(answers, Mapping):
        seen.update(
            {str(host): data for host, data in answers.items() if isinstance(data, Mapping)}
        )
    return dict(sorted(seen.items()))
