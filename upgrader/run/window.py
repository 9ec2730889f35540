"""The maintenance window of a run, its step estimates, and the cloud's state at its ends.

``choose`` decides the window a ``run`` or ``resume`` works in: an ad-hoc ``--window`` (which
the journal records), else the environment's configured window open now; outside every
configured window it refuses (exit 3) and names the next opening. An environment with no
windows configured is not limited, and the run says so. ``estimates`` refines the runbook's
figures with what earlier runs measured (``upgrader.plan.estimates``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from upgrader.errors import UpgraderError, UsageError, WindowClosedError
from upgrader.journal.store import EventType, Journal
from upgrader.plan import estimates as est
from upgrader.plan.planner import Plan
from upgrader.run.executor import STOP_REQUESTED, RunContext
from upgrader.windows import window as win

if TYPE_CHECKING:
    from upgrader.opennebula import OneClient
    from upgrader.run.runs import Workspace


def now() -> datetime:
    """The wall clock, in UTC (windows compare instants, not local times)."""
    return datetime.now(UTC)


def choose(ws: Workspace, spec: str | None, at: datetime, command: str) -> win.Window | None:
    """The window the run works in (None: the environment has none configured)."""
    if spec:
        try:
            window = win.parse_spec(spec, at)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not window.contains(at):
            raise WindowClosedError(
                f"the window --window {spec} is not open now: it runs from "
                f"{_when(window.start)} to {_when(window.end)}",
                hint=f"run `upgrader {command}` inside it",
            )
        return window
    if not ws.env.windows:
        return None
    window = win.current(ws.env.windows, at)
    if window is not None:
        return window
    nxt = win.next_opening(ws.env.windows, at)
    opens = f"the next opens {_when(nxt.start)} ({nxt.source})" if nxt else "no window is ahead"
    raise WindowClosedError(
        f"{ws.env.name} is outside its maintenance windows: {opens}",
        hint=f"run `upgrader {command}` then (`upgrader schedule` writes a timer for it), or "
        "declare an ad-hoc window with --window now+2h",
    )


def forecast(ws: Workspace, spec: str | None, at: datetime) -> win.Window | None:
    """The window a dry run plans the real run into: ``--window`` (open now or not), else
    the configured one open now, else the next to open (None: none configured)."""
    if spec:
        try:
            return win.parse_spec(spec, at)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not ws.env.windows:
        return None
    return win.current(ws.env.windows, at) or win.next_opening(ws.env.windows, at)


def record(journal: Journal, window: win.Window | None, spec: str | None, command: str,
           progress: Callable[[str], None]) -> None:
    """Journal the window this run (or resumed run) works in, and say it."""
    if window is None:
        progress("[run] no maintenance window is configured for this environment: "
                 "the run is not limited in time")
        return
    how = "ad hoc" if spec else "config"
    journal.record(EventType.WINDOW, window=window.as_dict(), how=how, command=command)
    progress(f"[run] window {_when(window.start)} to {_when(window.end)} ({how}: "
             f"{window.source})")


def next_after(ws: Workspace) -> Callable[[datetime], win.Window | None]:
    """The configured window opening after a given time (None: none configured)."""
    windows = ws.env.windows
    return lambda at: win.next_opening(windows, at) if windows else None


def estimates(ws: Workspace, plan: Plan, run_id: str | None = None) -> dict[str, float]:
    """Seconds per step: measured in earlier runs of the site where there are any."""
    samples = est.measured(ws.site.runs_dir, exclude=run_id)
    refined = est.refine(plan, samples, ws.env.requires_rehearsal_on)
    return {step: e.seconds for step, e in refined.items()}


def cloud_state(client: OneClient) -> dict[str, Any]:
    """Versions, hosts and VMs as the run leaves (or finds) the cloud; what could not be
    read is said, not guessed (the report shows it)."""
    out: dict[str, Any] = {}
    try:
        out["oned_version"] = str(client.detect_version())
        out["hosts"] = [{"name": h.name, "state": h.state.name} for h in client.host_pool()]
        out["vms"] = [{"id": v.id, "name": v.name, "state": v.state.name,
                       "lcm_state": v.lcm_state.name, "host": v.host} for v in client.vm_pool()]
    except UpgraderError as exc:
        out["error"] = str(exc)
    return out


def record_cloud(journal: Journal, client: OneClient, when: str) -> None:
    """Journal the cloud's state at the start or end of a run (never fails the run)."""
    journal.record(EventType.CLOUD_STATE, when=when, **cloud_state(client))


@contextlib.contextmanager
def sigterm_pauses() -> Iterator[None]:
    """While the run executes, SIGTERM asks it to pause at its next safe point (see
    executor.STOP_REQUESTED); the process's own handling comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: STOP_REQUESTED.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def limit(ctx: RunContext, ws: Workspace, window: Any,
           figures: Mapping[str, float] | None = None) -> None:
    """Give the run its window and the estimates it judges each step's fit with."""
    ctx.window = window
    ctx.next_window = next_after(ws)
    ctx.estimates = (figures if figures is not None
                     else estimates(ws, ctx.plan, ctx.run_id))


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def window_dict(window: win.Window | None) -> Mapping[str, str] | None:
    """The journal's form of ``window``."""
    return window.as_dict() if window else None
