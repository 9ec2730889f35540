"""The inventory check refuses what would break a run later, and nothing a site may use.

The refusals themselves go through the real CLI in tests/badinput; here: the inventories
that must pass (the lab's, the test site's with YAML anchors, empty groups, INI files and
inventory directories, which are Ansible's to read).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrader.config.inventory import check_inventory
from upgrader.config.site import Environment
from upgrader.errors import EXIT_USAGE, InventoryFileError

LAB = """\
all:
  vars: {one_datastore_path: /var/lib/one/datastores}
  children:
    frontends:
      hosts: {s-fe: {ansible_host: 10.77.0.11}}
    hypervisors:
      hosts: {s-fe: {ansible_host: 10.77.0.11}, s-n2: {ansible_host: 10.77.0.12}}
    nfs_servers:
      hosts: {nfs: {ansible_host: 10.77.0.30}}
"""
ANCHORS = """\
all:
  children:
    frontends:
      hosts:
        node01: &local {ansible_connection: local}
    hypervisors:
      hosts: {node01: *local, node02: *local}
    agents:
"""
TOP_LEVEL_GROUPS = """\
frontends: {hosts: {fe: }}
hypervisors:
  children:
    rack1: {hosts: {n1: , n2: }}
"""


def env(path: Path) -> Environment:
    return Environment("staging", "http://fe:2633/RPC2", path.parent / "auth", path, None, (), None)


@pytest.mark.parametrize(
    "text",
    [LAB, ANCHORS, TOP_LEVEL_GROUPS],
    ids=["lab", "anchors-and-empty-group", "groups-through-children"],
)
def test_inventories_a_site_writes_pass(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    check_inventory(env(path))


def test_ini_inventories_and_directories_are_left_to_ansible(tmp_path: Path) -> None:
    ini = tmp_path / "hosts.ini"
    ini.write_text("[frontends]\nfe\n[hypervisors]\nn1\n")
    check_inventory(env(ini))
    (tmp_path / "inventory").mkdir()
    check_inventory(env(tmp_path / "inventory"))


def test_a_group_reached_only_through_children_still_needs_a_host(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("frontends: {hosts: {fe: }}\nhypervisors:\n  children:\n    rack1:\n")
    with pytest.raises(
        InventoryFileError,
        match=r"inventory\.yml:1:1: hypervisors: no group "
        r"'hypervisors' with a host",
    ) as caught:
        check_inventory(env(path))
    assert caught.value.exit_code == EXIT_USAGE
