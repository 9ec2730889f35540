"""Report data: a run's (or dry run's) journal folded into a plain tree the templates render.

Pure: events in, a ``Report`` out; no I/O, no clock. The same model feeds Markdown, HTML and
JSON, so the three never disagree. Times stay the journal's ISO strings; durations are whole
seconds (the report is read by people planning a night, not by a profiler). What the journal
does not hold (a cloud state nobody recorded, a window nobody declared) stays ``None`` and
the templates say "not recorded" instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from upgrader.plan import planner
from upgrader.plan.rehearsal import KEY as REHEARSAL_KEY

SCHEMA_VERSION = 1
"""Bumped when a field of the JSON report changes meaning or goes away (adding one does not)."""


@dataclass
class Entry:
    """One bar or mark of the timeline: a step attempt, a gate verdict, an undo, a pause."""

    kind: str  # "step" | "gate" | "undo" | "pause"
    name: str
    start: str | None
    end: str | None
    seconds: int | None
    status: str  # succeeded, failed, interrupted, pass, fail, inconclusive, done, paused...
    detail: str = ""
    step: str | None = None  # the step a step attempt or gate belongs to


@dataclass
class Step:
    """A planned step with what the run did with it (or, in a dry run, when it would run)."""

    id: str
    title: str
    kind: str
    runs: str  # the playbook or action
    hosts: list[str]
    estimate: int
    point_of_no_return: bool
    status: str = "pending"
    expected_start: str | None = None
    expected_end: str | None = None
    in_window: bool | None = None


@dataclass
class Gate:
    """One journaled gate verdict with its evidence (summary first, the rest as details)."""

    step: str | None
    gate: str
    phase: str
    verdict: str
    at: str
    summary: str
    details: dict[str, Any]
    hint: str


@dataclass(frozen=True)
class Finding(planner.Finding):
    """A planner finding, who accepted it and why, and how to accept it."""

    accepted_reason: str | None = None
    accept_with: str = ""


@dataclass
class Check:
    """What Ansible check mode said one playbook would change (host -> tasks)."""

    index: int
    label: str
    playbook: str
    limit: str | None
    predicted: bool
    changes: dict[str, int]
    reason: str


@dataclass
class Report:
    """Everything a report shows; ``kind`` is "run", "dry-run" or "plan" (plan only)."""

    kind: str
    run_id: str | None
    environment: str
    current_version: str
    target_version: str
    hops: list[str]
    status: str
    started: str | None = None
    finished: str | None = None
    seconds: int | None = None
    window: dict[str, Any] | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)  # each run/resume's window
    point_of_no_return: str | None = None
    estimate: int = 0
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    timeline: list[Entry] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    undo: list[Entry] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    gates_skipped: int = 0
    vms: dict[str, Any] | None = None
    copy_bytes: int | None = None
    copy_files: int | None = None
    cloud_start: dict[str, Any] | None = None
    cloud_end: dict[str, Any] | None = None
    pause: dict[str, Any] | None = None
    outcome: str = ""
    next_action: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the schema version first."""
        return {"schema": SCHEMA_VERSION, **asdict(self)}


# ------------------------------------------------------------------ time
def parse_ts(text: str | None) -> datetime | None:
    """A journal or window timestamp (``...Z`` or with an offset) as an aware datetime."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_between(start: str | None, end: str | None) -> int | None:
    """Whole seconds from ``start`` to ``end`` (None when either is missing)."""
    a, b = parse_ts(start), parse_ts(end)
    return None if a is None or b is None else _whole((b - a).total_seconds())


def _whole(seconds: float) -> int:
    """Half a second up, as people round (``round`` would make 62.5 s 62)."""
    return math.floor(seconds + 0.5)


def hms(seconds: int | float | None) -> str:
    """``1:02:03`` (``-`` for unknown): durations to the second."""
    if seconds is None:
        return "-"
    s = _whole(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# ------------------------------------------------------------------ plan parts
def _steps(plan: Mapping[str, Any], estimates: Mapping[str, float] | None) -> list[Step]:
    out = []
    for s in plan.get("steps", []):
        estimate = (estimates or {}).get(s["id"], s.get("estimate") or 0)
        hosts = list(s.get("hosts") or []) or ([s["limit"]] if s.get("limit") else [])
        out.append(
            Step(
                id=s["id"],
                title=s.get("title") or s["id"],
                kind=s.get("kind", ""),
                runs=s.get("playbook") or s.get("action") or s.get("kind", ""),
                hosts=hosts or [s.get("target") or "all"],
                estimate=round(float(estimate)),
                point_of_no_return=bool(s.get("point_of_no_return")),
            )
        )
    return out


def _findings(plan: Mapping[str, Any], reasons: Mapping[str, str]) -> list[Finding]:
    out = []
    for f in plan.get("findings", []):
        key = str(f["key"])
        out.append(
            Finding(
                key=key,
                severity=str(f.get("severity", "")),
                inhibitor=bool(f.get("inhibitor")),
                message=str(f.get("message", "")),
                remediation=str(f.get("remediation", "")),
                accepted=bool(f.get("accepted")) or key in reasons,
                accepted_reason=reasons.get(key),
                # staging not passed is waived with a reason, not accepted by key
                accept_with=(
                    '--without-rehearsal "REASON"' if key == REHEARSAL_KEY else f"--accept {key}"
                ),
            )
        )
    return out


def place_in_window(
    steps: Sequence[Step], window: Mapping[str, Any] | None, start: str | None
) -> None:
    """Give each step its expected start and end: from the window's start (else ``start``)
    plus the estimates before it; and whether it ends inside the window."""
    win_start, win_end = (
        (parse_ts(window.get("start")), parse_ts(window.get("end"))) if window else (None, None)
    )
    at = win_start or parse_ts(start)
    if at is None:
        return
    for step in steps:
        end = at + timedelta(seconds=step.estimate)
        step.expected_start, step.expected_end = _iso(at), _iso(end)
        if win_start is not None and win_end is not None:
            step.in_window = win_start <= at and end <= win_end
        at = end


def base_report(
    kind: str,
    plan: Mapping[str, Any],
    *,
    run_id: str | None = None,
    window: Mapping[str, Any] | None = None,
    estimates: Mapping[str, float] | None = None,
    accepted: Mapping[str, str] | None = None,
) -> Report:
    """The parts every report shares, from a plan as ``Plan.to_dict()`` (and the journal) has it."""
    steps = _steps(plan, estimates)
    points = [s.id for s in steps if s.point_of_no_return]
    return Report(
        kind=kind,
        run_id=run_id,
        environment=str(plan.get("environment", "")),
        current_version=str(plan.get("current_version", "")),
        target_version=str(plan.get("target_version", "")),
        hops=[f"{a} -> {b}" for a, b in plan.get("hops", [])],
        status="plan only" if kind == "plan" else "unknown",
        window=dict(window) if window else None,
        point_of_no_return=points[0] if points else plan.get("point_of_no_return"),
        estimate=sum(s.estimate for s in steps),
        steps=steps,
        findings=_findings(plan, accepted or {}),
    )


def from_plan(
    plan: Mapping[str, Any],
    window: Mapping[str, Any] | None = None,
    estimates: Mapping[str, float] | None = None,
    at: str | None = None,
) -> Report:
    """``plan --report``: the plan's report, without preflight or check mode ("plan only")."""
    report = base_report("plan", plan, window=window, estimates=estimates)
    place_in_window(report.steps, report.window, at)
    report.notes.append(
        "plan only: no preflight gate was evaluated and no playbook ran in "
        "check mode; `upgrader run TARGET --dry-run` does both"
    )
    inhibitors = [f.key for f in report.findings if f.inhibitor and not f.accepted]
    report.outcome = (
        (f"{len(inhibitors)} inhibitor(s) would stop the run: " + ", ".join(inhibitors))
        if inhibitors
        else "no inhibitor stops the run"
    )
    return report


def events_of(events: Iterable[Any], kind: str) -> list[Any]:
    """The events of type ``kind`` (by its string value, so new types read before they exist)."""
    return [e for e in events if str(e.type) == kind]
