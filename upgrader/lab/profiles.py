"""The lab's host profiles: which era of host ``lab up --profile`` builds.

| | ``2012`` (the default) | ``modern`` |
|---|---|---|
| release | Debian 7.11 "wheezy" (``/etc/os-release``) | the machine's (Debian 12) |
| Python Ansible finds | 2.7.18 only (``/usr/bin/python``), no python-apt | ``/usr/bin/python3`` |
| findmnt, crm_mon | util-linux 2.20, Pacemaker 1.1 (no ``--json``, ``--output-as``) | today's |
| libvirtd's init script | ``/etc/init.d/libvirt-bin`` | ``/etc/init.d/libvirtd`` |
| Puppet | 2.7.23: empty ``/var/lib/puppet/state/puppetdlock`` | Debian's puppet-agent |
| inventory | nothing host-specific: Ansible discovers the interpreter | the interpreter |

A 2012 host is shaped in its own overlay by ``files/profile-2012.sh`` when it starts (its
wrappers in ``files/2012/`` each say what they imitate), then gets Python 2.7 from Debian's
bullseye packages (upgrader.lab.python2) through the lab's apt repository. The lab's own
programs inside a host (the oned simulator, onedb, the init script's fault hand-over) run from
``python``, an interpreter path Ansible never looks at. The nfs host has the same profile as
the cloud hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrader.lab.hosts import LabError
from upgrader.lab.python2 import HOST_PACKAGES


@dataclass(frozen=True)
class HostProfile:
    """What every host of a lab runs."""

    name: str
    # The interpreter of the lab's own programs inside a host (never discovered by Ansible).
    python: str
    # libvirtd's init script in /etc/init.d (the opennebula-node package installs it).
    libvirtd_service: str
    # Where ``puppet agent --disable`` leaves its lock, whether it keeps a message there, and
    # where a Puppet run under way leaves its pid (Puppet 2.7: the same puppetdlock).
    puppet_lock: str
    puppet_message: bool
    puppet_run_lock: str
    # Debian packages every host installs from the lab's repository at ``lab up``, and what
    # of their dependencies the hosts take from the machine (scripts/debian-packages.txt).
    host_packages: tuple[str, ...]
    machine_packages: tuple[str, ...]
    # The interpreter the inventory names; None lets Ansible discover it.
    ansible_python: str | None

    def inventory_vars(self) -> dict[str, Any]:
        """What the lab's inventory says about its hosts because of their profile."""
        if self.ansible_python is None:
            return {}
        return {"ansible_python_interpreter": self.ansible_python}


PROFILES = {
    "2012": HostProfile(
        name="2012",
        python="/usr/lib/upgrader-lab/python/bin/python",
        libvirtd_service="libvirt-bin",
        puppet_lock="/var/lib/puppet/state/puppetdlock",
        puppet_message=False,
        puppet_run_lock="/var/lib/puppet/state/puppetdlock",
        host_packages=HOST_PACKAGES,
        machine_packages=(
            "mailcap",
            "media-types",
            "libdb5.3",
            "libnsl2",
            "libtirpc3",
            "libreadline8",
            "libsqlite3-0",
            "libncursesw6",
            "libbz2-1.0",
            "libexpat1",
        ),
        ansible_python=None,
    ),
    "modern": HostProfile(
        name="modern",
        python="/opt/upgrader/.venv/bin/python",
        libvirtd_service="libvirtd",
        puppet_lock="/var/cache/puppet/state/agent_disabled.lock",
        puppet_message=True,
        puppet_run_lock="/var/cache/puppet/state/agent_catalog_run.lock",
        host_packages=(),
        machine_packages=(),
        ansible_python="/usr/bin/python3",
    ),
}
DEFAULT = "2012"


def get(name: str) -> HostProfile:
    """The profile called ``name``, or a one-line refusal naming the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise LabError(
            f"unknown host profile '{name}'", hint=f"use one of: {', '.join(PROFILES)}"
        ) from None
