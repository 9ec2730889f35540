"""Network leases in the simulator, as oned 3.2.1, 3.4.1 and 3.6.0 keep them (issue 6).

A NIC's ``IP=`` is honoured or the allocation fails with oned's error (RANGED: inside the
range and free; FIXED: a defined lease and free); ``MAC=`` is not (the lease's MAC wins).
Leases, used and free, are in the ``leases`` table and survive a restart. VMs recorded,
shut down and re-created by the upgrader's own actions across the 3.2 -> 3.4 database
upgrade come back with the same addresses and MACs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support import oned, xsd
from upgrader.actions import build_actions
from upgrader.journal.store import Journal
from upgrader.opennebula import OneClient
from upgrader.plan.model import Plan, PlannedStep
from upgrader.run.context import RunContext

VERSIONS = ["3.2.1", "3.4.1", "3.6.0"]
LAN = "NAME=lan\nTYPE=RANGED\nBRIDGE=br0\nNETWORK_ADDRESS=10.9.0.0\nNETWORK_SIZE=C"
PUB = (
    "NAME=pub\nTYPE=FIXED\nBRIDGE=br1\nLEASES=[IP=192.0.2.10]\n"
    "LEASES=[IP=192.0.2.11, MAC=52:54:00:aa:bb:11]\nLEASES=[IP=192.0.2.12]"
)
MAC_10, MAC_11, MAC_12 = "02:00:c0:00:02:0a", "52:54:00:aa:bb:11", "02:00:c0:00:02:0c"


def lease_error(version: str) -> str:
    """oned's answer when a NIC cannot get its lease (3.2 says less than 3.4 and 3.6)."""
    why = (
        "Could not get virtual network for VM."
        if version == "3.2.1"
        else "Cannot get IP/MAC lease from virtual network."
    )
    return f"[VirtualMachineAllocate] Error allocating a new virtual machine. {why}"


def new_net(sim: oned.Simulator, text: str) -> int:
    return sim.call("one.vn.allocate", text, *(() if sim.version == "3.2.1" else (-1,)))


def vm(sim: oned.Simulator, nics: str, name: str = "v") -> int:
    return sim.call("one.vm.allocate", f"NAME={name}\nCPU=0.1\nMEMORY=64\n{nics}")


def refused(sim: oned.Simulator, nics: str) -> str:
    answer = sim.raw("one.vm.allocate", f"NAME=no\nCPU=0.1\nMEMORY=64\n{nics}")
    assert answer[0] is False, f"allocated VM {answer[1]} for {nics!r}"
    assert answer[2] == 0x2000  # INTERNAL
    return str(answer[1])


def nics_of(sim: oned.Simulator, vmid: int) -> list[dict[str, str]]:
    doc = ET.fromstring(sim.call("one.vm.info", vmid))
    return [{e.tag: e.text or "" for e in nic} for nic in doc.findall("TEMPLATE/NIC")]


def leases_of(sim: oned.Simulator, nid: int) -> dict[str, tuple[str, int, int]]:
    """ip -> (mac, used, vid) from ``one.vn.info``, checking TOTAL_LEASES on the way."""
    doc = ET.fromstring(sim.call("one.vn.info", nid))
    out = {
        le.findtext("IP") or "": (
            le.findtext("MAC") or "",
            int(le.findtext("USED") or 0),
            int(le.findtext("VID") or 0),
        )
        for le in doc.findall("LEASES/LEASE")
    }
    assert int(doc.findtext("TOTAL_LEASES") or -1) == sum(used for _, used, _ in out.values())
    return out


@pytest.fixture(params=VERSIONS)
def sim(request: pytest.FixtureRequest, oned_factory: Any) -> oned.Simulator:
    """An empty cloud (no hosts: every VM stays PENDING) with the networks lan and pub."""
    s = oned_factory(request.param)
    assert (new_net(s, LAN), new_net(s, PUB)) == (0, 1)
    return s


def test_a_nic_gets_the_ip_it_asks_for_but_the_leases_mac(sim: oned.Simulator) -> None:
    a = vm(
        sim,
        "NIC=[NETWORK_ID=0, IP=10.9.0.77, MAC=00:16:3e:00:00:01]\n"
        "NIC=[NETWORK=pub, IP=192.0.2.11, MODEL=virtio]",
    )
    assert nics_of(sim, a) == [
        {
            "BRIDGE": "br0",
            "IP": "10.9.0.77",
            "MAC": "02:00:0a:09:00:4d",
            "NETWORK": "lan",
            "NETWORK_ID": "0",
            "VLAN": "NO",
        },
        {
            "BRIDGE": "br1",
            "IP": "192.0.2.11",
            "MAC": MAC_11,
            "MODEL": "virtio",
            "NETWORK": "pub",
            "NETWORK_ID": "1",
            "VLAN": "NO",
        },
    ]
    b = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")  # no IP: the first free leases
    assert [n["IP"] for n in nics_of(sim, b)] == ["10.9.0.1", "192.0.2.10"]
    assert leases_of(sim, 0) == {
        "10.9.0.1": ("02:00:0a:09:00:01", 1, b),
        "10.9.0.77": ("02:00:0a:09:00:4d", 1, a),
    }
    assert leases_of(sim, 1) == {
        "192.0.2.10": (MAC_10, 1, b),
        "192.0.2.11": (MAC_11, 1, a),
        "192.0.2.12": (MAC_12, 0, -1),
    }


def test_networks_with_leases_validate_against_the_official_schema(sim: oned.Simulator) -> None:
    xsd.xsd_dir()  # skipped at once without the schemas (tests/support/xsd.py says why)
    a = vm(sim, "NIC=[NETWORK_ID=0, IP=10.9.0.77]\nNIC=[NETWORK=pub, IP=192.0.2.11]")
    vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")
    series = sim.version[:3]
    for doc in (
        sim.call("one.vn.info", 0),
        sim.call("one.vn.info", 1),
        sim.call("one.vnpool.info", -2, -1, -1),
        sim.call("one.vm.info", a),
    ):
        assert xsd.validate(doc, series) == []


def test_without_an_ip_the_search_goes_on_after_the_last_lease_given(sim: oned.Simulator) -> None:
    first = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")
    sim.call("one.vm.action", "finalize", first)  # .1 and .10 are free again
    second = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")
    # RANGED looks again at the address it gave last; FIXED starts after the lease it gave
    assert [n["IP"] for n in nics_of(sim, second)] == ["10.9.0.1", "192.0.2.11"]
    third = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")
    assert [n["IP"] for n in nics_of(sim, third)] == ["10.9.0.2", "192.0.2.12"]
    sim.call("one.vm.action", "finalize", second)
    fourth = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")  # not the .1 just freed
    assert [n["IP"] for n in nics_of(sim, fourth)] == ["10.9.0.3", "192.0.2.10"]


def test_an_ip_taken_outside_the_range_or_not_a_lease_is_refused_with_oneds_error(
    sim: oned.Simulator,
) -> None:
    holder = vm(sim, "NIC=[NETWORK_ID=0, IP=10.9.0.5]")
    error = lease_error(sim.version)
    for nic in (
        "NIC=[NETWORK_ID=0, IP=10.9.0.0]",  # the network address: not in the range
        "NIC=[NETWORK_ID=0, IP=10.9.0.255]",  # broadcast
        "NIC=[NETWORK_ID=0, IP=10.9.1.5]",  # another network
        "NIC=[NETWORK_ID=0, IP=10.9.0.300]",  # not an address
        "NIC=[NETWORK_ID=1, IP=192.0.2.13]",  # FIXED: not one of its leases
        "NIC=[NETWORK_ID=0, IP=10.9.0.5]",
    ):  # taken
        assert refused(sim, nic) == error, nic
    # the first NIC got its lease, the second failed: the first one is given back
    assert (
        refused(sim, "NIC=[NETWORK_ID=0, IP=10.9.0.9]\nNIC=[NETWORK_ID=1, IP=192.0.2.99]") == error
    )
    missing = refused(sim, "NIC=[NETWORK_ID=42]")
    assert missing == (
        "[VirtualMachineAllocate] Error allocating a new virtual machine. "
        + (
            "Could not get virtual network for VM."
            if sim.version == "3.2.1"
            else "Virtual network with ID: 42 does not exist"
        )
    )
    assert "10.9.0.9" not in leases_of(sim, 0)
    # no VM was allocated, and no VM id was used up
    assert vm(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.12]") == holder + 1
    assert refused(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.12]") == error  # FIXED, taken


def test_a_nic_refused_a_taken_ip_frees_the_holders_lease_on_32_only(sim: oned.Simulator) -> None:
    holder = vm(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.11]", name="holder")
    refused(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.11]")
    if sim.version == "3.2.1":
        # 3.2's release_network_leases does not ask who owns the lease (3.4 added is_owner)
        assert leases_of(sim, 1)["192.0.2.11"] == (MAC_11, 0, -1)
        twin = vm(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.11]", name="twin")
        assert nics_of(sim, twin)[0]["IP"] == nics_of(sim, holder)[0]["IP"] == "192.0.2.11"
    else:
        assert leases_of(sim, 1)["192.0.2.11"] == (MAC_11, 1, holder)
        refused(sim, "NIC=[NETWORK_ID=1, IP=192.0.2.11]")


def test_leases_used_and_free_survive_a_restart(sim: oned.Simulator, oned_factory: Any) -> None:
    a = vm(sim, "NIC=[NETWORK_ID=0, IP=10.9.0.77]\nNIC=[NETWORK_ID=1, IP=192.0.2.11]")
    b = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")
    sim.call("one.vm.action", "finalize", b)  # DONE: .1 deleted, .10 free again
    before = [sim.call("one.vn.info", n) for n in (0, 1)]
    assert leases_of(sim, 1) == {
        "192.0.2.10": (MAC_10, 0, -1),
        "192.0.2.11": (MAC_11, 1, a),
        "192.0.2.12": (MAC_12, 0, -1),
    }
    assert sim.stop() == 0

    again = oned_factory(sim.version, workdir=sim.workdir)
    assert [again.call("one.vn.info", n) for n in (0, 1)] == before
    c = vm(again, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]")  # what is used stays used
    assert [n["IP"] for n in nics_of(again, c)] == ["10.9.0.1", "192.0.2.10"]
    assert refused(again, "NIC=[NETWORK_ID=0, IP=10.9.0.77]") == lease_error(again.version)
    assert refused(again, "NIC=[NETWORK_ID=1, IP=192.0.2.11]") == lease_error(again.version)
    d = vm(again, "NIC=[NETWORK_ID=1, IP=192.0.2.12]")
    assert nics_of(again, d)[0]["MAC"] == MAC_12


# ------------------------------------------------ the upgrader's record, shut down, re-create
FAST = {"poll_interval": 0.05, "shutdown_timeout": 10, "cancel_timeout": 10, "boot_timeout": 30}


def pstep(action: str) -> PlannedStep:
    return PlannedStep(
        f"3.2-3.4/{action}",
        "3.2-3.4",
        action,
        action,
        "action",
        None,
        action,
        "hypervisors",
        (),
        None,
        1.0,
        True,
        None,
        False,
        (),
        (),
        vars=FAST,
    )


@pytest.fixture
def run(tmp_path: Path) -> Iterator[RunContext]:
    run_dir = tmp_path / "run"
    plan = Plan("staging", "3.2", "3.4", (("3.2", "3.4"),), (), (), None, 1.0, "f" * 64, "r" * 64)
    with Journal.create(run_dir, "r1") as journal:
        yield RunContext(
            plan=plan,
            run_id="r1",
            run_dir=run_dir,
            journal=journal,
            run_playbook=lambda *a, **k: None,
            project_dir=run_dir,
            inventory="localhost,",
            gates={},
            actions={},
            undo_steps={},
            progress=lambda line: None,
        )


def act(client: OneClient, ctx: RunContext, action: str) -> Mapping[str, Any]:
    return build_actions(client)[action](pstep(action), ctx)


def addresses(client: OneClient) -> dict[str, list[tuple[str | None, ...]]]:
    """VM name -> (NETWORK_ID, IP, MAC) of each NIC, for every live VM."""
    return {
        v.name: [(n.get("NETWORK_ID"), n.get("IP"), n.get("MAC")) for n in v.nics]
        for v in client.vm_pool()
    }


def test_vms_recreated_after_the_34_upgrade_keep_their_ips_and_macs(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim")
    assert (new_net(sim, LAN), new_net(sim, PUB)) == (0, 1)
    # "early" takes the first addresses and goes: a naive re-allocation would hand those out
    early = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1]", name="early")
    web = vm(sim, "NIC=[NETWORK_ID=0]\nNIC=[NETWORK_ID=1, MODEL=virtio]", name="web")
    db = vm(sim, "NIC=[NETWORK=lan]\nNIC=[NETWORK_ID=1]", name="db")
    sim.call("one.vm.action", "finalize", early)
    client = OneClient(sim.url, sim.session)
    oned.wait_for(lambda: all(v.is_running for v in client.vm_pool()))  # the scheduler
    before = addresses(client)
    assert before == {
        "web": [("0", "10.9.0.2", "02:00:0a:09:00:02"), ("1", "192.0.2.11", MAC_11)],
        "db": [("0", "10.9.0.3", "02:00:0a:09:00:03"), ("1", "192.0.2.12", MAC_12)],
    }

    act(client, run, "record-vms")
    act(client, run, "shutdown-vms")
    assert client.vm_pool() == ()
    assert sim.stop() == 0
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ONEDB_LAB_PACKAGE", "ONEDB_LAB_ROOT", "ONE_LOCATION")
    }
    upgraded = subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrader.lab.onedb",
            "upgrade",
            "-s",
            str(sim.db),
            "-b",
            str(tmp_path / "before-3.4.bck"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "ONEDB_LAB_PACKAGE": "3.4.1", "ONEDB_LAB_ROOT": str(tmp_path / "root")},
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    sim = oned_factory("3.4.1", workdir=sim.workdir)
    client = OneClient(sim.url, sim.session)

    made = act(client, run, "recreate-vms")
    assert made["count"] == 2
    assert addresses(client) == before
    recreated = {int(k): v for k, v in made["recreated"].items()}
    assert leases_of(sim, 1) == {
        "192.0.2.10": (MAC_10, 0, -1),
        "192.0.2.11": (MAC_11, 1, recreated[web]),
        "192.0.2.12": (MAC_12, 1, recreated[db]),
    }
    nic = next(n for n in nics_of(sim, recreated[web]) if n["NETWORK_ID"] == "1")
    assert nic["MODEL"] == "virtio"
    kept = json.loads((run.run_dir / "vms.json").read_text())["vms"]
    assert {r["name"]: [n["ip"] for n in r["nics"]] for r in kept} == {
        "web": ["10.9.0.2", "192.0.2.11"],
        "db": ["10.9.0.3", "192.0.2.12"],
    }
