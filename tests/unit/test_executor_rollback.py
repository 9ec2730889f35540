"""Rollback undos (restore the old database) run only for a failure before the point of no
return; release undos (Puppet, Pacemaker) always run, at the end of a good run too."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.journals import record_start
from upgrader.errors import UpgraderError
from upgrader.journal.store import EventType, Journal, read_events, replay
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Step
from upgrader.run.context import RunContext
from upgrader.run.executor import execute


def planned(sid: str, *, undo: str | None = None, ponr: bool = False) -> PlannedStep:
    return PlannedStep(
        sid,
        "3.2-3.4",
        sid,
        sid,
        "action",
        None,
        sid,
        "all",
        (),
        None,
        1.0,
        True,
        undo,
        ponr,
        (),
        (),
    )


def undo_step(sid: str, *, rollback: bool) -> Step:
    return Step(
        sid,
        sid,
        "action",
        None,
        sid,
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
        rollback=rollback,
    )


STEPS = (
    planned("hold", undo="release"),
    planned("backup", undo="restore"),
    planned("upgrade", ponr=True),
    planned("after"),
)


# Two hops: each backup's restore is guarded by its own hop's database upgrade.
TWO_HOPS = (
    planned("hold", undo="release"),
    planned("backup", undo="restore"),
    planned("upgrade", ponr=True),
    planned("backup2", undo="restore2"),
    planned("upgrade2", ponr=True),
    planned("after"),
)


def run(
    tmp_path: Path, failing: str | None, steps: tuple[PlannedStep, ...] = STEPS
) -> tuple[list[str], list[str]]:
    done: list[str] = []

    def act(name: str):
        def action(step: Any, ctx: RunContext) -> Mapping[str, Any]:
            if name == failing:
                raise UpgraderError(f"{name} broke")
            done.append(name)
            return {}

        return action

    plan = Plan(
        "staging", "3.2", "3.4", (("3.2", "3.4"),), steps, (), "upgrade", 4.0, "f" * 64, "r" * 64
    )
    names = [s.id for s in steps] + ["release", "restore", "restore2"]
    lines: list[str] = []
    with Journal.create(tmp_path / "run", "r1") as journal:
        record_start(journal, plan)
        ctx = RunContext(
            plan=plan,
            run_id="r1",
            run_dir=tmp_path / "run",
            journal=journal,
            run_playbook=lambda *a, **k: None,
            project_dir=tmp_path,
            inventory="localhost,",
            gates={},
            actions={n: act(n) for n in names},
            undo_steps={
                "release": undo_step("release", rollback=False),
                "restore": undo_step("restore", rollback=True),
                "restore2": undo_step("restore2", rollback=True),
            },
            progress=lines.append,
        )
        if failing:
            with pytest.raises(UpgraderError):
                execute(ctx)
        else:
            execute(ctx)
    events = read_events(tmp_path / "run" / "journal.jsonl")
    return done, [e.get("undo_id") for e in events if e.type == EventType.UNDO_DONE]


def test_a_good_run_releases_but_does_not_roll_back(tmp_path):
    done, undone = run(tmp_path, None)
    assert done == ["hold", "backup", "upgrade", "after", "release"]
    assert undone == ["release"]


def test_a_failure_at_the_point_of_no_return_still_rolls_back(tmp_path):
    done, undone = run(tmp_path, "upgrade")
    assert done == ["hold", "backup", "restore", "release"]
    assert undone == ["restore", "release"]


def test_a_failure_after_the_point_of_no_return_does_not_roll_back(tmp_path):
    done, undone = run(tmp_path, "after")
    assert done == ["hold", "backup", "upgrade", "release"]
    assert undone == ["release"]


def test_a_failure_before_the_second_hops_upgrade_restores_that_hop_only(tmp_path):
    done, undone = run(tmp_path, "upgrade2", TWO_HOPS)
    assert done == ["hold", "backup", "upgrade", "backup2", "restore2", "release"]
    assert undone == ["restore2", "release"]


def test_a_failure_after_the_last_hops_upgrade_rolls_nothing_back(tmp_path):
    done, undone = run(tmp_path, "after", TWO_HOPS)
    assert undone == ["release"]
    assert "restore" not in done and "restore2" not in done


# A step that does the release's work ("release now") discharges the release undo.
RELEASED_NOW = (
    planned("hold", undo="release"),
    planned("work"),
    PlannedStep(
        "release-now",
        "3.2-3.4",
        "release-now",
        "release-now",
        "action",
        None,
        "release-now",
        "all",
        (),
        None,
        1.0,
        True,
        None,
        False,
        (),
        (),
        does_undo="release",
    ),
    planned("after"),
)


def test_a_step_that_does_the_release_leaves_nothing_to_release_at_the_end(tmp_path):
    done, undone = run(tmp_path, None, RELEASED_NOW)
    assert done == ["hold", "work", "release-now", "after"]  # no second release
    assert undone == ["release"]
    events = read_events(tmp_path / "run" / "journal.jsonl")
    record = next(e for e in events if e.type == EventType.UNDO_DONE)
    assert record.get("done_by") == "release-now"
    assert not [e for e in events if e.type == EventType.UNDO_STARTED]


def test_a_failure_before_that_step_still_releases(tmp_path):
    done, undone = run(tmp_path, "work", RELEASED_NOW)
    assert done == ["hold", "release"]
    assert undone == ["release"]


def test_a_failure_after_that_step_does_not_release_twice_nor_hold_again(tmp_path):
    done, undone = run(tmp_path, "after", RELEASED_NOW)
    assert done == ["hold", "work", "release-now"]
    assert undone == ["release"]
    # the plan released the hold itself: a resume must not take it again
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert state.undone_steps == ()
    assert state.resume_point == "after"


def test_a_release_run_by_the_undo_makes_a_resume_hold_again(tmp_path):
    run(tmp_path, "work", RELEASED_NOW)
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert state.undone_steps == ("hold",)
