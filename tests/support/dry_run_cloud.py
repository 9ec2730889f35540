"""The dry-run tests' cloud: a 3.2.1 simulator of two hosts and two VMs whose disks are not
persistent (two inhibitors to accept), with runbooks shaped like the real ones on the
fixture's marker playbook; shared by the dry-run and report tests."""

from __future__ import annotations

from pathlib import Path

from tests.support import oned, site

HOSTS = ["node01", "node02"]
ACCEPT = ("--accept", "vm-nonpersistent-disk/0", "--accept", "vm-nonpersistent-disk/1")

# The shape of the real runbooks, on the fixture's marker playbook. Every gate after the
# preflight would fail or error if a dry run evaluated it on the 3.2 cloud it leaves alone.
HOP_32 = """
name: dry-run-3.2-to-3.4
kind: upgrade
from_version: "3.2"
to_version: "3.4"
steps:
  - id: preflight
    action: record-vms
    estimate: 1m
    idempotent: true
    gates_before: [oned-reachable, {name: hosts-monitored, timeout: 0}, vms-settled]
  - id: hold
    playbook: mark.yml
    vars: {marker_name: hold}
    estimate: 30s
    idempotent: true
    undo: release
    gates_after: [puppet-held]
  - id: shutdown-vms
    action: shutdown-vms
    estimate: 10m
    idempotent: true
    gates_after: [vms-settled]
  - id: upgrade-frontend
    playbook: mark.yml
    target: frontends
    vars: {marker_name: front-end, target_group: frontends}
    estimate: 10m
    idempotent: true
    point_of_no_return: true
    gates_after: [{name: oned-version, expect: "3.4"}]
  - id: recreate-vms
    action: recreate-vms
    estimate: 10m
    idempotent: true
  - id: drain
    action: drain-host
    target: hypervisors
    serial: 1
    estimate: 10m
    idempotent: true
  - id: upgrade-node
    playbook: mark.yml
    target: hypervisors
    serial: 1
    vars: {marker_name: node, target_group: hypervisors}
    estimate: 3m
    idempotent: true
    gates_after: [{name: oned-version, expect: "3.4"}]
  - id: release
    playbook: mark.yml
    vars: {marker_name: release}
    undo_only: true
    estimate: 30s
    idempotent: true
"""
HOP_34 = """
name: dry-run-3.4-to-3.6
kind: upgrade
from_version: "3.4"
to_version: "3.6"
steps:
  - id: preflight
    action: record-vms
    estimate: 1m
    idempotent: true
    gates_before: [{name: oned-version, expect: "3.4"}]
  - id: second-hop
    playbook: mark.yml
    vars: {marker_name: second-hop}
    estimate: 5m
    idempotent: true
"""


def start(root: Path) -> tuple[oned.Simulator, Path]:
    """Seed and start the cloud under ``root``; return the simulator and the site config."""
    books = root / "books"
    books.mkdir()
    (books / "opennebula-3.2-to-3.4.yml").write_text(HOP_32)
    (books / "opennebula-3.4-to-3.6.yml").write_text(HOP_34)
    oned.seed(root / "sim", "3.2.1", hosts=2, vms=2)
    sim = oned.start(root / "sim", "3.2.1", speed=50)
    return sim, site.make_site(root, sim, HOSTS, runbooks=books)
