"""libvirtd crashing on a hypervisor during the node stage, while oned restarts its VMs on the
upgraded host: the run stops at no-duplicate-vms naming the VMs and both hosts (lab at 3.4.1)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import upgrader
from tests.lab.fault_runs import (
    Run,
    fault_lab,
    finish_then_clear,
    gates_now,
    is_event,
    last_line,
)
from tests.lab.test_lab import client, hosts_of
from tests.reliability import fault_matrix
from tests.support.oned import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]


def test_libvirtd_crashing_during_the_node_stage_stops_the_run_at_no_duplicate_vms(
    tmp_path: Path,
    tally_row: Any,
) -> None:
    with fault_lab(3, "3.4.1") as lab:
        upgraded, crashing = hosts_of(lab, "staging")
        one = client(lab, "staging")
        doubled = sorted(vm.id for vm in one.vm_pool() if vm.host == crashing)
        names = {vm.id: vm.name for vm in one.vm_pool()}
        crashed = threading.Event()

        def crash() -> None:
            # The moment of the incident: the first host is upgraded and has its VMs back;
            # libvirtd on the other one dies, oned's host-error hook starts that host's VMs
            # on the first one while their old domains keep running. The run is frozen from
            # the end of move-back until oned shows that, so the next gate round meets the
            # duplicate on a slow machine as on a fast one.
            with run.frozen():
                upgrader(
                    "lab",
                    "fault",
                    "libvirtd-crash",
                    "--name",
                    lab["name"],
                    "--cloud",
                    "staging",
                    "--host",
                    crashing,
                )
                crashed.set()
                wait_for(
                    lambda: all(
                        one.vm(v).lcm_state.name == "RUNNING" and one.vm(v).host == upgraded
                        for v in doubled
                    ),
                    timeout=60,
                    interval=0.5,
                )

        run = Run(lab["config"], lab["dir"] / "runs", tmp_path)
        run.when(is_event("step_finished", "3.4-3.6/move-back@1"), crash)
        code, stderr = finish_then_clear(
            run, crashed, lab, "libvirtd-crash", "--host", crashing, join=90
        )
        events = run.events()
        assert crashed.is_set()
        matrix_row = fault_matrix.check("libvirtd-crash", code, stderr, events)
        tally_row("fault_matrix", **matrix_row)
        assert matrix_row["check"] == "pass", matrix_row

        assert code == 1, stderr
        # Each doubled VM is named: running on both hosts or, when the gate round had read the
        # upgraded host's libvirt just before the freeze (a gather already under way when the
        # step ended), running on the crashed host where oned no longer places it.
        both = re.escape(" and ".join(sorted((upgraded, crashing))))
        seen = "; ".join(
            rf"VM {v} {re.escape(names[v])} runs on ({both}|{re.escape(crashing)} but oned says "
            rf"{re.escape(upgraded)})"
            for v in doubled
        )
        assert re.match(
            rf"error: gate no-duplicate-vms fail after step 3\.4-3\.6/move-back@1: {seen} "
            r"\(hint: a VM running twice corrupts its disk",
            last_line(stderr),
        ), last_line(stderr)
        verdicts = [e for e in events if e["type"] == "gate_verdict"]
        assert [(e["gate"], e["step"]) for e in verdicts if e["verdict"] != "pass"] == [
            ("no-duplicate-vms", "3.4-3.6/move-back@1")
        ]
        evidence = verdicts[-1]["evidence"]
        caught = {d["id"]: d["hosts"] for d in evidence["duplicates"]}
        caught |= {m["id"]: m["hosts"] for m in evidence["misplaced"] if m["oned_host"] == upgraded}
        assert sorted(caught) == doubled, evidence
        assert all(caught[v] in (sorted((upgraded, crashing)), [crashing]) for v in doubled)
        # every step before the failing gate finished, each with its duration
        started = [e["step"] for e in events if e["type"] == "step_started"]
        finished = {e["step"]: e["duration"] for e in events if e["type"] == "step_finished"}
        assert started[-1] == "3.4-3.6/move-back@1"
        assert started == list(finished)
        assert all(isinstance(d, float | int) and d >= 0 for d in finished.values())

        # cleared (libvirtd back, the copies oned does not place destroyed): one of each
        seen = gates_now(lab, "no-duplicate-vms", "libvirtd-alive")
        assert {g: r["verdict"] for g, r in seen.items()} == dict.fromkeys(seen, "pass"), seen
