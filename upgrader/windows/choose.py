"""The maintenance window of a run, its step estimates, and the cloud's state at its ends.

``choose`` decides the window a ``run`` or ``resume`` works in: an ad-hoc ``--window`` (which
the journal records), else the environment's configured window open now; outside every
configured window it refuses (exit 3) and names the next opening. An environment with no
windows configured is not limited, and the run says so. ``estimates`` refines the runbook's
figures with what earlier runs measured (``upgrader.plan.estimates``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from upgrader.compat import UTC
from upgrader.errors import UsageError, WindowClosedError
from upgrader.journal.store import EventType, Journal
from upgrader.text import format_instant
from upgrader.windows import window as win

if TYPE_CHECKING:
    from upgrader.config.workspace import Workspace


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
                f"{format_instant(window.start)} to {format_instant(window.end)}",
                hint=f"run `upgrader {command}` inside it",
            )
        return window
    if not ws.env.windows:
        return None
    window = win.current(ws.env.windows, at)
    if window is not None:
        return window
    nxt = win.next_opening(ws.env.windows, at)
    opens = "no window is ahead"
    if nxt:
        opens = f"the next opens {format_instant(nxt.start)} ({nxt.source})"
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


def record(
    journal: Journal,
    window: win.Window | None,
    spec: str | None,
    command: str,
    progress: Callable[[str], None],
) -> None:
    """Journal the window this run (or resumed run) works in, and say it."""
    if window is None:
        progress(
            "[run] no maintenance window is configured for this environment: "
            "the run is not limited in time"
        )
        return
    how = "ad hoc" if spec else "config"
    journal.record(EventType.WINDOW, window=window.as_dict(), how=how, command=command)
    progress(
        f"[run] window {format_instant(window.start)} to {format_instant(window.end)} ({how}: "
        f"{window.source})"
    )


def next_after(ws: Workspace) -> Callable[[datetime], win.Window | None]:
    """The configured window opening after a given time (None: none configured)."""
    windows = ws.env.windows
    return lambda at: win.next_opening(windows, at) if windows else None


def window_dict(window: win.Window | None) -> Mapping[str, str] | None:
    """The journal's form of ``window``."""
    return window.as_dict() if window else None
