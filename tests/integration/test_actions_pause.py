"""suspend-vms and resume-vms (the storage switch-over) against the oned simulator.

Every version's oned takes the same actions; the VMs come back on the hosts they left, and
a VM the operator had suspended before the run stays suspended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_actions import NO_SCHEDULER, act, pstep
from tests.integration.test_actions import run as run  # the fixture, re-exported
from tests.support import oned
from upgrader.errors import UpgraderError
from upgrader.opennebula import OneClient, VmState
from upgrader.run.context import RunContext


def cloud(
    tmp_path: Path, oned_factory: Any, version: str, speed: float = 100
) -> tuple[Any, OneClient]:
    oned.seed(tmp_path / "sim", version, hosts=2, vms=4)
    sim = oned_factory(version, workdir=tmp_path / "sim", speed=speed, extra=NO_SCHEDULER)
    client = OneClient(sim.url, sim.session)
    oned.wait_for(lambda: all(vm.is_running for vm in client.vm_pool()))
    return sim, client


def where(client: OneClient) -> dict[str, tuple[str | None, str]]:
    return {
        vm.name: (vm.host, "RUNNING" if vm.is_running else vm.state.name) for vm in client.vm_pool()
    }


@pytest.mark.parametrize("version", ["3.2.1", "3.4.1", "3.6.0"])
def test_suspend_stops_every_running_vm_and_resume_brings_each_back_on_its_host(
    tmp_path: Path, oned_factory: Any, run: RunContext, version: str
) -> None:
    sim, client = cloud(tmp_path, oned_factory, version)
    before = where(client)
    parked = client.vm_pool()[0]
    sim.call("one.vm.action", "suspend", parked.id)  # the operator's, before the run
    oned.wait_for(lambda: client.vm(parked.id).state is VmState.SUSPENDED)

    done = act(client, run, pstep("suspend-vms", hop="ocfs2-nfs"))
    assert len(done["suspended"]) == 3 and parked.id not in done["suspended"]
    assert {vm.state for vm in client.vm_pool()} == {VmState.SUSPENDED}
    recorded = json.loads((run.run_dir / "suspended.json").read_text())["vms"]
    assert all(info["sent"] == ["suspend"] for info in recorded.values())

    again = act(client, run, pstep("suspend-vms", hop="ocfs2-nfs"))  # resumed step
    assert again["suspended"] == done["suspended"]
    assert all(
        info["sent"] == ["suspend"]
        for info in json.loads((run.run_dir / "suspended.json").read_text())["vms"].values()
    )

    back = act(client, run, pstep("resume-vms", hop="ocfs2-nfs"))
    assert back["resumed"] == done["suspended"]
    after = where(client)
    assert after[parked.name] == (before[parked.name][0], "SUSPENDED")  # not ours to resume
    assert {k: v for k, v in after.items() if k != parked.name} == {
        k: v for k, v in before.items() if k != parked.name
    }
    assert act(client, run, pstep("resume-vms", hop="ocfs2-nfs"))["sent"] == []


def test_resume_without_a_suspend_in_this_run_touches_nothing(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    _, client = cloud(tmp_path, oned_factory, "3.2.1")
    before = where(client)
    assert act(client, run, pstep("resume-vms", hop="ocfs2-nfs")) == {"resumed": []}
    assert where(client) == before


def test_a_suspend_past_its_budget_names_the_vms_still_running(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    sim, client = cloud(tmp_path, oned_factory, "3.2.1", speed=2)  # a save takes seconds
    sim.call("one.vm.action", "suspend", client.vm_pool()[0].id)
    with pytest.raises(UpgraderError) as failed:
        act(client, run, pstep("suspend-vms", hop="ocfs2-nfs", suspend_timeout=0.01))
    assert "not SUSPENDED within the budget" in str(failed.value)
    assert "SAVE_SUSPEND" in str(failed.value)
    assert "resumes the suspended VMs" in failed.value.hint


def test_stop_with_stop_frees_the_hosts_and_resume_deploys_each_vm_where_it_ran(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    _, client = cloud(tmp_path, oned_factory, "3.4.1")
    before = where(client)
    done = act(client, run, pstep("suspend-vms", hop="ocfs2-nfs", stop_with="stop"))
    assert len(done["suspended"]) == 4
    assert {vm.state for vm in client.vm_pool()} == {VmState.STOPPED}
    assert all(h.share.running_vms == 0 for h in client.host_pool())  # no writes anywhere
    back = act(client, run, pstep("resume-vms", hop="ocfs2-nfs"))
    assert back["deployed"] == done["suspended"]  # no scheduler here: we put them back
    assert where(client) == before


def test_an_unknown_stop_with_is_refused_before_any_vm_is_touched(
    tmp_path: Path, oned_factory: Any, run: RunContext
) -> None:
    _, client = cloud(tmp_path, oned_factory, "3.2.1")
    before = where(client)
    with pytest.raises(UpgraderError, match="stop_with must be suspend or stop, not 'poweroff'"):
        act(client, run, pstep("suspend-vms", hop="ocfs2-nfs", stop_with="poweroff"))
    assert where(client) == before
    assert not (run.run_dir / "suspended.json").exists()


def _oned_loses(sim: Any, client: OneClient, run: RunContext, host: str, lost: bool) -> None:
    """The host goes (or comes back), and oned's monitoring has seen it."""
    sim.lab(
        "lab.fault.set" if lost else "lab.fault.clear",
        "host-unreachable",
        host,
        *([{}] if lost else []),
    )
    if lost:
        oned.wait_for(
            lambda: any(h.name == host and h.state.name == "ERROR" for h in client.host_pool())
        )
    else:
        oned.wait_for(lambda: all(h.state.name == "MONITORED" for h in client.host_pool()))


def _run_loses(sim: Any, client: OneClient, run: RunContext, host: str, lost: bool) -> None:
    """The run's play could not reach the host a moment ago (or a later play reached it);
    oned monitors it as before: a real 3.x oned notices only at its next monitoring."""
    if lost:
        run.unreachable.add(host)  # what the executor keeps from an unreachable result
    else:
        run.unreachable.discard(host)
    assert {h.name: h.state.name for h in client.host_pool()}[host] == "MONITORED"


@pytest.mark.parametrize(
    ("lose", "who"),
    [(_oned_loses, "oned cannot"), (_run_loses, "this run could not")],
    ids=["oned-knows", "only-the-run-knows"],
)
def test_resume_leaves_suspended_the_vms_of_a_lost_host_and_a_second_suspend_takes_the_rest(
    tmp_path: Path, oned_factory: Any, run: RunContext, lose: Any, who: str
) -> None:
    # The host lost during the storage switch: resuming its VMs there would FAIL them. They
    # stay SUSPENDED (resumable once the host is back), the others run, and the action says
    # which host and VMs at once instead of waiting out its budget.
    sim, client = cloud(tmp_path, oned_factory, "3.4.1")
    before = where(client)
    done = act(client, run, pstep("suspend-vms", hop="ocfs2-nfs"))
    assert len(done["suspended"]) == 4
    lost = "node02"
    lose(sim, client, run, lost, True)
    with pytest.raises(
        UpgraderError,
        match=rf"cannot run again: {who} reach their host "
        rf"\({lost}\)",
    ) as info:
        act(client, run, pstep("resume-vms", hop="ocfs2-nfs", resume_timeout=600))
    assert f"bring {lost} back" in (info.value.hint or "")
    after = where(client)
    for name, (host, _) in before.items():
        assert after[name] == (host, "SUSPENDED" if host == lost else "RUNNING"), after
    # the run's resume starts the sequence again: the VMs that run again are suspended again
    act(client, run, pstep("suspend-vms", hop="ocfs2-nfs"))
    assert {vm.state for vm in client.vm_pool()} == {VmState.SUSPENDED}
    lose(sim, client, run, lost, False)
    back = act(client, run, pstep("resume-vms", hop="ocfs2-nfs"))
    assert back["resumed"] == done["suspended"]
    assert where(client) == before
