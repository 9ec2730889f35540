"""The executor never starts what cannot finish before the window closes: it pauses at the
safe point before it (exit 3, journaled) and a resume in a later window goes on from there."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from upgrader.compat import UTC
from upgrader.errors import WindowClosedError
from upgrader.journal.store import EventType, Journal, RunStatus, read_events, replay
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Step
from upgrader.run.context import STOP_REQUESTED, RunContext
from upgrader.run.executor import execute
from upgrader.windows.window import Window

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def planned(
    sid: str,
    estimate: float,
    *,
    undo: str | None = None,
    hosts: tuple[str, ...] = (),
    start: bool = False,
    end: bool = False,
) -> PlannedStep:
    return PlannedStep(
        sid,
        "3.4-3.6",
        sid.partition("@")[0],
        sid,
        "action",
        None,
        sid,
        "hypervisors" if hosts else "all",
        hosts,
        ",".join(hosts) or None,
        estimate,
        True,
        undo,
        False,
        (),
        (),
        sequence_start=start,
        sequence_end=end,
    )


NODE_STAGE = (
    planned("hold", 60, undo="release"),
    planned("drain@1", 600, hosts=("n1",)),
    planned("upgrade@1", 300, hosts=("n1",)),
    planned("drain@2", 600, hosts=("n2",)),
    planned("upgrade@2", 300, hosts=("n2",)),
    planned("last", 60),
)


class Clock:
    """Simulated wall clock: each step takes exactly its estimate."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def context(
    tmp_path: Path,
    steps: tuple[PlannedStep, ...],
    window: Window,
    clock: Clock,
    done: list[str],
    journal: Journal,
    lines: list[str],
) -> RunContext:
    def act(step: Any, ctx: RunContext) -> Mapping[str, Any]:
        done.append(step.id)
        clock.now += timedelta(seconds=step.estimate)
        return {}

    release = Step(
        "release",
        "Release the Puppet hold",
        "action",
        None,
        "release",
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
    plan = Plan(
        "staging", "3.4", "3.6", (("3.4", "3.6"),), steps, (), None, 0.0, "f" * 64, "r" * 64
    )
    return RunContext(
        plan=plan,
        run_id="r1",
        run_dir=tmp_path / "run",
        journal=journal,
        run_playbook=lambda *a, **k: None,
        project_dir=tmp_path,
        inventory="localhost,",
        gates={},
        actions={s.id: act for s in steps} | {"release": act},
        undo_steps={"release": release},
        progress=lines.append,
        window=window,
        now=clock,
        next_window=lambda at: Window(
            T0 + timedelta(days=7), T0 + timedelta(days=7, hours=4), "weekly"
        ),
    )


def start(tmp_path: Path, steps: tuple[PlannedStep, ...]) -> Journal:
    journal = Journal.create(tmp_path / "run", "r1")
    journal.record(
        EventType.RUN_STARTED,
        run_id="r1",
        environment="staging",
        target="3.6",
        fingerprint="r" * 64,
        dry_run=False,
        plan={"steps": [{"id": s.id, "idempotent": True} for s in steps]},
    )
    return journal


def test_the_window_closing_in_the_node_stage_pauses_after_the_batch_in_progress(tmp_path):
    # hold 1 min + batch 1 15 min = 16 min; batch 2 would end at 31 min: the window has 25
    window = Window(T0, T0 + timedelta(minutes=25), "ad hoc --window now+25m")
    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, NODE_STAGE)
    with pytest.raises(WindowClosedError) as info:
        execute(context(tmp_path, NODE_STAGE, window, clock, done, journal, lines))
    journal.close()
    assert info.value.exit_code == 3
    assert done == ["hold", "drain@1", "upgrade@1"]  # the hold is not released: paused, not done
    assert "drain@2 .. upgrade@2 needs about 15m" in str(info.value)
    assert "in 9m" in str(info.value)
    assert "upgrader resume r1` in the next window (opens 2026-12-05T00:00" in info.value.hint
    assert "Release the Puppet hold" in info.value.hint  # what stays as it is until then
    events = read_events(tmp_path / "run" / "journal.jsonl")
    paused = [e for e in events if e.type == EventType.RUN_PAUSED]
    assert [p.get("next_step") for p in paused] == ["drain@2"]
    assert paused[0].get("need") == 900 and paused[0].get("left") == 540
    state = replay(events)
    assert state.status == RunStatus.PAUSED and state.resume_point == "drain@2"

    # the next window: resume goes on from the batch it did not start, and ends the run
    clock.now = T0 + timedelta(days=7)
    journal = Journal.open(tmp_path / "run")
    later = Window(clock.now, clock.now + timedelta(hours=4), "weekly")
    execute(context(tmp_path, NODE_STAGE, later, clock, done, journal, lines), start_at="drain@2")
    journal.close()
    assert done == ["hold", "drain@1", "upgrade@1", "drain@2", "upgrade@2", "last", "release"]
    assert replay(read_events(tmp_path / "run" / "journal.jsonl")).status == RunStatus.SUCCEEDED


def test_a_step_that_ends_exactly_when_the_window_closes_still_starts(tmp_path):
    window = Window(T0, T0 + timedelta(minutes=32), "dated")  # every step, to the second
    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, NODE_STAGE)
    execute(context(tmp_path, NODE_STAGE, window, clock, done, journal, lines))
    assert done[-2:] == ["last", "release"]

    # one second less, and the last step waits for the next window
    short = Window(T0, T0 + timedelta(minutes=32, seconds=-1), "dated")
    clock, done = Clock(), []
    journal = start(tmp_path / "again", NODE_STAGE)
    with pytest.raises(WindowClosedError, match=r"paused before last: .* needs about 1m"):
        execute(context(tmp_path / "again", NODE_STAGE, short, clock, done, journal, lines))
    assert done[-1] == "upgrade@2"


def test_a_sequence_starts_only_if_all_of_it_fits(tmp_path):
    steps = (
        planned("preflight", 60),
        planned("suspend", 300, start=True),
        planned("copy", 300),
        planned("switch", 120),
        planned("resume", 300, end=True),
        planned("after", 60),
    )
    # each step alone would fit in the 16 minutes left after the preflight; together they
    # need 17: nothing of the sequence starts
    window = Window(T0, T0 + timedelta(minutes=17), "dated")
    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, steps)
    with pytest.raises(WindowClosedError) as info:
        execute(context(tmp_path, steps, window, clock, done, journal, lines))
    assert done == ["preflight"]
    assert "suspend .. resume needs about 17m" in str(info.value)
    assert any("paused before suspend" in line for line in lines)


def test_no_window_means_no_limit(tmp_path):
    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, NODE_STAGE)
    ctx = context(tmp_path, NODE_STAGE, None, clock, done, journal, lines)  # type: ignore[arg-type]
    execute(ctx)
    assert done[-1] == "release"


def test_sigterm_lets_the_batch_in_progress_finish_then_pauses(tmp_path):
    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, NODE_STAGE)
    ctx = context(tmp_path, NODE_STAGE, None, clock, done, journal, lines)  # type: ignore[arg-type]
    drain = ctx.actions["drain@1"]

    def drain_then_stopped(step: Any, ctx: RunContext) -> Mapping[str, Any]:
        STOP_REQUESTED.set()  # systemd's SIGTERM arrives while the host drains
        return drain(step, ctx)

    ctx.actions = {**ctx.actions, "drain@1": drain_then_stopped}
    try:
        with pytest.raises(WindowClosedError, match="stop was requested") as info:
            execute(ctx)
    finally:
        STOP_REQUESTED.clear()
    assert info.value.exit_code == 3
    assert done == ["hold", "drain@1", "upgrade@1"]  # not left half-way through its batch
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert state.status == RunStatus.PAUSED and state.resume_point == "drain@2"


def test_a_resume_after_a_failure_takes_again_what_the_undo_gave_back(tmp_path):
    # drain@2 fails: the undo releases the hold. The resume must hold again before it goes
    # on with drain@2, or the rest of the node stage runs with Puppet free to rewrite hosts.
    from upgrader.errors import UpgraderError

    clock, done, lines = Clock(), [], []
    journal = start(tmp_path, NODE_STAGE)
    ctx = context(tmp_path, NODE_STAGE, None, clock, done, journal, lines)  # type: ignore[arg-type]
    drain = ctx.actions["drain@2"]

    def oned_gone(step: Any, ctx: RunContext) -> Mapping[str, Any]:
        raise UpgraderError("cannot reach oned", hint="check that oned runs")

    ctx.actions = {**ctx.actions, "drain@2": oned_gone}
    with pytest.raises(UpgraderError) as info:
        execute(ctx)
    assert str(info.value) == "step drain@2: cannot reach oned"  # the line names the step
    assert info.value.hint == "check that oned runs, then `upgrader resume r1`"
    assert done == ["hold", "drain@1", "upgrade@1", "release"]
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert (state.resume_point, state.undone_steps) == ("drain@2", ("hold",))

    done.clear()
    ctx.actions = {**ctx.actions, "drain@2": drain}
    execute(
        ctx, start_at=state.resume_point, attempt_of=dict(state.attempts), redo=state.undone_steps
    )
    assert done == ["hold", "drain@2", "upgrade@2", "last", "release"]
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert state.status == RunStatus.SUCCEEDED and state.attempts["hold"] == 2


def test_a_sequence_whose_undo_ran_is_run_again_from_its_start(tmp_path):
    # The storage move: verify fails inside suspend-vms .. resume-vms; the undo resumed the
    # VMs, which may have written since the delta. The resume holds again, then starts the
    # sequence over (suspend, delta, verify), never at verify with the VMs running.
    from upgrader.journal.store import redo_plan

    steps = (
        planned("hold", 60, undo="release"),
        planned("presync", 60),
        planned("suspend", 60, undo="resume-undo", start=True),
        planned("delta", 60),
        planned("verify", 60),
        planned("switch", 60),
        planned("resume", 60, end=True),
    )
    journal = Journal.create(tmp_path / "run", "r1")
    journal.record(
        EventType.RUN_STARTED,
        run_id="r1",
        environment="staging",
        target="nfs",
        fingerprint="r" * 64,
        dry_run=False,
        plan={"steps": [{"id": s.id, "sequence_start": s.sequence_start} for s in steps]},
    )
    for sid, undo in (
        ("hold", "release"),
        ("presync", None),
        ("suspend", "resume-undo"),
        ("delta", None),
    ):
        if undo:
            journal.record(EventType.UNDO_REGISTERED, step=sid, undo_id=undo, description=undo)
        journal.record(EventType.STEP_STARTED, step=sid, attempt=1, idempotent=True)
        journal.record(EventType.STEP_FINISHED, step=sid, outcome={}, duration=1.0)
    journal.record(EventType.STEP_STARTED, step="verify", attempt=1, idempotent=True)
    journal.record(EventType.STEP_FAILED, step="verify", error="checksum differs")
    for undo in ("resume-undo", "release"):
        journal.record(EventType.UNDO_STARTED, undo_id=undo, reason="run failed")
        journal.record(EventType.UNDO_DONE, undo_id=undo, outcome={})
    journal.record(EventType.RUN_FAILED, reason="verify failed")
    state = replay(read_events(tmp_path / "run" / "journal.jsonl"))
    assert state.resume_point == "verify"
    assert redo_plan(state, state.resume_point) == ("suspend", ("hold",))
    assert redo_plan(state, None) == (None, ())  # nothing left but the end: nothing to redo
