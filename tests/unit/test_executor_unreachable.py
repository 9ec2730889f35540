"""The executor keeps the hosts its plays could not reach, so that an undo run right after
the failure (resume the suspended VMs) does not wait for oned to notice the host is gone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.journals import record_start
from upgrader.ansible_adapter.outcome import PlaybookOutcome, PlaybookStatus
from upgrader.errors import UpgraderError
from upgrader.journal.store import Journal
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Step
from upgrader.run.context import RunContext
from upgrader.run.executor import execute


def planned(sid: str, kind: str, *, undo: str | None = None) -> PlannedStep:
    playbook, action = (f"{sid}.yml", None) if kind == "playbook" else (None, sid)
    return PlannedStep(
        sid,
        "ocfs2-nfs",
        sid,
        sid,
        kind,
        playbook,
        action,
        "all",
        (),
        None,
        1.0,
        True,
        undo,
        False,
        (),
        (),
    )


def outcome(status: PlaybookStatus, unreachable: tuple[str, ...]) -> PlaybookOutcome:
    return PlaybookOutcome(status, 4 if unreachable else 0, {}, (), unreachable, (), (), 0.1)


def run(tmp_path: Path, plays: list[list[tuple[str, str]]]) -> list[set[str]]:
    """Steps play1..playN (each play's results are (event, host) pairs; the last play
    fails), then the undo of the first step: what each action saw."""
    seen: list[set[str]] = []

    def look(step: Any, ctx: RunContext) -> Mapping[str, Any]:
        seen.append(set(ctx.unreachable))
        return {}

    results = iter(plays)

    def run_playbook(call: Any, *, on_event: Any, **_: Any) -> PlaybookOutcome:
        events = next(results)
        for name, host in events:
            on_event({"event": name, "host": host, "task": "t", "step": call.step_id})
        lost = tuple(host for name, host in events if name == "runner_on_unreachable")
        last = call.step_id == f"play{len(plays)}"
        # an earlier play goes on past its lost host (ignore_unreachable, say)
        return outcome(PlaybookStatus.FAILED if last else PlaybookStatus.SUCCESSFUL, lost)

    steps = (
        planned("look", "action", undo="look-again"),
        *(planned(f"play{i}", "playbook") for i in range(1, len(plays) + 1)),
    )
    plan = Plan(
        "staging",
        "ocfs2",
        "nfs",
        (("ocfs2", "nfs"),),
        steps,
        (),
        "storage",
        4.0,
        "f" * 64,
        "r" * 64,
    )
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
            actions={"look": look, "look-again": look},
            undo_steps={
                "look-again": Step(
                    "look-again",
                    "look-again",
                    "action",
                    None,
                    "look-again",
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
                )
            },
            progress=lambda line: None,
        )
        with pytest.raises(UpgraderError):
            execute(ctx)
    return seen


def test_the_undo_after_a_play_that_lost_a_host_knows_that_host(tmp_path):
    seen = run(tmp_path, [[("runner_on_ok", "node01"), ("runner_on_unreachable", "node02")]])
    assert seen == [set(), {"node02"}]


def test_a_host_that_answers_a_later_play_is_no_longer_counted_lost(tmp_path):
    seen = run(
        tmp_path,
        [
            [("runner_on_unreachable", "node01"), ("runner_on_unreachable", "node02")],
            [("runner_on_ok", "node01"), ("runner_on_skipped", "node02")],
            [("runner_on_failed", "node02"), ("runner_on_unreachable", "node03")],
        ],
    )
    # node01 answered play2; node02 answered play3 (a failed task reached it)
    assert seen == [set(), {"node03"}]
