"""vms-unchanged inside a run: the snapshot before the step is journaled, the gate after the
step compares against it, and a resumed step keeps the snapshot of its first start."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support import oned
from upgrader.errors import GateFailedError
from upgrader.gates.catalogue import build_gates
from upgrader.journal.store import EventType, Journal, read_events, replay
from upgrader.opennebula import OneClient
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import GateSpec
from upgrader.run.context import RunContext
from upgrader.run.executor import execute


def step(step_id: str, action: str) -> PlannedStep:
    return PlannedStep(
        step_id,
        "3.2-3.4",
        step_id,
        step_id,
        "action",
        None,
        action,
        "all",
        (),
        None,
        1.0,
        True,
        None,
        False,
        (),
        (GateSpec("vms-unchanged", {}),),
    )


def plan_of(*steps: PlannedStep) -> Plan:
    return Plan(
        "staging", "3.2", "3.4", (("3.2", "3.4"),), steps, (), None, 1.0, "f" * 64, "r" * 64
    )


def started(journal: Journal, plan: Plan) -> Journal:
    journal.record(
        EventType.RUN_STARTED,
        run_id="r1",
        environment="staging",
        target="3.4",
        fingerprint=plan.fingerprint,
        dry_run=False,
        plan={"steps": [{"id": s.id, "idempotent": True} for s in plan.steps]},
    )
    return journal


def context(
    run_dir: Path,
    journal: Journal,
    client: OneClient,
    plan: Plan,
    actions: Mapping[str, Any],
    lines: list[str],
) -> RunContext:
    return RunContext(
        plan=plan,
        run_id="r1",
        run_dir=run_dir,
        journal=journal,
        run_playbook=lambda *a, **k: None,
        project_dir=run_dir,
        inventory="localhost,",
        gates=build_gates(client),
        actions=actions,
        undo_steps={},
        progress=lines.append,
    )


def test_a_vm_lost_during_a_step_fails_vms_unchanged_with_its_identity(tmp_path, oned_factory):
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=3)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim")
    client = OneClient(sim.url, sim.session)
    victim = client.vm_pool()[0]

    def lose_a_vm(s: PlannedStep, ctx: RunContext) -> Mapping[str, Any]:
        sim.call("one.vm.action", "finalize", victim.id)
        return {"finalized": victim.id}

    lines: list[str] = []
    run_dir = tmp_path / "run"
    plan = plan_of(step("keep", "noop"), step("lose", "lose"))
    with Journal.create(run_dir, "r1") as journal:
        started(journal, plan)
        ctx = context(
            run_dir, journal, client, plan, {"noop": lambda s, c: {}, "lose": lose_a_vm}, lines
        )
        with pytest.raises(GateFailedError) as error:  # the gate stops the run
            execute(ctx)
    assert "gate vms-unchanged fail after step lose" in str(error.value)
    events = read_events(run_dir / "journal.jsonl")
    snapshots = [e for e in events if e.type == EventType.SNAPSHOT]
    assert [(e.get("step"), e.get("what")) for e in snapshots] == [
        ("keep", "vms-unchanged"),
        ("lose", "vms-unchanged"),
    ]
    assert {vm["id"] for vm in snapshots[1].get("data")} == {vm.id for vm in client.vm_pool()} | {
        victim.id
    }
    verdict = [e for e in events if e.type == EventType.GATE_VERDICT]
    assert [(e.get("step"), e.get("verdict")) for e in verdict] == [
        ("keep", "pass"),
        ("lose", "fail"),
    ]
    missing = verdict[1].get("evidence")["missing"]
    assert missing == [
        {"id": victim.id, "name": victim.name, "owner": victim.uname, "host": victim.host}
    ]
    assert "[gate/vms-unchanged] snapshot taken before lose" in lines


def test_a_resumed_step_is_judged_against_the_snapshot_of_its_first_start(tmp_path, oned_factory):
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=2)
    sim = oned_factory("3.2.1", workdir=tmp_path / "sim")
    client = OneClient(sim.url, sim.session)
    victim = client.vm_pool()[0]
    run_dir = tmp_path / "run"
    plan = plan_of(step("lose", "lose"))

    def crash(s: PlannedStep, ctx: RunContext) -> Mapping[str, Any]:
        sim.call("one.vm.action", "finalize", victim.id)  # the VM is lost, then we crash
        raise KeyboardInterrupt

    with Journal.create(run_dir, "r1") as journal:
        started(journal, plan)
        with pytest.raises(KeyboardInterrupt):
            execute(context(run_dir, journal, client, plan, {"lose": crash}, []))
    state = replay(read_events(run_dir / "journal.jsonl"))
    assert ("lose", "vms-unchanged") in state.snapshots
    with Journal.open(run_dir) as journal:
        ctx = context(run_dir, journal, client, plan, {"lose": lambda s, c: {}}, [])
        ctx.snapshots.update(state.snapshots)
        # a fresh snapshot at resume would miss the VM lost before the crash, and pass
        with pytest.raises(GateFailedError) as error:
            execute(ctx, start_at="lose", attempt_of=dict(state.attempts))
    assert "gate vms-unchanged fail after step lose" in str(error.value)
    events = read_events(run_dir / "journal.jsonl")
    assert len([e for e in events if e.type == EventType.SNAPSHOT]) == 1
