"""A site for the core's integration tests: config, runbooks, local playbooks, a simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.support import oned
from upgrader.lab.pacemaker import build_cib

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "site"


def write_cib(path: Path, nodes: list[str]) -> Path:
    """The lab's CIB without the lab's own agents (lsb:opennebula, ocf:lab:libvirtd)."""
    root = ET.fromstring(build_cib(nodes, nodes[0], "127.0.0.1", "/dev/sdb1", "ocfs2"))
    resources = root.find("configuration/resources")
    assert resources is not None
    for parent in [resources, *resources.iter("group")]:
        for el in list(parent):
            if el.get("id") in ("oned", "libvirtd-clone"):
                parent.remove(el)
    for lrm in root.iter("lrm_resources"):
        for el in list(lrm):
            if el.get("id") in ("oned", "libvirtd"):
                lrm.remove(el)
    path.write_text(ET.tostring(root, encoding="unicode"))
    return path


def stand_in(path: Path, body: str) -> Path:
    """An executable shell script at ``path`` that runs ``body``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def make_site(
    root: Path,
    sim: oned.Simulator,
    hosts: list[str],
    *,
    step_sleep: float = 0,
    runbooks: Path | None = None,
) -> Path:
    """Write upgrader.yml, inventories and credentials under ``root``; return the config."""
    shutil.copytree(runbooks or FIXTURE / "runbooks", root / "runbooks")
    shutil.copytree(FIXTURE / "playbooks", root / "playbooks")
    creds = root / "one_auth"
    creds.write_text(f"{sim.session}\n")
    creds.chmod(0o600)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": {
                "marker_file": str(root / "markers"),
                "step_sleep": step_sleep,
                # local stand-ins: the test driver's own domain, and a libvirtd that runs
                "virsh_list_command": "virsh -c test:///default list --name",
                "libvirtd_status_command": "true",
                # the machine's root file system as the datastore, an offline CIB whose
                # agents this machine has (fence-agents, resource-agents), the lab's onedb
                "one_datastore_path": "/",
                "one_cib_file": str(write_cib(root / "cib.xml", hosts)),
                "onedb_version_command": f"{sys.executable} -m upgrader.lab.onedb version "
                f"-s {sim.db}",
                # a Puppet that answers --version, for targets-supported (no step runs it)
                "puppet_command": str(stand_in(root / "bin" / "puppet", "echo 3.8.7")),
            },
            "children": {
                "frontends": {"hosts": {hosts[0]: local}},
                "hypervisors": {"hosts": {h: local for h in hosts}},
            },
        }
    }
    (root / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = {"oned": sim.url, "credentials": str(creds), "inventory": str(root / "inventory.yml")}
    config = {
        "environments": {
            "staging": dict(env),
            "production": {**env, "requires_rehearsal_on": "staging"},
        },
        "runs_dir": str(root / "runs"),
        "runbooks_dir": str(root / "runbooks"),
        "playbooks_dir": str(root / "playbooks"),
    }
    path = root / "upgrader.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def command(config: Path, *args: str) -> list[str]:
    """The argv of ``upgrader ARGS --config CONFIG`` (for tests that start it themselves)."""
    return [sys.executable, "-m", "upgrader", *args, "--config", str(config)]


def upgrader(
    config: Path, *args: str, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """The real command line, against ``config``."""
    result = subprocess.run(
        command(config, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "UPGRADER_CONFIG": ""},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"upgrader {' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
    return result


def markers(root: Path) -> list[str]:
    """The lines the fixture playbooks appended, in order."""
    path = root / "markers"
    return path.read_text().splitlines() if path.exists() else []
