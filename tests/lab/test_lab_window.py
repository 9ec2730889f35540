"""A maintenance window that closes in the middle of the node stage, on a lab of its own
(staging at 3.4.1, two hosts, four VMs all on the second host), through the real command line.

`upgrader run 3.6 --stage --window now+20m` has the runbook's estimates to go by (a fresh lab
has no earlier runs): the front end's steps and the first host's batch (an empty host: about 7
minutes) fit, the second host's batch (four live migrations each way: about 23 minutes) does
not fit in what is left, whatever the lab's real speed. So the run pauses before the second
batch, exit 3, with the hosts and VMs as they are, Pacemaker and Puppet still held, and says
when to resume. `upgrader resume --window now+2h` in the next window finishes, and the report
shows the pause."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.reliability import fault_matrix
from tests.support.oned import wait_for
from tests.support.report_checks import check_reports, reports_of
from upgrader.lab.lab import load_spec
from upgrader.opennebula import OneClient

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

LAB, SUBNET = side_lab("wn", 190)


@pytest.fixture(scope="module")
def window_lab() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", LAB)
    upgrader(
        "lab", "up", "--name", LAB, "--subnet", f"{SUBNET}.0/24", "--version", "3.4.1",
        "--hosts-staging", "2", "--hosts-production", "1", "--vms", "4",
    )  # fmt: skip
    lab_dir = Path("/var/lib/upgrader-lab") / LAB
    yield {
        "name": LAB,
        "spec": load_spec(LAB),
        "dir": lab_dir,
        "config": str(lab_dir / "upgrader.yml"),
    }
    upgrader("lab", "down", "--name", LAB)


def long_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, for a run of several minutes."""
    return subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )


def client(lab: dict[str, Any]) -> OneClient:
    front = lab["spec"].cloud_hosts("staging")[0]
    secret = (lab["dir"] / "staging.one_auth").read_text().strip()
    return OneClient(f"http://{front.ip}:2633/RPC2", secret, timeout=10)


def placement(one: OneClient) -> dict[str, str | None]:
    return {vm.name: vm.host for vm in one.vm_pool()}


def test_a_window_closing_in_the_node_stage_pauses_after_the_batch_and_resume_finishes(
    window_lab: dict[str, Any], tmp_path: Path, tally_row: Any
) -> None:
    config = window_lab["config"]
    first, second = (h.name for h in window_lab["spec"].cloud_hosts("staging"))
    one = client(window_lab)
    hid = {h.name: h.id for h in one.host_pool()}
    wait_for(lambda: all(vm.is_running for vm in one.vm_pool()), 60)
    for vm in one.vm_pool():  # every VM on the second host: its batch has the migrations
        if vm.host != second:
            one.call("one.vm.migrate", vm.id, hid[second], True)
    wait_for(lambda: all(vm.is_running and vm.host == second for vm in one.vm_pool()), 120)

    ran = long_cli("run", "3.6", "--stage", "--yes", "--config", config, "--window", "now+20m")
    assert ran.returncode == 3, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    run_id = re.search(r"upgrader resume (staging-\S+)`", ran.stderr).group(1)
    # the batch in progress finished; the next one did not start, and the line says why
    assert re.search(
        r"paused before 3\.4-3\.6/drain@2: the window closes at .* \(in [\dms]+\); "
        r"3\.4-3\.6/drain@2 \.\. 3\.4-3\.6/move-back@2 needs about 2[23]m",
        last,
    )
    assert "in a window (`--window now+2h` declares one)" in ran.stderr
    assert "Pacemaker" in ran.stderr and "Puppet" in ran.stderr  # held until the resume
    status = json.loads(upgrader("status", run_id, "--stage", "--json", "--config", config).stdout)
    assert (status["status"], status["next_step"]) == ("paused", "3.4-3.6/drain@2")
    journal = [
        json.loads(line)
        for line in (window_lab["dir"] / "runs" / run_id / "journal.jsonl").read_text().splitlines()
    ]
    matrix_row = fault_matrix.check("window closes", ran.returncode, ran.stderr, journal)
    tally_row("fault_matrix", **matrix_row)
    assert matrix_row["check"] == "pass", matrix_row
    done = [e["step"] for e in journal if e["type"] == "step_finished"]
    assert done[-5:] == [
        f"3.4-3.6/{s}@1" for s in ("drain", "disable", "upgrade-node", "enable", "move-back")
    ]
    assert not any(e["type"] == "step_started" and e["step"].endswith("@2") for e in journal)
    window = next(e for e in journal if e["type"] == "window")
    assert window["how"] == "ad hoc" and "now+20m" in window["window"]["source"]
    # the second host was not touched: still enabled, its VMs running where they were
    assert placement(one) == {vm.name: second for vm in one.vm_pool()}
    assert {h.name: h.state.name for h in one.host_pool()}[second] == "MONITORED"
    (tmp_path / "paused").mkdir()
    (tmp_path / "final").mkdir()
    paused = reports_of(upgrader, run_id, tmp_path / "paused", "--stage", "--config", config)
    check_reports(paused, kind="run", status="paused")
    assert paused.doc["pause"]["next_step"] == "3.4-3.6/drain@2"

    # outside any window (none configured, none declared) the lab is not limited: the resume
    # declares the next window itself, as a timer written by `upgrader schedule` would
    again = long_cli("resume", run_id, "--stage", "--config", config, "--window", "now+2h")
    assert again.returncode == 0, again.stderr
    assert re.search(rf"{run_id} resumes at 3\.4-3\.6/drain@2", again.stderr)
    assert f"{run_id} finished" in again.stderr
    assert "3.4-3.6/drain@1" not in again.stderr  # nothing done is done again
    assert str(one.detect_version()) == "3.6"
    wait_for(lambda: all(vm.is_running for vm in one.vm_pool()), 60)
    assert set(placement(one).values()) == {second}  # moved back after its upgrade
    assert first in hid
    final = reports_of(upgrader, run_id, tmp_path / "final", "--stage", "--config", config)
    check_reports(final, kind="run", status="succeeded")
    assert "paused" in final.md.lower() and "pause" in final.html.lower()
