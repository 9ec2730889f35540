"""The lab's host profiles: what a 2012 lab and a modern lab install and tell Ansible."""

from __future__ import annotations

import click
import pytest

from upgrader.cli.lab import lab_up
from upgrader.lab import packages, profiles
from upgrader.lab.hosts import LabError
from upgrader.lab.lab import LabSpec


def test_2012_is_the_default_of_lab_up_and_of_a_spec() -> None:
    option = next(p for p in lab_up.params if p.name == "profile")
    assert option.default == "2012" == profiles.DEFAULT == LabSpec().profile
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == list(profiles.PROFILES)


def test_an_unknown_profile_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(LabError, match="unknown host profile '2008'") as refused:
        profiles.get("2008")
    assert refused.value.hint == "use one of: 2012, modern"


def test_the_2012_inventory_names_no_interpreter_and_modern_names_python3() -> None:
    assert profiles.get("2012").inventory_vars() == {}
    assert profiles.get("modern").inventory_vars() == {
        "ansible_python_interpreter": "/usr/bin/python3"
    }


def test_2012_hosts_install_python_2_7_and_take_its_libraries_from_the_machine() -> None:
    old = profiles.get("2012")
    assert old.host_packages == ("python2.7", "python-is-python2")
    assert "libssl1.1" not in old.machine_packages  # bookworm has none: it comes from bullseye
    assert {"libdb5.3", "media-types"} <= set(old.machine_packages)
    assert profiles.get("modern").host_packages == ()


@pytest.mark.parametrize(
    ("name", "script", "python"),
    [
        ("2012", "libvirt-bin", "/usr/lib/upgrader-lab/python/bin/python"),
        ("modern", "libvirtd", "/opt/upgrader/.venv/bin/python"),
    ],
)
def test_the_packages_follow_the_profile(name: str, script: str, python: str) -> None:
    profile = profiles.get(name)
    node = packages._files_of("opennebula-node", "3.2.1", profile)
    assert f"etc/init.d/{script}" in node
    assert {p for p in node if p.startswith("etc/init.d/")} == {f"etc/init.d/{script}"}
    assert f"# Provides:          {script}\n" in node[f"etc/init.d/{script}"][0]
    agent = node["usr/lib/ocf/resource.d/lab/libvirtd"][0]
    for action in ("start", "stop", "status"):
        assert f"/etc/init.d/{script} {action}" in agent
    front = packages._files_of("opennebula", "3.2.1", profile)
    assert f"--exec {python} --" in front["etc/init.d/opennebula"][0]
    assert f"exec {python} -m upgrader.lab.onedb" in front["usr/bin/onedb"][0]
