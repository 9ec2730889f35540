"""A run's or dry run's journal folded into a ``Report`` (pure: events in, a value out).

Where the run stands (status, next step, the journal's hint) comes from ``journal_replay``,
the same fold ``upgrader status`` and ``resume`` use, so the report cannot tell another
story. Event types the lead added later (``cloud_state``, ``window``) are matched by their
string value: an older journal without them still reports, saying what was not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from upgrader.journal.replay import replay
from upgrader.reports.data import (
    Check,
    Entry,
    Gate,
    Report,
    base_report,
    place_in_window,
    seconds_between,
)

_STAGE = {"staging": " --stage"}
_ENDS = ("run_finished", "run_failed", "run_aborted", "run_paused")


def build(events: Sequence[Any]) -> Report:
    """The report of the run whose journal is ``events`` (a dry run's gives a dry-run report)."""
    state = replay(events)
    first = events[0]
    windows = [dict(e.get("window")) for e in events if str(e.type) == "window" and e.get("window")]
    window = first.get("window") or (windows[0] if windows else None)
    report = base_report(
        "dry-run" if state.dry_run else "run",
        state.plan,
        run_id=state.run_id,
        window=window,
        estimates=first.get("estimates"),
        accepted=dict(state.accepted_findings),
    )
    report.status = state.status.value
    report.windows = windows
    report.started, report.finished = state.started, state.finished
    ended = [e.ts for e in events if str(e.type) in _ENDS]
    report.finished = state.finished or (
        ended[-1] if ended and state.status.value != "running" else None
    )
    report.seconds = seconds_between(state.started, report.finished or events[-1].ts)
    status = {s.id: state.step_status.get(s.id) for s in report.steps}
    for step in report.steps:
        step.status = status[step.id].value if status[step.id] is not None else "pending"
    _fold(report, events)
    report.checks.sort(key=lambda k: k.index)
    if state.dry_run:
        place_in_window(report.steps, report.window, state.started)
    report.next_action = next_action(report, state.hint)
    return report


def _fold(report: Report, events: Sequence[Any]) -> None:
    """Walk the journal once: timeline entries, gates, undo, cloud states, dry-run parts."""
    open_steps: dict[str, Any] = {}
    open_undo: dict[str, Any] = {}
    previous_ts = events[0].ts
    for e in events:
        kind = str(e.type)
        if kind == "step_started":
            open_steps[e.get("step")] = e
        elif kind in ("step_finished", "step_failed"):
            began = open_steps.pop(e.get("step"), None)
            report.timeline.append(_step_entry(e, began))
        elif kind == "gate_verdict":
            gate = _gate(e)
            report.gates.append(gate)
            report.timeline.append(
                Entry(
                    "gate",
                    f"{gate.gate} ({gate.phase} {gate.step or 'the run'})",
                    previous_ts,
                    e.ts,
                    seconds_between(previous_ts, e.ts),
                    gate.verdict,
                    gate.summary,
                    gate.step,
                )
            )
        elif kind == "undo_started":
            open_undo[e.get("undo_id")] = e
        elif kind in ("undo_done", "undo_failed"):
            began = open_undo.pop(e.get("undo_id"), None)
            entry = _undo_entry(e, began)
            report.undo.append(entry)
            report.timeline.append(entry)
        elif kind == "run_paused":
            report.pause = _pause(e)
            report.timeline.append(
                Entry("pause", "paused", e.ts, None, None, "paused", str(e.get("reason") or ""))
            )
        elif kind == "run_resumed":
            _close_pause(report.timeline, e.ts)
            report.pause = None
        elif kind == "cloud_state":
            state = {k: v for k, v in e.fields.items() if k != "when"}
            if e.get("when") == "end":
                report.cloud_end = state
            else:
                report.cloud_start = state
        else:
            _fold_outcome(report, e, kind)
        previous_ts = e.ts
    for step, began in open_steps.items():
        report.timeline.append(
            Entry(
                "step",
                step,
                began.ts,
                None,
                None,
                "interrupted",
                "the journal ends while this step runs",
                step,
            )
        )
    for undo_id, began in open_undo.items():
        entry = Entry("undo", undo_id, began.ts, None, None, "interrupted", "")
        report.undo.append(entry)
        report.timeline.append(entry)


def _fold_outcome(report: Report, e: Any, kind: str) -> None:
    """The dry-run parts, the notes and the line that ends the run."""
    if kind == "dry_run_vms":
        report.vms = dict(e.fields)
    elif kind == "dry_run_check":
        report.checks.append(
            Check(
                index=int(e.get("check") or 0),
                label=str(e.get("label") or e.get("playbook")),
                playbook=str(e.get("playbook")),
                limit=e.get("limit"),
                predicted=bool(e.get("predicted")),
                changes=dict(e.get("changes") or {}),
                reason=str(e.get("reason") or ""),
            )
        )
        sync = (e.get("data") or {}).get("storage_sync") or {}
        if "would_copy_bytes" in sync:
            report.copy_bytes = (report.copy_bytes or 0) + int(sync["would_copy_bytes"])
        if "copied_count" in sync:
            report.copy_files = (report.copy_files or 0) + int(sync["copied_count"])
    elif kind == "gates_skipped":
        report.gates_skipped = int(e.get("count") or 0)
    elif kind == "note" and e.get("text"):
        report.notes.append(str(e.get("text")))
    elif kind == "run_finished":
        report.outcome = str(e.get("line") or "the run finished: every step is done")
    elif kind == "run_failed":
        report.outcome = str(e.get("reason") or "the run failed")
    elif kind == "run_aborted":
        report.outcome = f"aborted: {e.get('reason') or 'no reason journaled'}"


def _step_entry(e: Any, began: Any) -> Entry:
    start = began.ts if began is not None else None
    attempt = began.get("attempt", 1) if began is not None else 1
    name = e.get("step") + (f" (attempt {attempt})" if attempt and attempt > 1 else "")
    if str(e.type) == "step_finished":
        return Entry(
            "step", name, start, e.ts, seconds_between(start, e.ts), "succeeded", step=e.get("step")
        )
    evidence = e.get("evidence") or {}
    failures = evidence.get("failures") if isinstance(evidence, Mapping) else None
    detail = "; ".join(map(str, failures)) if failures else str(e.get("error") or "")
    return Entry(
        "step", name, start, e.ts, seconds_between(start, e.ts), "failed", detail, e.get("step")
    )


def _undo_entry(e: Any, began: Any) -> Entry:
    # an undo a step did (done_by) has no start of its own: a mark at the moment it was done
    start = began.ts if began is not None else e.ts
    failed = str(e.type) == "undo_failed"
    detail = (
        str(e.get("error") or "")
        if failed
        else str(began.get("reason") or "" if began is not None else "")
    )
    if e.get("done_by"):  # a step of the run did the undo's work (release Puppet now)
        detail = f"done by step {e.get('done_by')}"
    return Entry(
        "undo",
        str(e.get("undo_id")),
        start,
        e.ts,
        seconds_between(start, e.ts),
        "failed" if failed else "done",
        detail,
    )


def _gate(e: Any) -> Gate:
    evidence = e.get("evidence")
    details = dict(evidence) if isinstance(evidence, Mapping) else {"evidence": evidence}
    summary = str(details.pop("summary", "") or "")
    return Gate(
        step=e.get("step"),
        gate=str(e.get("gate")),
        phase=str(e.get("phase") or ""),
        verdict=str(e.get("verdict")),
        at=e.ts,
        summary=summary,
        details=details,
        hint=str(e.get("hint") or ""),
    )


def _pause(e: Any) -> dict[str, Any]:
    return {
        "at": e.ts,
        "reason": e.get("reason"),
        "next_step": e.get("next_step"),
        "window": e.get("window"),
        "next_window": e.get("next_window"),
        "held": list(e.get("held") or []),
    }


def _close_pause(timeline: list[Entry], ts: str) -> None:
    for entry in reversed(timeline):
        if entry.kind == "pause" and entry.end is None:
            entry.end, entry.seconds = ts, seconds_between(entry.start, ts)
            entry.status = "resumed"
            return


def next_action(report: Report, hint: str | None) -> str:
    """What the operator does next: nothing for a finished run; resume, in the next window,
    for a paused one; the journal's hint for a failed one."""
    resume = f"`upgrader resume {report.run_id}{_STAGE.get(report.environment, '')}`"
    if report.kind == "dry-run":
        return "" if report.status == "succeeded" else (hint or "fix the cause, dry-run again")
    if report.status == "paused":
        pause = report.pause or {}
        opens = (pause.get("next_window") or {}).get("start")
        when = f"in the next window (it opens {opens})" if opens else "inside a maintenance window"
        step = f"; it continues with {pause['next_step']}" if pause.get("next_step") else ""
        return f"run {resume} {when}{step}"
    if report.status == "failed":
        return hint or f"fix the cause, then run {resume}"
    if report.status == "running":
        return (
            f"the journal ends without an outcome (the run is still going, or its process "
            f"died): check `upgrader status {report.run_id}`, then run {resume}"
        )
    if report.status == "aborted":
        return "the run was aborted and its undo actions ran: plan a new run when ready"
    return ""
