"""The targets-supported gate's look at the hosts: ``playbooks/check-targets.yml``, raw only.

It runs apart from the gather play (``gather.HostObserver.gather``) and, in a run's preflight,
before it: a host whose Python this controller's Ansible cannot use (ansible-core 2.16 manages
Python 2.7 and 3.6+) fails every module task of the gather play with an error that names no
cause, while the raw check needs only a login and ``/bin/sh`` there. It visits the front ends,
the hypervisors and the NFS servers; each host's answer becomes a ``TargetHost``
(``verdicts.parse_answer``), and a host that could not be reached says so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from upgrader.ansible_adapter.outcome import PlaybookCall
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.errors import UpgraderError
from upgrader.gates.verdicts import TargetHost, TargetsObservation, parse_answer
from upgrader.gates.verdicts.interpreters import DISTRO_MAP
from upgrader.gates.verdicts.targets import FRONTEND, HYPERVISOR, NFS_SERVER, PUPPET

PLAYBOOK = "check-targets.yml"
# The play as a whole: one short raw command a host (ssh gives up on a dead host in ~15 s).
TIMEOUT = 300.0
_GROUPS = (FRONTEND, HYPERVISOR, NFS_SERVER)  # the groups the play visits


@runtime_checkable
class TargetReader(Protocol):
    """Asks every host what it runs, without Python there (``gather.HostObserver`` does)."""

    def targets(self) -> TargetsObservation:
        """What every host of the environment answered the check play."""


def check_targets(
    inventory: Path | str,
    playbooks_dir: Path,
    *,
    frontends: str = FRONTEND,
    hypervisors: str = HYPERVISOR,
    nfs_servers: str = NFS_SERVER,
    vault_password_file: Path | None = None,
) -> TargetsObservation:
    """Run the check play over the three groups (host patterns) and read what it found."""
    with tempfile.TemporaryDirectory(prefix="upgrader-targets-") as tmp:
        outcome = run_playbook(
            PlaybookCall(
                step_id="gates",
                playbook=playbooks_dir / PLAYBOOK,
                project_dir=playbooks_dir,
                inventory=inventory,
                private_data_dir=Path(tmp) / "pdd",
                extra_vars={
                    "target_frontends": frontends,
                    "target_hypervisors": hypervisors,
                    "target_nfs_servers": nfs_servers,
                },
                timeout=TIMEOUT,
                vault_password_file=vault_password_file,
            )
        )
    if outcome.rc not in (0, 2, 4):
        raise UpgraderError(
            f"the target check could not run: {' '.join(outcome.stdout_tail)}",
            hint="run `ansible-inventory -i <inventory> --graph` and check ssh to the hosts",
        )
    return observation(outcome.data, " ".join(outcome.stdout_tail))


def observation(data: Mapping[str, Any], tail: str = "") -> TargetsObservation:
    """The play's custom stats as the verdict's observation: every member of the groups, in
    name order, with the roles it plays (the groups it is in, and ``puppet`` where the
    playbooks hold Puppet)."""
    members = data.get("target_members")
    if not isinstance(members, Mapping):
        raise UpgraderError(f"the target check did not say which hosts it visits: {tail}")
    roles: dict[str, list[str]] = {}
    for role in (*_GROUPS, PUPPET):
        for host in members.get(role) or []:
            roles.setdefault(str(host), []).append(role)
    answers = data.get("target_answers")
    answers = answers if isinstance(answers, Mapping) else {}
    distro_map = data.get("target_distro_map")
    hosts = tuple(
        _host(host, tuple(played), answers.get(host))
        for host, played in sorted(roles.items())
        if set(played) & set(_GROUPS)  # puppet_hosts may name hosts the play does not visit
    )
    return TargetsObservation(
        hosts, distro_map if isinstance(distro_map, Mapping) and distro_map else DISTRO_MAP
    )


def _host(host: str, roles: tuple[str, ...], answer: object) -> TargetHost:
    if not isinstance(answer, Mapping):
        return TargetHost(host, roles, unreachable="no answer")
    if answer.get("unreachable"):
        return TargetHost(host, roles, unreachable=str(answer.get("msg") or "unreachable"))
    return parse_answer(
        host,
        str(answer.get("stdout") or ""),
        roles=roles,
        setting=str(answer.get("setting") or "auto"),
        puppet_command=str(answer.get("puppet_command") or "puppet"),
        libvirtd_service=str(answer.get("libvirtd_service") or ""),
        libvirtd_status_command=str(answer.get("libvirtd_status_command") or ""),
        rc=answer.get("rc") if isinstance(answer.get("rc"), int) else None,
    )
