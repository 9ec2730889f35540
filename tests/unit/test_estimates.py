"""Step estimates: the runbook's until a step has run, then what it measured, scaled to what
the step touches now; batches and sequences are judged as one unit."""

from __future__ import annotations

from pathlib import Path

from upgrader.journal.store import EventType, Journal
from upgrader.plan.estimates import measured, refine, unit_of, units
from upgrader.plan.model import Plan, PlannedStep


def planned(
    sid: str,
    estimate: float,
    hosts: int = 0,
    vms: int = 0,
    *,
    start: bool = False,
    end: bool = False,
) -> PlannedStep:
    names = tuple(f"n{i}" for i in range(hosts)) if "@" in sid else ()
    return PlannedStep(
        sid,
        "3.4-3.6",
        sid.partition("@")[0],
        sid,
        "action",
        None,
        sid,
        "all",
        names,
        None,
        estimate,
        True,
        None,
        False,
        (),
        (),
        sequence_start=start,
        sequence_end=end,
        extent={"hosts": hosts, "vms": vms},
    )


def plan_of(*steps: PlannedStep) -> Plan:
    return Plan(
        "production", "3.4", "3.6", (("3.4", "3.6"),), steps, (), None, 0.0, "f" * 64, "r" * 64
    )


def journal(
    runs: Path,
    run_id: str,
    env: str,
    steps: list[tuple[str, float, int, int]],
    *,
    dry_run: bool = False,
) -> None:
    with Journal.create(runs / run_id, run_id) as j:
        j.record(
            EventType.RUN_STARTED,
            run_id=run_id,
            environment=env,
            target="3.6",
            fingerprint="r" * 64,
            dry_run=dry_run,
            plan={"steps": []},
        )
        for step, duration, hosts, vms in steps:
            j.record(
                EventType.STEP_STARTED, step=step, attempt=1, extent={"hosts": hosts, "vms": vms}
            )
            j.record(EventType.STEP_FINISHED, step=step, duration=duration)


def test_without_history_the_runbook_figure_counts(tmp_path):
    plan = plan_of(planned("3.4-3.6/drain@1", 600, 1, 3))
    got = refine(plan, measured(tmp_path))
    assert got["3.4-3.6/drain@1"].seconds == 600
    assert got["3.4-3.6/drain@1"].source == "runbook"


def test_a_rehearsed_drain_is_scaled_to_the_vms_production_has(tmp_path):
    # staging drained a host of 3 VMs in 40 s; production's host has 11
    journal(
        tmp_path,
        "staging-1",
        "staging",
        [("3.4-3.6/drain@1", 40.0, 1, 3), ("3.4-3.6/backup", 12.0, 0, 3)],
    )
    plan = plan_of(planned("3.4-3.6/drain@2", 600, 1, 11), planned("3.4-3.6/backup", 300))
    got = refine(plan, measured(tmp_path), "staging")
    assert got["3.4-3.6/drain@2"].seconds == 40 * 12 / 4
    assert "staging-1" in got["3.4-3.6/drain@2"].source
    assert got["3.4-3.6/backup"].seconds == 12 * 1 / 4  # the whole-cloud step: by its VMs too


def test_the_rehearsal_is_preferred_and_the_slowest_recent_run_counts(tmp_path):
    journal(tmp_path, "production-1", "production", [("3.4-3.6/backup", 500.0, 0, 0)])
    journal(tmp_path, "staging-1", "staging", [("3.4-3.6/backup", 20.0, 0, 0)])
    journal(tmp_path, "staging-2", "staging", [("3.4-3.6/backup", 30.0, 0, 0)])
    plan = plan_of(planned("3.4-3.6/backup", 300))
    assert refine(plan, measured(tmp_path), "staging")["3.4-3.6/backup"].seconds == 30
    assert refine(plan, measured(tmp_path), None)["3.4-3.6/backup"].seconds == 500


def test_dry_runs_and_the_run_itself_measured_nothing(tmp_path):
    journal(tmp_path, "staging-dry", "staging", [("3.4-3.6/backup", 1.0, 0, 0)], dry_run=True)
    journal(tmp_path, "staging-now", "staging", [("3.4-3.6/backup", 2.0, 0, 0)])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "journal.jsonl").write_text("not json\n")
    assert measured(tmp_path, exclude="staging-now") == {}


def test_a_host_batch_and_a_sequence_are_one_unit_each():
    plan = plan_of(
        planned("hold", 60),
        planned("drain@1", 60, 1),
        planned("up@1", 60, 1),
        planned("drain@2", 60, 1),
        planned("up@2", 60, 1),
        planned("suspend", 60, start=True),
        planned("copy", 60),
        planned("resume", 60, end=True),
        planned("last", 60),
    )
    assert units(plan) == [(1, 3), (3, 5), (5, 8)]
    assert [s.id for s in unit_of(plan, "drain@2")] == ["drain@2", "up@2"]
    assert unit_of(plan, "up@2") == ()  # judged with its batch's first step
    assert [s.id for s in unit_of(plan, "suspend")] == ["suspend", "copy", "resume"]
    assert [s.id for s in unit_of(plan, "last")] == ["last"]
