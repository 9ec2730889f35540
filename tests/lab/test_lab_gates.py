"""Health gates on the lab: healthy passes; libvirtd-crash fails the right gates with the
right evidence; clearing the fault makes them pass again."""

from __future__ import annotations

import json
import re

import pytest

from tests.lab.conftest import upgrader
from tests.lab.test_lab import client, hosts_of
from tests.support.oned import wait_for

pytestmark = pytest.mark.lab


def gates(lab) -> tuple[int, dict[str, dict]]:
    result = upgrader("gates", "--stage", "--json", "--config",
                      str(lab["dir"] / "upgrader.yml"), check=False)
    return result.returncode, {g["gate"]: g for g in json.loads(result.stdout)}


def test_every_standing_gate_passes_on_a_healthy_lab(lab):
    code, seen = gates(lab)
    failing = [(k, v["evidence"]) for k, v in seen.items() if v["verdict"] != "pass"]
    assert code == 0, failing
    assert set(seen) == {"oned-reachable", "oned-version", "hosts-monitored", "vms-settled",
                         "libvirtd-alive", "no-duplicate-vms"}


def test_libvirtd_crash_fails_libvirtd_alive_and_no_duplicate_vms_until_cleared(lab):
    host = hosts_of(lab, "staging")[-1]
    one = client(lab, "staging")
    placed_there = [vm for vm in one.vm_pool() if vm.host == host]
    assert placed_there
    upgrader("lab", "fault", "libvirtd-crash", "--name", lab["name"], "--cloud", "staging")
    try:
        # the resubmit hook starts the host's VMs a second time elsewhere
        wait_for(lambda: all(one.vm(vm.id).host not in (None, host) and
                             one.vm(vm.id).lcm_state.name == "RUNNING" for vm in placed_there),
                 timeout=90)
        code, seen = gates(lab)
        assert code == 1
        alive = seen["libvirtd-alive"]
        assert alive["verdict"] == "fail" and host in alive["evidence"]["summary"]
        dup = seen["no-duplicate-vms"]
        assert dup["verdict"] == "fail"
        text = json.dumps(dup["evidence"])
        vm = placed_there[0]
        assert f"one-{vm.id}" in text or re.search(rf"\b{vm.id}\b", text)
        assert host in text and one.vm(vm.id).host in text
    finally:
        upgrader("lab", "fault", "libvirtd-crash", "--name", lab["name"], "--cloud", "staging",
                 "--clear")
    wait_for(lambda: gates(lab)[0] == 0, timeout=90, interval=2)
