"""Where runs stand: finding a run's directory and summing up its journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upgrader.config.workspace import Workspace
from upgrader.errors import JournalError, UsageError
from upgrader.journal.store import (
    read_events,
    replay,
)


def find_run(ws: Workspace, run_id: str | None, *, real_only: bool = False) -> Path:
    """The run directory of ``run_id``, or of the newest run of the environment (the newest
    real one with ``real_only``: a dry run is nothing to resume)."""
    runs = ws.site.runs_dir
    if run_id:
        path = runs / run_id
        if not (path / "journal.jsonl").is_file():
            raise UsageError(f"no run '{run_id}' in {runs}", hint="upgrader status lists the runs")
        return path
    candidates = sorted(
        (p for p in runs.glob(f"{ws.env.name}-*") if (p / "journal.jsonl").is_file()),
        key=lambda p: p.name,
    )
    if real_only:
        candidates = [p for p in candidates if not _is_dry_run(p)]
    if not candidates:
        raise UsageError(f"no run of {ws.env.name} in {runs}", hint="upgrader run TARGET")
    return candidates[-1]


def _is_dry_run(run_dir: Path) -> bool:
    try:
        events = read_events(run_dir / "journal.jsonl")
    except JournalError:
        return False  # resume says what is wrong with it
    return bool(events) and bool(events[0].get("dry_run"))


def run_summaries(ws: Workspace) -> list[dict[str, Any]]:
    """One line of data per run of the site, newest first."""
    out = []
    for path in sorted(ws.site.runs_dir.glob("*/journal.jsonl"), reverse=True):
        try:
            state = replay(read_events(path))
        except JournalError as exc:
            out.append({"run_id": path.parent.name, "status": "unreadable", "error": str(exc)})
            continue
        out.append(summary(state))
    return out


def summary(state: Any) -> dict[str, Any]:
    """What ``status`` prints of one run."""
    done = sum(1 for v in state.step_status.values() if v.value == "succeeded")
    return {
        "run_id": state.run_id,
        "environment": state.environment,
        "target": state.target,
        "status": state.status.value,
        "dry_run": state.dry_run,
        "steps_done": done,
        "steps": len(state.plan.get("steps", [])),
        "next_step": state.resume_point,
        "interrupted_step": state.interrupted_step,
        "started": state.started,
        "finished": state.finished,
        "reason": state.reason,
    }
