"""The orchestrator actions against the real oned simulator over XML-RPC.

record -> shutdown -> (oned stopped, the lab onedb upgrades its database to 3.4.1, a 3.4.1
oned starts on it) -> recreate; drain, move back, a hanging migration, dry runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support import oned
from upgrader.actions import build_actions
from upgrader.errors import UpgraderError
from upgrader.journal.store import EventType, Journal, read_events
from upgrader.opennebula import HostState, OneClient, VmState
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Step
from upgrader.run.context import RunContext
from upgrader.run.executor import execute

FAST = {
    "poll_interval": 0.05,
    "shutdown_timeout": 5,
    "cancel_timeout": 10,
    "boot_timeout": 30,
    "migration_timeout": 10,
}
NO_SCHEDULER = ("--sched-interval", "1000000")  # VMs stay where the test puts them
ENV_KNOBS = ("ONEDB_LAB_PACKAGE", "ONEDB_LAB_ROOT", "ONE_LOCATION")


def pstep(
    action: str, hosts: tuple[str, ...] = (), hop: str = "3.2-3.4", **more: Any
) -> PlannedStep:
    step_id = f"{hop}/{action}" + (f"@{','.join(hosts)}" if hosts else "")
    return PlannedStep(
        step_id,
        hop,
        action,
        action,
        "action",
        None,
        action,
        "hypervisors",
        hosts,
        None,
        1.0,
        True,
        None,
        False,
        (),
        (),
        vars={**FAST, **more},
    )


@pytest.fixture
def run(tmp_path: Path) -> Iterator[RunContext]:
    """A minimal RunContext: a run directory with its journal; progress lines collected."""
    run_dir = tmp_path / "run"
    plan = Plan("staging", "3.2", "3.4", (("3.2", "3.4"),), (), (), None, 1.0, "f" * 64, "r" * 64)
    lines: list[str] = []
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
            progress=lines.append,
        )


def act(client: OneClient, ctx: RunContext, step: PlannedStep) -> Mapping[str, Any]:
    return build_actions(client)[str(step.action)](step, ctx)


def onedb_upgrade(db: Path, backup: Path, root: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
    env = {**base, "ONEDB_LAB_PACKAGE": "3.4.1", "ONEDB_LAB_ROOT": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "upgrader.lab.onedb", "upgrade", "-s", str(db), "-b", str(backup)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def running_on(client: OneClient) -> dict[str, str | None]:
    return {vm.name: vm.host for vm in client.vm_pool() if vm.is_running}


def identity(client: OneClient) -> dict[str, tuple[Any, ...]]:
    """name -> (owner, group, host, persistent image ids, NIC networks) of every live VM."""
    persistent = {image.id for image in client.image_pool() if image.persistent}
    out = {}
    for vm in client.vm_pool():
        images = tuple(
            int(d["IMAGE_ID"])
            for d in vm.disks
            if "IMAGE_ID" in d and int(d["IMAGE_ID"]) in persistent
        )
        nets = tuple((n.get("NETWORK_ID"), n.get("IP")) for n in vm.nics)
        out[vm.name] = (vm.uname, vm.gname, vm.host, images, nets, vm.state.name)
    return out


def cloud_32(tmp_path: Path, oned_factory: Any, hosts: int = 3, vms: int = 4) -> Any:
    """A running 3.2.1 cloud: seeded VMs, plus alice's VM on a persistent image with a lease,
    a guest that ignores ACPI, and a VM on hold."""
    oned.seed(tmp_path / "sim", "3.2.1", hosts=hosts, vms=vms)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100, extra=NO_SCHEDULER)
    uid = sim.call("one.user.allocate", "alice", "alice-pw", "core")
    image = sim.call("one.image.allocate", 'NAME="alice-disk"\nPATH="/srv/images/a.img"')
    sim.call("one.image.persistent", image, True)
    # RANGED here; FIXED networks and restarts: tests/integration/test_oned_leases.py
    net = sim.call(
        "one.vn.allocate",
        "NAME=lan\nTYPE=RANGED\nBRIDGE=br0\nNETWORK_ADDRESS=10.0.0.0\nNETWORK_SIZE=C",
    )
    vid = sim.call(
        "one.vm.allocate",
        f'NAME="alice-db"\nCPU=1\nMEMORY=256\n'
        f"DISK=[IMAGE_ID={image}, TARGET=vda]\nNIC=[NETWORK_ID={net}]",
    )
    sim.call("one.vm.chown", vid, uid, 1)
    sim.call("one.vm.deploy", vid, 1)
    stubborn = sim.call(
        "one.vm.allocate", 'NAME="stubborn"\nCPU=0.5\nMEMORY=128\nLAB_IGNORES_ACPI=YES'
    )
    sim.call("one.vm.deploy", stubborn, 2)
    held = sim.call("one.vm.allocate", 'NAME="parked"\nCPU=0.5\nMEMORY=64')
    sim.call("one.vm.action", "hold", held)
    client = OneClient(sim.url, sim.session)
    oned.wait_for(lambda: all(vm.is_running or vm.name == "parked" for vm in client.vm_pool()))
    return sim, client


def test_shutdown_upgrade_recreate_brings_back_names_owners_hosts_and_disks(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    sim, client = cloud_32(tmp_path, oned_factory)
    before = identity(client)
    assert len(before) == 7 and before["parked"][-1] == "HOLD"

    recorded = act(client, run, pstep("record-vms"))
    assert recorded["count"] == 7
    assert recorded["per_host"] == {"-": 1, "node01": 2, "node02": 2, "node03": 2}
    vms = json.loads((run.run_dir / "vms.json").read_text())["vms"]
    alice = next(v for v in vms if v["name"] == "alice-db")
    assert (alice["uname"], alice["host"], alice["nics"][0]["ip"]) == (
        "alice",
        "node02",
        "10.0.0.1",
    )
    assert alice["disks"][0]["persistent"] is True
    assert "<TEMPLATE>" in alice["template_xml"]
    # the seeded VMs' disks are clones of a non-persistent image: their changes would be lost
    assert len(recorded["non_persistent_disks"]) == 4

    shut = act(client, run, pstep("shutdown-vms", shutdown_timeout=60))
    assert client.vm_pool() == ()  # every VM DONE: what onedb asks for
    stubborn = next(v for v in vms if v["name"] == "stubborn")
    # the guest ignored ACPI: cancelled as soon as it was RUNNING again, not after 60 s
    assert shut["actions"][str(stubborn["id"])] == ["shutdown", "cancel"]
    assert shut["phase_reached"] == "graceful"
    assert shut["actions"][str(alice["id"])] == ["shutdown"]
    parked = next(v for v in vms if v["name"] == "parked")
    assert shut["actions"][str(parked["id"])] == ["finalize"]  # never ran: nothing to lose

    sim.stop()
    onedb_upgrade(sim.db, tmp_path / "before-3.4.bck", tmp_path / "root")
    sim = oned_factory("3.4.1", workdir=sim.workdir, speed=100, extra=NO_SCHEDULER)
    client = OneClient(sim.url, sim.session)

    made = act(client, run, pstep("recreate-vms"))
    assert made["count"] == 7
    after = identity(client)
    assert after == before
    new_ids = {vm.id for vm in client.vm_pool()}
    assert set(made["recreated"].values()) == new_ids
    assert all(int(old) not in new_ids for old in made["recreated"])

    again = act(client, run, pstep("recreate-vms"))  # a resumed step: nothing allocated twice
    assert again["recreated"] == made["recreated"]
    assert {vm.id for vm in client.vm_pool()} == new_ids


def test_a_recreate_resumed_after_a_crash_between_allocate_and_journal_does_not_duplicate(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=3, vms=6)
    # a scheduler that places PENDING VMs at once races recreate-vms' own deploy
    sim = oned_factory(
        "3.2.1", workdir=tmp_path / "sim", speed=100, extra=("--sched-interval", "0.2")
    )
    client = OneClient(sim.url, sim.session)
    before = running_on(client)
    act(client, run, pstep("record-vms"))
    act(client, run, pstep("shutdown-vms"))
    made = act(client, run, pstep("recreate-vms"))
    assert running_on(client) == before
    mapping = json.loads((run.run_dir / "recreated.json").read_text())
    lost = min(mapping, key=int)
    del mapping[lost]  # as if the run died right after one.vm.allocate
    (run.run_dir / "recreated.json").write_text(json.dumps(mapping))
    new_id = made["recreated"][lost]
    elsewhere = next(h for h in client.host_pool() if h.name != client.vm(new_id).host)
    sim.call("one.vm.migrate", new_id, elsewhere.id, True)  # and the scheduler put it there
    oned.wait_for(lambda: client.vm(new_id).is_running and client.vm(new_id).host == elsewhere.name)

    again = act(client, run, pstep("recreate-vms"))
    assert again["recreated"] == made["recreated"]
    assert len(client.vm_pool()) == 6
    assert running_on(client) == before  # moved back to its recorded host


def test_a_rollback_recreates_only_the_vms_already_down_and_a_resumed_run_goes_on(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=3)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100, extra=NO_SCHEDULER)
    client = OneClient(sim.url, sim.session)
    before = running_on(client)
    act(client, run, pstep("record-vms"))
    first = client.vm_pool()[0]
    sim.call("one.vm.action", "shutdown", first.id)  # the shut-down stopped after one VM
    oned.wait_for(lambda: first.id not in {vm.id for vm in client.vm_pool()})

    rollback = act(client, run, pstep("recreate-vms"))  # the undo of shutdown-vms
    assert rollback["recreated_now"] == 1
    assert running_on(client) == before
    assert len(client.vm_pool()) == 3

    act(client, run, pstep("shutdown-vms"))  # the run resumed: the re-created one goes too
    assert client.vm_pool() == ()
    again = act(client, run, pstep("recreate-vms"))
    assert again["recreated_now"] == 3
    assert running_on(client) == before


def test_a_recreate_whose_address_another_vm_took_stops_naming_it_and_frees_nothing(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    sim, client = cloud_32(tmp_path, oned_factory, hosts=3, vms=1)
    act(client, run, pstep("record-vms"))
    act(client, run, pstep("shutdown-vms", shutdown_timeout=60))
    net = sim.call("one.vn.info", 0)
    assert "<NAME>lan</NAME>" in net
    # while alice-db is down, a newcomer is given her address
    intruder = sim.call(
        "one.vm.allocate", 'NAME="newcomer"\nCPU=0.5\nMEMORY=64\nNIC=[NETWORK_ID=0, IP=10.0.0.1]'
    )

    with pytest.raises(UpgraderError) as caught:
        act(client, run, pstep("recreate-vms"))
    assert "alice-db" in str(caught.value) and "10.0.0.1" in str(caught.value)
    assert f"VM {intruder} (newcomer)" in str(caught.value)
    # asking oned 3.2 anyway would have freed the newcomer's lease: it still holds it
    assert [n.get("IP") for n in client.vm(intruder).nics] == ["10.0.0.1"]
    assert "10.0.0.1" in sim.call("one.vn.info", 0)


@pytest.mark.parametrize("version", ["3.2.1", "3.6.0"])
def test_drain_moves_every_vm_off_the_batch_and_never_onto_it_then_back(
    tmp_path: Path, oned_factory: Any, run: RunContext, version: str
) -> None:
    oned.seed(tmp_path / "sim", version, hosts=4, vms=8)
    sim = oned_factory(version, workdir=tmp_path / "sim", speed=100)
    client = OneClient(sim.url, sim.session)
    before = running_on(client)
    batch = ("node01", "node02")

    drained = act(client, run, pstep("drain-host", batch))
    now = running_on(client)
    assert set(now) == set(before)
    assert not {name for name, host in now.items() if host in batch}
    moved = {name for name, host in before.items() if host in batch}
    assert len(moved) == 4
    assert sorted(drained["drained"]) == list(batch)
    # each migration says how far the host's drain is, with an ETA from the pace so far
    said = [line for line in run.progress.__self__ if ": node01 -> " in line]  # type: ignore
    assert [re.search(r"\((drain \d+ %, \d of 2 VMs moved)", line).group(1) for line in said] == [
        "drain 0 %, 0 of 2 VMs moved",
        "drain 50 %, 1 of 2 VMs moved",
    ]
    assert re.search(r"ETA \d+s\)$", said[1])
    states = {h.name: h.state for h in client.host_pool()}
    assert states["node01"] is HostState.DISABLED and states["node02"] is HostState.DISABLED
    record = json.loads((run.run_dir / "drained-node01.json").read_text())["3.2-3.4"]
    assert {e["from"] for e in record.values()} == {"node01"}
    assert {e["to"] for e in record.values()} <= {"node03", "node04"}

    act(client, run, pstep("enable-host", batch))
    back = act(client, run, pstep("move-back-vms", batch))
    assert running_on(client) == before
    assert all(v == "back" for per_host in back["moved_back"].values() for v in per_host.values())
    assert act(client, run, pstep("move-back-vms", batch))["moved_back"] == back["moved_back"]
    assert all(h.is_enabled for h in client.host_pool())


def test_a_migration_hanging_past_its_budget_stops_with_the_host_enabled_and_vms_running(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=2)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100)
    client = OneClient(sim.url, sim.session)
    sim.rpc().lab.fault.set("migration-hang", "", {})
    victim = next(vm for vm in client.vm_pool() if vm.host == "node01")

    with pytest.raises(UpgraderError) as error:
        act(client, run, pstep("drain-host", ("node01",), migration_timeout=0.5))
    message = str(error.value)
    assert f"VM {victim.id} ({victim.name}) from node01 to node02" in message
    assert "did not finish within 0.5s" in message
    host = next(h for h in client.host_pool() if h.name == "node01")
    assert host.is_enabled
    assert all(vm.state is VmState.ACTIVE for vm in client.vm_pool())
    assert f"one-{victim.id}" in sim.rpc().lab.virt.list("node01")  # the guest never stopped

    sim.rpc().lab.fault.clear("migration-hang", "")
    resumed = act(client, run, pstep("drain-host", ("node01",)))  # the step run again
    assert resumed["drained"] == {"node01": {str(victim.id): "node02"}}
    assert set(running_on(client).values()) == {"node02"}


def test_enable_host_as_undo_gives_back_only_what_the_run_disabled(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=3, vms=0)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100)
    client = OneClient(sim.url, sim.session)
    sim.call("one.host.enable", 2, False)  # an operator took node03 out before the run

    done = act(client, run, pstep("disable-host", ("node02", "node03")))
    assert done == {"disabled": ["node02"], "already_disabled": ["node03"]}
    undone = act(client, run, pstep("enable-host"))  # an undo step carries no hosts
    assert undone == {"enabled": ["node02"], "kept_disabled": []}
    assert act(client, run, pstep("enable-host", ("node03",)))["kept_disabled"] == ["node03"]
    states = {h.name: h.is_enabled for h in client.host_pool()}
    assert states == {"node01": True, "node02": True, "node03": False}


def test_dry_run_changes_nothing(tmp_path: Path, oned_factory: Any, run: RunContext) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=2)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100)
    client = OneClient(sim.url, sim.session)
    act(client, run, pstep("record-vms"))
    before = (running_on(client), [(h.name, h.is_enabled) for h in client.host_pool()])
    run.dry_run = True

    shut = act(client, run, pstep("shutdown-vms"))
    assert set(shut["would_send"].values()) == {"shutdown"}
    drain = act(client, run, pstep("drain-host", ("node01",)))
    assert {e["to"] for e in drain["would_move"].values()} == {"node02"}
    assert act(client, run, pstep("disable-host", ("node02",)))["would_disable"] == ["node02"]
    assert act(client, run, pstep("recreate-vms"))["would_recreate"] == []  # all alive

    assert (running_on(client), [(h.name, h.is_enabled) for h in client.host_pool()]) == before
    assert sorted(p.name for p in run.run_dir.iterdir() if p.suffix == ".json") == ["vms.json"]


def test_the_executor_runs_enable_host_as_the_undo_of_disable_host_when_a_later_step_fails(
    tmp_path: Path, oned_factory: Any
) -> None:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim", speed=100)
    client = OneClient(sim.url, sim.session)
    undo = Step(
        "enable-hosts",
        "Enable the hosts again",
        "action",
        None,
        "enable-host",
        "all",
        None,
        False,
        (),
        (),
        1.0,
        True,
        None,
        False,
        {},
        True,
        False,
    )
    disable = replace(pstep("disable-host", ("node02",)), undo="enable-hosts")

    def boom(step: Any, ctx: Any) -> Mapping[str, Any]:
        assert not next(h for h in client.host_pool() if h.name == "node02").is_enabled
        raise UpgraderError("the package did not install")

    plan = Plan(
        "staging",
        "3.2",
        "3.4",
        (("3.2", "3.4"),),
        (disable, pstep("boom")),
        (),
        None,
        1.0,
        "f" * 64,
        "r" * 64,
    )
    run_dir = tmp_path / "run"
    with Journal.create(run_dir, "r1") as journal:
        journal.record(
            EventType.RUN_STARTED,
            run_id="r1",
            environment="staging",
            target="3.4",
            fingerprint=plan.fingerprint,
            dry_run=False,
            plan={"steps": [{"id": s.id, "idempotent": True} for s in plan.steps]},
        )
        ctx = RunContext(
            plan=plan,
            run_id="r1",
            run_dir=run_dir,
            journal=journal,
            run_playbook=lambda *a, **k: None,
            project_dir=run_dir,
            inventory="localhost,",
            gates={},
            actions={**build_actions(client), "boom": boom},
            undo_steps={"enable-hosts": undo},
            progress=lambda line: None,
        )
        with pytest.raises(UpgraderError, match="did not install"):
            execute(ctx)
    assert all(h.is_enabled for h in client.host_pool())
    done = [e for e in read_events(run_dir / "journal.jsonl") if e.type == EventType.UNDO_DONE]
    assert [e.get("outcome") for e in done] == [{"enabled": ["node02"], "kept_disabled": []}]
