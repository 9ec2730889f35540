"""A live migration hanging past the drain's budget stops the run with the drained host enabled
again and no VM lost (lab at 3.4.1; the budget lowered through a copied runbooks dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lab.fault_runs import (
    Run,
    cluster_holds,
    fault,
    fault_lab,
    gates_now,
    last_line,
    running_where,
    undo_outcomes,
    with_runbook_vars,
)
from tests.lab.test_lab import client, hosts_of
from tests.reliability import fault_matrix
from tests.support.oned import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]


def test_a_migration_past_its_budget_stops_the_drain_with_the_host_enabled_and_no_vm_lost(
    tmp_path: Path,
    tally_row: Any,
) -> None:
    with fault_lab(1, "3.4.1") as lab:
        first, other = hosts_of(lab, "staging")
        before = running_where(lab)
        holds = cluster_holds(lab)
        one = client(lab, "staging")
        hanging = min((vm for vm in one.vm_pool() if vm.host == first), key=lambda vm: vm.id)
        config = with_runbook_vars(lab, tmp_path, "drain", migration_timeout=20)
        with fault(lab, "slow-migration"):  # before the run: it outlives oned's restart
            run = Run(config, lab["dir"] / "runs", tmp_path)
            code, stderr = run.finish()
            events = run.events()
            matrix_row = fault_matrix.check("slow-migration", code, stderr, events)
            tally_row("fault_matrix", **matrix_row)
            assert matrix_row["check"] == "pass", matrix_row

            # 1: a step failed and the cloud was left in a described state (DESIGN.md 4)
            assert code == 1, stderr
            error = last_line(stderr)
            assert error.startswith(
                f"error: step 3.4-3.6/drain@1: live migration of VM {hanging.id} "
                f"({hanging.name}) from {first} to {other} did not finish within 20s; "
                "the VM is ACTIVE/MIGRATE (OpenNebula 3.x cannot cancel a live migration); "
                f"{first} enabled again (hint: "
            ), error
            assert f"onevm show {hanging.id}" in error
            assert f"upgrader resume {events[0]['run_id']}" in error
            failed = [e for e in events if e["type"] == "step_failed"]
            assert [e["step"] for e in failed] == ["3.4-3.6/drain@1"]

            # the host is back in service at once, though the VM is still migrating
            host = wait_for(
                lambda: next(
                    (h for h in one.host_pool() if h.name == first and h.state.name == "MONITORED"),
                    None,
                ),
                timeout=60,
                interval=1,
            )
            assert host.is_enabled
            assert one.vm(hanging.id).lcm_state.name == "MIGRATE"
            assert all(
                lcm == "RUNNING"
                for name, (lcm, _) in running_where(lab).items()
                if name != hanging.name
            )

            # undo: Pacemaker and Puppet as before; no rollback after the point of no return
            assert undo_outcomes(events) == [
                ("release-pacemaker", "undo_started"),
                ("release-pacemaker", "undo_done"),
                ("release-puppet", "undo_started"),
                ("release-puppet", "undo_done"),
            ]
            assert cluster_holds(lab) == holds

        # cleared: the migration ends, every VM runs once, none lost
        wait_for(
            lambda: all(lcm == "RUNNING" for lcm, _ in running_where(lab).values()),
            timeout=60,
            interval=1,
        )
        after = running_where(lab)
        assert sorted(after) == sorted(before)
        assert after[hanging.name] == ("RUNNING", other)
        assert {n: h for n, (_, h) in after.items() if n != hanging.name} == {
            n: h for n, (_, h) in before.items() if n != hanging.name
        }
        seen = gates_now(lab, "no-duplicate-vms", "vms-settled", "hosts-monitored")
        assert {g: r["verdict"] for g, r in seen.items()} == dict.fromkeys(seen, "pass"), seen
