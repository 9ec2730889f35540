"""Health gates on the lab: healthy passes; each lab fault fails the matching gate with the
right evidence; clearing the fault makes it pass again. Through the real ``upgrader gates``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.lab.conftest import upgrader
from tests.lab.test_cluster_playbooks import play
from tests.lab.test_lab import client, hosts_of
from tests.support.oned import wait_for
from upgrader.lab import hosts as hs

pytestmark = pytest.mark.lab


def gates(lab, *names: str, run_id: str = "", wait: int = 30) -> tuple[int, dict[str, dict]]:
    args = [a for n in names for a in ("--gate", n)]
    if run_id:
        args += ["--run-id", run_id]
    result = upgrader(
        "gates",
        "--stage",
        "--json",
        "--wait",
        str(wait),
        "--config",
        str(lab["dir"] / "upgrader.yml"),
        *args,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, {g["gate"]: g for g in json.loads(result.stdout)}


@contextmanager
def fault(lab, name: str, *where: str) -> Iterator[None]:
    upgrader("lab", "fault", name, "--name", lab["name"], *where)
    try:
        yield
    finally:
        upgrader("lab", "fault", name, "--name", lab["name"], *where, "--clear")


def passes_again(lab, *names: str, run_id: str = "") -> None:
    wait_for(lambda: gates(lab, *names, run_id=run_id, wait=5)[0] == 0, timeout=120, interval=2)


def test_every_standing_gate_passes_on_a_healthy_lab(lab):
    code, seen = gates(lab)
    failing = [(k, v["evidence"]) for k, v in seen.items() if v["verdict"] != "pass"]
    assert code == 0, failing
    assert set(seen) == {
        "targets-supported",
        "oned-reachable",
        "oned-version",
        "hosts-monitored",
        "vms-settled",
        "no-duplicate-vms",
        "datastores-healthy",
        "pacemaker-healthy",
        "fencing-ready",
        "libvirtd-alive",
    }
    assert seen["oned-version"]["evidence"]["onedb_version"] == "3.2.1"
    assert seen["fencing-ready"]["evidence"]["agents"] == [
        "/etc/init.d/opennebula",
        "/usr/lib/ocf/resource.d/heartbeat/Filesystem",
        "/usr/lib/ocf/resource.d/lab/libvirtd",
        "/usr/sbin/fence_ipmilan",
    ]
    mounts = seen["datastores-healthy"]["evidence"]["mounts"]
    assert {(m["path"], m["fs_type"], m["nfs_export"]) for m in mounts} == {
        ("/var/lib/one/datastores", "ext4", False),
        ("/srv/lab/nfs/export/staging", "ext4", True),
    }


def test_libvirtd_crash_fails_libvirtd_alive_and_no_duplicate_vms_until_cleared(lab):
    host = hosts_of(lab, "staging")[-1]
    one = client(lab, "staging")
    placed_there = [vm for vm in one.vm_pool() if vm.host == host]
    assert placed_there
    with fault(lab, "libvirtd-crash", "--cloud", "staging"):
        # the resubmit hook starts the host's VMs a second time elsewhere
        try:
            wait_for(
                lambda: all(
                    one.vm(vm.id).host not in (None, host)
                    and one.vm(vm.id).lcm_state.name == "RUNNING"
                    for vm in placed_there
                ),
                timeout=90,
            )
        except AssertionError:  # say what oned saw: the lab is shared by the worker's files
            vms = {v.name: (v.host, v.state.name, v.lcm_state.name) for v in one.vm_pool()}
            states = {h.name: h.state.name for h in one.host_pool()}
            pytest.fail(
                f"90 s after libvirtd crashed on {host}, not every VM it ran "
                f"({', '.join(v.name for v in placed_there)}) runs elsewhere: "
                f"VMs {vms}; hosts {states}"
            )
        code, seen = gates(lab, "libvirtd-alive", "no-duplicate-vms", wait=0)
        assert code == 1
        alive = seen["libvirtd-alive"]
        assert alive["verdict"] == "fail" and host in alive["evidence"]["summary"]
        dup = seen["no-duplicate-vms"]
        assert dup["verdict"] == "fail"
        text = json.dumps(dup["evidence"])
        vm = placed_there[0]
        assert f"one-{vm.id}" in text or re.search(rf"\b{vm.id}\b", text)
        assert host in text and one.vm(vm.id).host in text
    passes_again(lab, "libvirtd-alive", "no-duplicate-vms")


def test_a_broken_stonith_agent_fails_fencing_ready_naming_file_and_line(lab):
    with fault(lab, "stonith-agent-broken", "--cloud", "staging"):
        code, seen = gates(lab, "fencing-ready")
        assert code == 1
        result = seen["fencing-ready"]
        host = hosts_of(lab, "staging")[-1]
        assert result["verdict"] == "fail"
        assert result["evidence"]["summary"].startswith(f"/usr/sbin/fence_ipmilan:3 on {host}")
        assert [(p["file"], p["line"], p["host"]) for p in result["evidence"]["problems"]] == [
            ("/usr/sbin/fence_ipmilan", 3, host)
        ]
    passes_again(lab, "fencing-ready")


def test_oned_down_fails_oned_reachable(lab):
    with fault(lab, "oned-down", "--cloud", "staging"):
        code, seen = gates(lab, "oned-reachable")
        assert code == 1
        result = seen["oned-reachable"]
        assert result["verdict"] == "fail"
        assert "did not answer" in result["evidence"]["summary"]
        assert "start oned" in result["hint"]
    passes_again(lab, "oned-reachable", "hosts-monitored")


def test_an_unreachable_host_fails_hosts_monitored_and_is_never_called_healthy(lab):
    host = hosts_of(lab, "staging")[-1]
    one = client(lab, "staging")
    with fault(lab, "host-unreachable", "--cloud", "staging"):
        wait_for(
            lambda: next(h for h in one.host_pool() if h.name == host).state.name == "ERROR",
            timeout=60,
        )
        code, seen = gates(lab, "hosts-monitored", "libvirtd-alive", wait=0)
        assert code == 1
        monitored = seen["hosts-monitored"]
        assert monitored["verdict"] == "fail"
        assert monitored["evidence"]["summary"].startswith(f"{host} in ERROR")
        alive = seen["libvirtd-alive"]
        assert alive["verdict"] == "inconclusive"
        assert f"{host}: host did not answer" in alive["evidence"]["summary"]
    passes_again(lab, "hosts-monitored", "libvirtd-alive")


def test_a_full_nfs_export_fails_datastores_healthy_with_the_numbers(lab):
    with fault(lab, "nfs-full"):
        code, seen = gates(lab, "datastores-healthy")
        assert code == 1
        result = seen["datastores-healthy"]
        nfs = f"{lab['name']}-nfs"
        assert result["verdict"] == "fail"
        assert re.match(
            rf"{nfs}: NFS export /srv/lab/nfs/export/staging \d+\.\d% free "
            r"\(\d+ of \d+ bytes\), needs more than 5%",
            result["evidence"]["summary"],
        )
    passes_again(lab, "datastores-healthy")


def test_puppet_enabled_during_the_window_fails_puppet_held(lab, tmp_path):
    staging = hosts_of(lab, "staging")
    run_id = "staging-20261123T2300Z"
    # what the run's first step does (on Puppet 2.7 the reason goes into a note by the lock)
    held = play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id=run_id)
    assert held.ok, held.stdout_tail
    try:
        code, seen = gates(lab, "puppet-held", run_id=run_id)
        assert code == 0, seen
        with fault(lab, "puppet-enabled", "--cloud", "staging"):
            code, seen = gates(lab, "puppet-held", run_id=run_id)
            assert code == 1
            result = seen["puppet-held"]
            assert result["verdict"] == "fail"
            assert result["evidence"]["summary"] == f"agent enabled on {staging[-1]}"
            assert run_id in result["hint"]
        passes_again(lab, "puppet-held", run_id=run_id)
    finally:
        released = play(lab, tmp_path, "puppet-release.yml", upgrader_run_id=run_id)
        assert released.ok, released.stdout_tail
    code, seen = gates(lab, "puppet-released", run_id=run_id)
    assert code == 0, seen


def test_maintenance_mode_set_with_crm_attribute_fails_pacemaker_healthy_until_unset(lab):
    front = hosts_of(lab, "staging")[0]
    cib = "CIB_file=/srv/lab/staging/pcmk/cib.xml"

    def maintenance(value: str) -> None:
        hs.enter(
            lab["dir"],
            front,
            "sh",
            "-c",
            f"{cib} crm_attribute --type crm_config --name maintenance-mode --update {value}",
        )

    maintenance("true")
    try:
        code, seen = gates(lab, "pacemaker-healthy")
        assert code == 1
        summary = seen["pacemaker-healthy"]["evidence"]["summary"]
        assert "maintenance-mode is true, expected false" in summary
    finally:
        maintenance("false")
    code, seen = gates(lab, "pacemaker-healthy")
    assert code == 0, seen
