"""The front end's package gone after the backup, before onedb upgrade: the run rolls back to
3.2.1 and every VM runs again on its host (lab at 3.2.1, `run 3.6`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import upgrader
from tests.lab.fault_runs import (
    Run,
    cluster_holds,
    fault_lab,
    finish_then_clear,
    gates_now,
    is_event,
    last_line,
    running_where,
    undo_outcomes,
)
from tests.lab.test_lab import hosts_of
from tests.reliability import fault_matrix
from tests.support.report_checks import check_reports, reports_of
from upgrader.lab import hosts as hs

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]


def test_a_package_gone_after_the_backup_rolls_back_to_321_with_every_vm_running(
    tmp_path: Path,
    tally_row: Any,
) -> None:
    with fault_lab(2, "3.2.1") as lab:
        before = running_where(lab)
        assert all(lcm == "RUNNING" for lcm, _ in before.values())
        holds = cluster_holds(lab)
        injected = threading.Event()

        def take_the_package() -> None:
            upgrader("lab", "fault", "package-missing", "--name", lab["name"], "--cloud", "staging")
            injected.set()

        run = Run(lab["config"], lab["dir"] / "runs", tmp_path)
        run.when(is_event("step_finished", "3.2-3.4/backup"), take_the_package)
        code, stderr = finish_then_clear(run, injected, lab, "package-missing")
        events = run.events()
        assert injected.is_set()
        matrix_row = fault_matrix.check("package-missing", code, stderr, events)
        tally_row("fault_matrix", **matrix_row)
        assert matrix_row["check"] == "pass", matrix_row

        assert code == 1, stderr
        fronts = ", ".join(hosts_of(lab, "staging"))
        error = last_line(stderr)
        assert error.startswith(
            "error: step 3.2-3.4/upgrade-frontend: playbook frontend-upgrade.yml failed"
        ), error
        assert f"; failed hosts: {fronts} (hint: " in error
        failed = next(e for e in events if e["type"] == "step_failed")
        assert failed["step"] == "3.2-3.4/upgrade-frontend"
        assert "opennebula=3.4.1-1" in json.dumps(failed["evidence"]["stdout_tail"])
        # the rollback, newest first: the old front end, then the VMs, then the holds
        assert undo_outcomes(events) == [
            ("restore-frontend", "undo_started"),
            ("restore-frontend", "undo_done"),
            ("recreate-vms-rollback", "undo_started"),
            ("recreate-vms-rollback", "undo_done"),
            ("release-pacemaker", "undo_started"),
            ("release-pacemaker", "undo_done"),
            ("release-puppet", "undo_started"),
            ("release-puppet", "undo_done"),
        ]

        # oned 3.2.1 answers, on a 3.2.1 database
        version = gates_now(lab, "oned-version")["oned-version"]
        assert version["verdict"] == "pass", version
        assert (version["evidence"]["probed_series"], version["evidence"]["onedb_version"]) == (
            "3.2",
            "3.2.1",
        )
        # every VM of before runs again, by name, on its host, once
        assert running_where(lab) == before
        seen = gates_now(lab, "no-duplicate-vms", "vms-settled", "hosts-monitored")
        assert {g: r["verdict"] for g, r in seen.items()} == dict.fromkeys(seen, "pass"), seen
        assert cluster_holds(lab) == holds
        # the report says what failed, what was undone and what to do next
        run_id = events[0]["run_id"]
        report = reports_of(upgrader, run_id, tmp_path, "--stage", "--config", lab["config"])
        check_reports(report, kind="run", status="failed")
        assert "restore-frontend" in report.md and "restore-frontend" in report.html
        # and --clear gave the repository its packages back
        offered = hs.enter(
            lab["dir"],
            hosts_of(lab, "staging")[0],
            "sh",
            "-c",
            "apt-get update -qq && apt-cache madison opennebula",
        ).stdout
        assert {"3.2.1-1", "3.4.1-1", "3.6.0-1"} <= {
            line.split("|")[1].strip() for line in offered.splitlines()
        }
