"""The journal: durable JSON Lines on disk, and replay / resume decisions as pure functions.

Replay cases live in ``tests/cases/journal/*.yaml``: ``steps`` (the plan), ``events`` as
``[type, fields]`` after an implicit run_started, ``resume`` (``fingerprint: same|other``,
``accept_rerun``) and ``expect`` (state fields, and the decision or the error it raises).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from upgrader import errors
from upgrader.errors import JournalError
from upgrader.journal.store import (
    JOURNAL_NAME,
    EventType,
    Journal,
    JournalEvent,
    ResumeAction,
    RunStatus,
    StepStatus,
    read_events,
    replay,
    resume_decision,
)
from upgrader.opennebula import Secret

CASES = sorted((Path(__file__).parents[1] / "cases" / "journal").glob("*.yaml"))
FINGERPRINT = {"same": "a" * 64, "other": "b" * 64}
TS = "2024-05-01T22:00:00.000Z"


def started(steps: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "environment": "staging",
        "target": "3.4",
        "fingerprint": FINGERPRINT["same"],
        "plan": {"steps": steps},
        "dry_run": False,
        **over,
    }


def events_of(steps: list[dict[str, Any]], rest: list[list[Any]]) -> list[JournalEvent]:
    items = [("run_started", started(steps)), *rest]
    return [
        JournalEvent(n, TS, EventType(kind), MappingProxyType(fields))
        for n, (kind, fields) in enumerate(items, start=1)
    ]


# --- replay and resume_decision, from the case files -----------------------------------------


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_replay_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    state = replay(events_of(case["steps"], case["events"]))
    expect = case["expect"]
    for key, want in expect.items():
        if key == "decision":
            continue
        got = getattr(state, key)
        if key == "pending_undo":
            got = [dataclasses.asdict(u) for u in got]
        elif key == "gate_verdicts":
            got = len(got)
        elif key == "finished":
            got = got is not None
        elif isinstance(got, MappingProxyType):
            got = {k: str(v) if isinstance(v, StepStatus) else v for k, v in got.items()}
        elif isinstance(got, RunStatus):
            got = str(got)
        assert got == want, f"{path.stem}: {key}"
    check_decision(state, case["resume"], expect["decision"])


def check_decision(state: Any, resume: dict[str, Any], want: dict[str, Any]) -> None:
    kwargs = {
        "fingerprint": FINGERPRINT[resume["fingerprint"]],
        "accept_rerun": resume["accept_rerun"],
    }
    if "error" in want:
        with pytest.raises(getattr(errors, want["error"])) as info:
            resume_decision(state, **kwargs)
        assert type(info.value).__name__ == want["error"]
        assert info.value.exit_code == want["exit_code"]
        for needle in want["message_contains"]:
            assert needle in str(info.value)
        assert info.value.hint
        return
    decision = resume_decision(state, **kwargs)
    assert (str(decision.action), decision.step, decision.rerun) == (
        want["action"],
        want["step"],
        want["rerun"],
    )
    assert decision.message


def test_replay_cases_exist() -> None:
    assert len(CASES) >= 10


def test_interrupted_non_idempotent_step_names_the_step_in_the_question() -> None:
    steps = [{"id": "onedb-upgrade", "idempotent": False}]
    state = replay(events_of(steps, [["step_started", {"step": "onedb-upgrade", "attempt": 1}]]))
    decision = resume_decision(state, fingerprint=FINGERPRINT["same"], accept_rerun=False)
    assert decision.action is ResumeAction.ASK_OPERATOR
    assert "onedb-upgrade" in decision.message


def test_idempotent_comes_from_the_plan_when_step_started_does_not_say() -> None:
    steps = [{"id": "a", "idempotent": True}]
    state = replay(events_of(steps, [["step_started", {"step": "a"}]]))
    assert state.attempts == {"a": 1}
    decision = resume_decision(state, fingerprint=FINGERPRINT["same"], accept_rerun=False)
    assert (decision.action, decision.step, decision.rerun) == (ResumeAction.CONTINUE, "a", True)


def test_fingerprint_refusal_names_both_fingerprints_short() -> None:
    state = replay(events_of([{"id": "a"}], []))
    with pytest.raises(errors.FingerprintMismatchError) as info:
        resume_decision(state, fingerprint="c" * 64, accept_rerun=True)
    message = str(info.value)
    assert "a" * 12 in message and "c" * 12 in message and "a" * 13 not in message
    assert "the runbooks, playbooks, target or inventory changed since the run started" in message


def test_undo_registered_again_moves_to_the_top() -> None:
    rest = [
        ["undo_registered", {"step": "a", "undo_id": "u1", "description": "one"}],
        ["undo_registered", {"step": "a", "undo_id": "u2", "description": "two"}],
        ["undo_registered", {"step": "a", "undo_id": "u1", "description": "one again"}],
    ]
    state = replay(events_of([{"id": "a"}], rest))
    assert [(u.undo_id, u.description) for u in state.pending_undo] == [
        ("u1", "one again"),
        ("u2", "two"),
    ]


def test_replay_keeps_identity_snapshots_and_gates() -> None:
    rest = [
        [
            "gate_verdict",
            {
                "step": "a",
                "gate": "no-vm-twice",
                "phase": "after",
                "verdict": "fail",
                "evidence": {"vm": 7},
                "hint": "destroy one",
            },
        ],
        ["snapshot", {"step": "a", "what": "vms", "data": [1, 2]}],
    ]
    state = replay(events_of([{"id": "a"}], rest))
    assert (state.run_id, state.environment, state.target) == ("r1", "staging", "3.4")
    assert state.started == TS and state.last_seq == 3
    assert state.snapshots[("a", "vms")] == [1, 2]
    gate = state.gate_verdicts[0]
    assert (gate.gate, gate.phase, gate.verdict, gate.evidence) == (
        "no-vm-twice",
        "after",
        "fail",
        {"vm": 7},
    )


def test_replay_is_a_pure_fold_that_does_not_change_its_input() -> None:
    events = events_of([{"id": "a"}], [["step_started", {"step": "a", "attempt": 1}]])
    before = list(events)
    assert replay(events) == replay(events)
    assert events == before


@pytest.mark.parametrize(
    ("events", "needle"),
    [
        ([], "empty"),
        ([JournalEvent(1, TS, EventType.NOTE, MappingProxyType({"text": "x"}))], "not run_started"),
    ],
)
def test_replay_refuses_a_journal_without_a_start(events: list[JournalEvent], needle: str) -> None:
    with pytest.raises(JournalError, match=needle):
        replay(events)


def test_replay_refuses_a_second_start_and_a_step_event_without_step() -> None:
    with pytest.raises(JournalError, match="second time"):
        replay(events_of([{"id": "a"}], [["run_started", started([])]]))
    with pytest.raises(JournalError, match="has no 'step'"):
        replay(events_of([{"id": "a"}], [["step_finished", {}]]))


# --- the file: durable, append-only, torn last line tolerated ---------------------------------


def journal_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / JOURNAL_NAME).read_text().splitlines()]


def test_record_writes_one_json_line_with_seq_ts_and_type(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    with Journal.create(run_dir, "r1", clock=lambda: 1714600800.1234) as journal:
        event = journal.record(EventType.RUN_STARTED, **started([{"id": "a"}]))
        journal.record(EventType.STEP_STARTED, step="a", attempt=1, idempotent=True)
    lines = journal_lines(run_dir)
    assert [line["seq"] for line in lines] == [1, 2]
    assert lines[1] == {
        "seq": 2,
        "ts": "2024-05-01T22:00:00.123Z",
        "type": "step_started",
        "step": "a",
        "attempt": 1,
        "idempotent": True,
    }
    assert event.type is EventType.RUN_STARTED and event.get("run_id") == "r1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.ts)


def test_record_fsyncs_the_line_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real_fsync = os.fsync
    path = tmp_path / "r1" / JOURNAL_NAME

    def fsync(fd: int) -> None:
        calls.append((fd, path.stat().st_size if path.exists() else -1))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal = Journal.create(tmp_path / "r1", "r1")
    assert calls, "creating the journal fsyncs its directory"
    calls.clear()
    journal.record(EventType.NOTE, text="hello")
    size = path.stat().st_size
    assert calls and calls[-1][1] == size  # the last fsync saw the whole line
    journal.close()


def test_run_dir_and_journal_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        Journal.create(tmp_path / "runs" / "r1", "r1").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "runs" / "r1").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "runs" / "r1" / JOURNAL_NAME).stat().st_mode) == 0o600


def test_create_refuses_an_existing_journal(tmp_path: Path) -> None:
    Journal.create(tmp_path, "r1").close()
    with pytest.raises(JournalError, match="already has a journal") as info:
        Journal.create(tmp_path, "r1")
    assert "upgrader resume r1" in (info.value.hint or "")


def test_open_continues_the_sequence(tmp_path: Path) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        journal.record(EventType.RUN_STARTED, **started([{"id": "a"}]))
    with Journal.open(tmp_path) as journal:
        assert journal.run_id == "r1"
        assert journal.record(EventType.RUN_RESUMED, fingerprint="f").seq == 2
        assert [e.seq for e in journal.events()] == [1, 2]


def test_open_without_a_journal_says_so(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        Journal.open(tmp_path)


@pytest.mark.parametrize("torn", [b'{"seq": 3, "ts": "2024', b'{"seq": 3, "ts"\n', b"\xff\xfe\n"])
def test_torn_last_line_is_ignored_and_cut_off_by_the_next_append(
    tmp_path: Path, torn: bytes
) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        journal.record(EventType.RUN_STARTED, **started([{"id": "a"}]))
        journal.record(EventType.STEP_STARTED, step="a", attempt=1)
    with (tmp_path / JOURNAL_NAME).open("ab") as f:
        f.write(torn)
    assert [e.seq for e in read_events(tmp_path / JOURNAL_NAME)] == [1, 2]
    with Journal.open(tmp_path) as journal:
        assert journal.record(EventType.STEP_FINISHED, step="a", outcome={}, duration=1).seq == 3
    lines = journal_lines(tmp_path)
    assert [line["type"] for line in lines] == ["run_started", "step_started", "step_finished"]
    assert replay(read_events(tmp_path / JOURNAL_NAME)).step_status["a"] is StepStatus.SUCCEEDED


def test_a_valid_last_line_without_newline_counts_as_torn(tmp_path: Path) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        journal.record(EventType.RUN_STARTED, **started([{"id": "a"}]))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes() + b'{"seq":2,"ts":"x","type":"note","text":"t"}')
    assert len(read_events(path)) == 1


def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        journal.record(EventType.RUN_STARTED, **started([{"id": "a"}]))
        journal.record(EventType.NOTE, text="two")
        journal.record(EventType.NOTE, text="three")
    path = tmp_path / JOURNAL_NAME
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'{"seq": 2, garbage'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError) as info:
        read_events(path)
    assert str(info.value) == f"{path}, line 2: not valid JSON"
    assert info.value.hint
    with pytest.raises(JournalError, match="line 2"):
        Journal.open(tmp_path)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b'{"seq": 5, "ts": "t", "type": "note"}', "sequence number 5 where 2"),
        (b'{"seq": 2, "ts": "t", "type": "reticulated"}', "unknown event type"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"seq": 2, "type": "note"}', "no timestamp"),
    ],
)
def test_structurally_bad_lines_are_errors(tmp_path: Path, line: bytes, needle: str) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        journal.record(EventType.RUN_STARTED, **started([]))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes() + line + b"\n" + b'{"seq": 3}\n')
    with pytest.raises(JournalError, match=f"line 2: {needle}"):
        read_events(path)


@dataclasses.dataclass(frozen=True)
class Credentials:
    user: str
    password: Secret


def test_a_secret_is_written_as_stars(tmp_path: Path) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        event = journal.record(
            EventType.NOTE,
            text=Secret("hunter2"),
            evidence={"session": Secret("oneadmin:hunter2")},
            who=Credentials("oneadmin", Secret("hunter2")),
        )
    raw = (tmp_path / JOURNAL_NAME).read_text()
    assert "hunter2" not in raw
    assert event.get("text") == "***"
    assert event.get("evidence") == {"session": "***"}
    assert event.get("who") == {"user": "oneadmin", "password": "***"}


def test_values_the_journal_cannot_write_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        with pytest.raises(TypeError, match="object"):
            journal.record(EventType.NOTE, text=object())
        with pytest.raises(TypeError):
            journal.record(EventType.NOTE, text=float("nan"))
        with pytest.raises(TypeError, match="seq"):
            journal.record(EventType.NOTE, seq=3)
        assert (
            journal.record(
                EventType.NOTE, text="ok", path=tmp_path, status=StepStatus.FAILED, hosts={"b", "a"}
            ).seq
            == 1
        )
    assert journal_lines(tmp_path)[0]["hosts"] == ["a", "b"]
    assert journal_lines(tmp_path)[0]["status"] == "failed"


def test_record_after_close_is_an_error(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, "r1")
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.record(EventType.NOTE, text="late")


def test_events_read_back_equal_what_record_returned(tmp_path: Path) -> None:
    with Journal.create(tmp_path, "r1") as journal:
        written = [
            journal.record(EventType.RUN_STARTED, **started([{"id": "a"}])),
            journal.record(
                EventType.GATE_VERDICT,
                step="a",
                gate="g",
                phase="before",
                verdict="pass",
                evidence={"n": 1},
                hint=None,
            ),
        ]
        assert journal.events() == written
