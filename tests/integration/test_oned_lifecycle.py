"""VM and host state machines in simulated time, the scheduler, persistence and faults."""

from __future__ import annotations

import re
import time
import xmlrpc.client
from collections.abc import Iterator

import pytest

from tests.support import oned
from tests.support.oned import wait_for


def field(doc: str, tag: str) -> int:
    return int(re.search(rf"<{tag}>(-?\d+)</{tag}>", doc).group(1))


def states(sim: oned.Simulator, vmid: int) -> tuple[int, int]:
    doc = sim.call("one.vm.info", vmid)
    return field(doc, "STATE"), field(doc, "LCM_STATE")


def hosts_of(sim: oned.Simulator, vmid: int) -> list[str]:
    return re.findall(r"<HOSTNAME>([^<]*)</HOSTNAME>", sim.call("one.vm.info", vmid))


@pytest.fixture(params=["3.2.1", "3.6.0"])
def sim(request: pytest.FixtureRequest, tmp_path) -> Iterator[oned.Simulator]:
    oned.seed(tmp_path, request.param, hosts=3, vms=3)
    s = oned.start(tmp_path, request.param, speed=50)
    yield s
    s.stop()


def test_a_new_vm_goes_pending_prolog_boot_running(sim):
    vmid = sim.call("one.vm.allocate", "NAME=fresh\nCPU=1\nMEMORY=256")
    seen = set()
    wait_for(lambda: seen.add(states(sim, vmid)) or states(sim, vmid) == (3, 3), 20, 0.02)
    assert (3, 1) in seen or (3, 2) in seen  # passed through PROLOG/BOOT on the way
    assert sim.lab("lab.virt.list", hosts_of(sim, vmid)[-1]).count(f"one-{vmid}") == 1


def test_shutdown_ends_done_and_the_domain_is_gone(sim):
    host = hosts_of(sim, 0)[-1]
    sim.call("one.vm.action", "shutdown", 0)
    assert states(sim, 0) == (3, 12)  # SHUTDOWN
    wait_for(lambda: states(sim, 0) == (6, 0))
    assert "one-0" not in sim.lab("lab.virt.list", host)
    assert field(sim.call("one.vm.info", 0), "ETIME") > 0


def test_live_migration_time_grows_with_memory(sim):
    big = sim.call("one.vm.allocate", "NAME=big\nCPU=0.1\nMEMORY=4096")
    wait_for(lambda: states(sim, big) == (3, 3))
    durations = {}
    for vmid in (0, big):
        target = 1 if hosts_of(sim, vmid)[-1] != "node02" else 2
        sim.call("one.vm.migrate", vmid, target, True)
        assert states(sim, vmid) == (3, 4)  # MIGRATE
        wait_for(lambda v=vmid: states(sim, v) == (3, 3))
        doc = sim.call("one.vm.info", vmid)
        stimes = [int(x) for x in re.findall(r"<STIME>(\d+)</STIME>", doc)[1:]]
        rstimes = [int(x) for x in re.findall(r"<RSTIME>(\d+)</RSTIME>", doc)]
        durations[vmid] = rstimes[-1] - stimes[-1]
    assert durations[big] > 3 * durations[0]  # 4096 MB against 512 MB


def test_live_migration_moves_the_domain(sim):
    src = hosts_of(sim, 1)[-1]
    sim.call("one.vm.migrate", 1, 0 if src != "node01" else 2, True)
    wait_for(lambda: states(sim, 1) == (3, 3))
    dst = hosts_of(sim, 1)[-1]
    assert dst != src
    assert "one-1" in sim.lab("lab.virt.list", dst) and "one-1" not in sim.lab("lab.virt.list", src)


def test_cold_migration_saves_then_prologs_then_boots(sim):
    sim.call("one.vm.migrate", 2, 0, False)
    seen = set()
    wait_for(lambda: seen.add(states(sim, 2)) or states(sim, 2) == (3, 3), 20, 0.01)
    assert (3, 7) in seen or (3, 8) in seen  # SAVE_MIGRATE / PROLOG_MIGRATE
    assert hosts_of(sim, 2)[-1] == "node01"


def test_suspend_resume_and_stop_resume(sim):
    sim.call("one.vm.action", "suspend", 0)
    wait_for(lambda: states(sim, 0) == (5, 0))
    sim.call("one.vm.action", "resume", 0)
    wait_for(lambda: states(sim, 0) == (3, 3))
    sim.call("one.vm.action", "stop", 0)
    wait_for(lambda: states(sim, 0) == (4, 0))
    sim.call("one.vm.action", "resume", 0)
    wait_for(lambda: states(sim, 0) == (3, 3), 30)  # rescheduled, PROLOG_RESUME, BOOT


def test_hosts_are_monitored_and_can_be_disabled(sim):
    hid = sim.call(
        "one.host.allocate",
        "node09",
        "im_kvm",
        "vmm_kvm",
        "dummy",
        *(["tm_shared"] if sim.version == "3.2.1" else [-1]),
    )
    assert field(sim.call("one.host.info", hid), "STATE") == 0
    wait_for(lambda: field(sim.call("one.host.info", hid), "STATE") == 2)
    sim.call("one.host.enable", hid, False)
    assert field(sim.call("one.host.info", hid), "STATE") == 4
    sim.call("one.host.enable", hid, True)
    assert field(sim.call("one.host.info", hid), "STATE") == 0
    wait_for(lambda: field(sim.call("one.host.info", hid), "STATE") == 2)


def test_the_scheduler_places_vms_only_where_they_fit(sim):
    small = sim.call("one.vm.allocate", 'NAME=small\nCPU=1\nMEMORY=128\nREQUIREMENTS="ID = 2"')
    huge = sim.call("one.vm.allocate", "NAME=huge\nCPU=1\nMEMORY=99999999")
    wait_for(lambda: states(sim, small) == (3, 3))
    assert hosts_of(sim, small) == ["node03"]
    assert states(sim, huge) == (1, 0)  # still PENDING: no host has room


def test_state_survives_a_restart(sim, tmp_path):
    sim.call("one.vm.action", "shutdown", 0)
    wait_for(lambda: states(sim, 0) == (6, 0))
    before = sim.call("one.vmpool.info", -2, -1, -1, -2)
    assert sim.stop() == 0
    again = oned.start(tmp_path, sim.version, speed=50)
    try:
        after = again.call("one.vmpool.info", -2, -1, -1, -2)
        strip = re.compile(
            r"<LAST_POLL>\d+</LAST_POLL>|<NET_[TR]X>\d+</NET_[TR]X>|"
            r"<(MEMORY|CPU)>\d+</\1>"
        )
        assert strip.sub("", after) == strip.sub("", before)
    finally:
        again.stop()


def test_libvirtd_crash_puts_the_host_in_error_but_its_domains_keep_running(sim):
    sim.lab("lab.fault.set", "libvirtd-crash", "node01", {})
    wait_for(lambda: field(sim.call("one.host.info", 0), "STATE") == 3)
    assert "failed to connect to the hypervisor" in sim.call("one.host.info", 0)
    assert sim.lab("lab.virt.list", "node01") == ["one-0"]
    wait_for(lambda: states(sim, 0) == (3, 16))  # the poll fails: UNKNOWN
    assert sim.lab("lab.fault.clear", "libvirtd-crash", "node01") is True
    wait_for(lambda: field(sim.call("one.host.info", 0), "STATE") == 2)
    wait_for(lambda: states(sim, 0) == (3, 3))


def test_host_unreachable_is_an_error_with_its_own_message(sim):
    sim.lab("lab.fault.set", "host-unreachable", "node02", {})
    wait_for(lambda: field(sim.call("one.host.info", 1), "STATE") == 3)
    assert "No route to host" in sim.call("one.host.info", 1)


def test_a_failing_migration_leaves_the_vm_running_where_it_was(sim):
    sim.lab("lab.fault.set", "migration-fail", "", {})
    sim.call("one.vm.migrate", 0, 1, True)
    wait_for(lambda: states(sim, 0) == (3, 3))
    assert hosts_of(sim, 0) == ["node01"]
    assert "one-0" in sim.lab("lab.virt.list", "node01")


def test_a_hanging_migration_stays_in_migrate_until_cleared(sim):
    sim.lab("lab.fault.set", "migration-hang", "node02", {})
    sim.call("one.vm.migrate", 0, 1, True)
    sim.lab("lab.clock.advance", 600)
    assert states(sim, 0) == (3, 4)
    sim.lab("lab.fault.clear", "migration-hang", "node02")
    wait_for(lambda: states(sim, 0) == (3, 3))
    assert hosts_of(sim, 0)[-1] == "node02"


def test_oned_not_answering_times_the_client_out(sim):
    sim.lab("lab.fault.set", "oned-hang", "", {})
    proxy = xmlrpc.client.ServerProxy(sim.url)
    import socket

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.5)
    try:
        with pytest.raises(TimeoutError):
            xmlrpc.client.ServerProxy(sim.url).one.hostpool.info(sim.session)
    finally:
        socket.setdefaulttimeout(old)
    sim.lab("lab.fault.clear", "oned-hang", "")
    assert proxy.one.hostpool.info(sim.session)[0] is True


def test_unknown_faults_are_refused(sim):
    with pytest.raises(xmlrpc.client.Fault, match="unknown fault"):
        sim.lab("lab.fault.set", "meteor", "", {})
    with pytest.raises(xmlrpc.client.Fault, match="known host"):
        sim.lab("lab.fault.set", "libvirtd-crash", "nohost", {})


def test_the_first_scheduler_pass_waits_one_sched_interval(tmp_path):
    """mm_sched places nothing before its first interval: a VM deployed by hand right after
    oned starts is still PENDING for the operator who deploys it."""
    oned.seed(tmp_path, "3.2.1", hosts=2, vms=1)
    s = oned.start(tmp_path, "3.2.1", "--sched-interval", "60", speed=100)
    try:
        vmid = s.call("one.vm.allocate", "NAME=by-hand\nCPU=0.5\nMEMORY=64")
        time.sleep(0.5)  # 50 simulated seconds: short of the interval
        assert states(s, vmid) == (1, 0)
        s.call("one.vm.deploy", vmid, 1)
        wait_for(lambda: states(s, vmid) == (3, 3))
        assert hosts_of(s, vmid) == ["node02"]
    finally:
        s.stop()
