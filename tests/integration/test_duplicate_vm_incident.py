"""The site's incident, end to end: libvirtd crashes, the host-error hook resubmits, and
the same VM then runs on two hypervisors while oned believes it runs on one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.support import oned
from tests.support.oned import wait_for


@pytest.fixture(autouse=True)
def _virsh_installed() -> None:
    assert shutil.which("virsh"), "virsh missing: scripts/bootstrap installs libvirt-clients"


def virsh_list(virt_dir, host: str) -> list[str]:
    """What the real virsh shows on ``host`` (the libvirt test driver reads its file)."""
    out = subprocess.run(
        ["virsh", "-c", f"test://{virt_dir}/{host}.xml", "list", "--name"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def oned_host_of(sim: oned.Simulator, vmid: int) -> str | None:
    doc = sim.call("one.vm.info", vmid)
    if "<STATE>3</STATE><LCM_STATE>3</LCM_STATE>" not in doc:
        return None
    return re.findall(r"<HOSTNAME>([^<]*)</HOSTNAME>", doc)[-1]


@pytest.mark.parametrize("version", ["3.2.1", "3.4.1"])
def test_libvirtd_crash_with_resubmit_hook_runs_a_vm_on_two_hosts(tmp_path, version):
    oned.seed(tmp_path, version, hosts=3, vms=3)
    sim = oned.start(tmp_path, version, "--host-error-hook", "resubmit", speed=50)
    try:
        hosts = ["node01", "node02", "node03"]
        assert all(virsh_list(sim.virt_dir, h) == [f"one-{i}"] for i, h in enumerate(hosts))

        sim.lab("lab.fault.set", "libvirtd-crash", "node01", {})
        wait_for(lambda: "<STATE>3</STATE>" in sim.call("one.host.info", 0))  # ERROR
        new_host = wait_for(
            lambda: oned_host_of(sim, 0) not in (None, "node01") and oned_host_of(sim, 0),
            timeout=60,
        )
        sim.lab("lab.flush")

        running_on = [h for h in hosts if "one-0" in virsh_list(sim.virt_dir, h)]
        assert running_on == sorted(["node01", new_host])  # the duplicate
        assert oned_host_of(sim, 0) == new_host  # oned knows only the new one
        state = json.loads((sim.virt_dir / "node01.state.json").read_text())
        assert state == {"libvirtd": False, "reachable": True}

        # Clearing the fault brings libvirtd back, but not the lost bookkeeping.
        sim.lab("lab.fault.clear", "libvirtd-crash", "node01")
        wait_for(lambda: "<STATE>2</STATE>" in sim.call("one.host.info", 0))
        sim.lab("lab.flush")
        assert "one-0" in virsh_list(sim.virt_dir, "node01")
        assert sim.lab("lab.virt.destroy", "node01", "one-0") is True
        sim.lab("lab.flush")
        assert [h for h in hosts if "one-0" in virsh_list(sim.virt_dir, h)] == [new_host]
    finally:
        sim.stop()


def test_without_the_hook_the_vm_is_not_started_twice(tmp_path):
    oned.seed(tmp_path, "3.2.1", hosts=2, vms=2)
    sim = oned.start(tmp_path, "3.2.1", speed=50)
    try:
        sim.lab("lab.fault.set", "libvirtd-crash", "node01", {})
        wait_for(lambda: "<LCM_STATE>16</LCM_STATE>" in sim.call("one.vm.info", 0))  # UNKNOWN
        sim.lab("lab.clock.advance", 300)
        sim.lab("lab.flush")
        assert virsh_list(sim.virt_dir, "node01") == ["one-0"]
        assert virsh_list(sim.virt_dir, "node02") == ["one-1"]
    finally:
        sim.stop()
