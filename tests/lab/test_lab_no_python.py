"""A host without a Python Ansible can use (the lab fault no-python): ``upgrader run 3.6 --stage
--yes`` stops in preflight at the gate targets-supported, in one line naming that host, before
anything changed on the cloud; ``upgrader gates`` says the same; cleared, the gate passes.

On a lab of its own (the session lab never sees a run): 2 staging hosts, 4 VMs, 2012 hosts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab, upgrader
from tests.lab.fault_runs import Run, cluster_holds, gates_now, last_line, running_where
from tests.lab.test_lab import hosts_of
from tests.reliability import fault_matrix
from upgrader.lab import hosts as hs
from upgrader.lab.lab import load_spec

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

LAB, _SUBNET = side_lab("np", 70)


@pytest.fixture(scope="module")
def np_lab() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", LAB)
    upgrader(
        "lab", "up", "--name", LAB, "--subnet", f"{_SUBNET}.0/24",
        "--hosts-staging", "2", "--hosts-production", "1", "--vms", "4",
    )  # fmt: skip
    try:
        lab = {"name": LAB, "spec": load_spec(LAB), "dir": Path("/var/lib/upgrader-lab") / LAB}
        lab["config"] = lab["dir"] / "upgrader.yml"
        yield lab
    finally:
        upgrader("lab", "down", "--name", LAB)


def packages(lab: dict[str, Any]) -> dict[str, str]:
    """host -> the opennebula packages dpkg has there."""
    return {
        h: hs.enter(
            lab["dir"], h, "dpkg-query", "--show", "opennebula", "opennebula-node", check=False
        ).stdout
        for h in hosts_of(lab, "staging")
    }


def test_a_host_without_python_stops_the_run_in_preflight_naming_it(
    np_lab: dict[str, Any], tmp_path: Path, tally_row: Any
) -> None:
    lab = np_lab
    host = hosts_of(lab, "staging")[-1]
    before = (running_where(lab), cluster_holds(lab), packages(lab))
    assert gates_now(lab, "targets-supported")["targets-supported"]["verdict"] == "pass"

    injected = upgrader("lab", "fault", "no-python", "--name", lab["name"], "--cloud", "staging")
    assert injected.stdout == f"no-python injected on {host}\n"
    try:
        # upgrader gates: the one host, in one line, and what to do about it
        gate = gates_now(lab, "targets-supported")["targets-supported"]
        assert gate["verdict"] == "fail", gate
        summary = gate["evidence"]["summary"]
        assert summary.startswith(f"{host}: "), summary
        assert "\n" not in summary and "python" in summary.lower(), summary
        others = [h for h in hosts_of(lab, "staging") if h != host]
        assert not any(re.search(rf"\b{h}\b", summary) for h in others), summary

        # upgrader run: stops before its first step, with the same line
        run = Run(lab["config"], lab["dir"] / "runs", tmp_path)
        code, stderr = run.finish()
        events = run.events()
    finally:
        upgrader(
            "lab", "fault", "no-python", "--name", lab["name"], "--cloud", "staging", "--clear"
        )
    row = fault_matrix.check("no-python", code, stderr, events)
    tally_row("fault_matrix", **row)
    assert row["check"] == "pass", row
    line = last_line(stderr)
    assert line.startswith(
        f"error: gate targets-supported fail before step 3.2-3.4/preflight: {host}: "
    ), line
    assert [e for e in events if e["type"] == "step_started"] == []
    # nothing changed: the VMs where they ran, no hold taken, the packages as they were
    assert (running_where(lab), cluster_holds(lab), packages(lab)) == before

    # cleared: every host can be managed again
    assert gates_now(lab, "targets-supported")["targets-supported"]["verdict"] == "pass"
