"""Both upgrade runbooks define ``restore-frontend``, each with its own previous version: a
failure in the 3.2 -> 3.4 hop of a run to 3.6 must restore 3.2.1, not 3.4.1 (the undo is
the one of the hop whose step registered it). Real runbooks, recorded playbook runner."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.journals import record_start
from upgrader.ansible_adapter.outcome import PlaybookOutcome, PlaybookStatus
from upgrader.config.site import PROJECT_DIR
from upgrader.errors import UpgraderError
from upgrader.journal.store import EventType, Journal, read_events
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook import load_runbook
from upgrader.run.context import RunContext, undo_steps
from upgrader.run.executor import execute

HOPS = (("3.2", "3.4"), ("3.4", "3.6"))


def runbooks() -> dict[tuple[str, str], Any]:
    return {
        hop: load_runbook(
            PROJECT_DIR / "runbooks" / f"opennebula-{hop[0]}-to-{hop[1]}.yml",
            playbooks_dir=PROJECT_DIR / "playbooks",
        )
        for hop in HOPS
    }


def playbook_step(
    hop: str, name: str, *, undo: str | None = None, ponr: bool = False
) -> PlannedStep:
    return PlannedStep(
        f"{hop}/{name}",
        hop,
        name,
        name,
        "playbook",
        f"{name}.yml",
        None,
        "frontends",
        (),
        None,
        1.0,
        True,
        undo,
        ponr,
        (),
        (),
    )


def test_each_hop_keeps_its_own_undo_steps() -> None:
    steps = undo_steps(runbooks())
    assert steps["3.2-3.4/restore-frontend"].vars["one_previous_package_version"] == "3.2.1-1"
    assert steps["3.4-3.6/restore-frontend"].vars["one_previous_package_version"] == "3.4.1-1"
    assert "recreate-vms-rollback" in steps and "3.2-3.4/recreate-vms-rollback" in steps


@pytest.mark.parametrize(
    ("failing", "restored"),
    [("3.2-3.4/upgrade-frontend", "3.2.1-1"), ("3.4-3.6/upgrade-frontend", "3.4.1-1")],
)
def test_a_failure_before_a_hops_database_upgrade_restores_that_hops_previous_version(
    tmp_path: Path, failing: str, restored: str
) -> None:
    steps = tuple(
        s
        for hop in ("3.2-3.4", "3.4-3.6")
        for s in (
            playbook_step(hop, "backup", undo="restore-frontend"),
            playbook_step(hop, "upgrade-frontend", ponr=True),
        )
    )
    steps = steps[: [s.id for s in steps].index(failing) + 1]
    played: list[tuple[str, Mapping[str, Any]]] = []

    def run_playbook(call: Any, **_: Any) -> PlaybookOutcome:
        played.append((call.step_id, call.extra_vars))
        status = PlaybookStatus.FAILED if call.step_id == failing else PlaybookStatus.SUCCESSFUL
        return PlaybookOutcome(status, 2 if call.step_id == failing else 0, {}, (), (), (), (), 0.1)

    plan = Plan("staging", "3.2", "3.6", HOPS, steps, (), steps[1].id, 4.0, "f" * 64, "r" * 64)
    with Journal.create(tmp_path / "run", "r1") as journal:
        record_start(journal, plan)
        ctx = RunContext(
            plan=plan,
            run_id="r1",
            run_dir=tmp_path / "run",
            journal=journal,
            run_playbook=run_playbook,
            project_dir=tmp_path,
            inventory="localhost,",
            gates={},
            actions={},
            undo_steps=undo_steps(runbooks()),
            progress=lambda line: None,
        )
        with pytest.raises(UpgraderError):
            execute(ctx)
    undo = [(sid, extra) for sid, extra in played if sid == "restore-frontend"]
    assert [extra["one_previous_package_version"] for _, extra in undo] == [restored]
    registered = [
        e
        for e in read_events(tmp_path / "run" / "journal.jsonl")
        if e.type == EventType.UNDO_REGISTERED
    ]
    assert registered[0].get("description").startswith("Back to oned 3.2.1")
