"""The systemd timer and service ``upgrader schedule`` writes for one maintenance window.

Pure: it turns a window and a command into the text of two unit files; the CLI writes them
for review and installs nothing. The design decisions, also stated in the files' comments:

- The timer fires once, at the window's start (``OnCalendar=`` in the window's own zone, so
  a reader sees the time the config names; in UTC when that local time is ambiguous).
  ``Persistent=false``: a window missed while the machine was down is not caught up later.
- The service runs ``upgrader run TARGET --yes`` (or ``resume RUN_ID --yes`` when the
  environment's latest run of that target is paused or failed) with ``--window START/END``
  of exactly that window, so the run itself refuses to start a step that does not fit and
  pauses at a safe point (exit 3). Scheduled and manual runs share the run lock.
- systemd's own limit is the backstop: the window's length plus ``UNDO_MARGIN`` for the undo
  actions of a failing step. ``Type=oneshot`` runs the whole upgrade as the unit's
  activation, and for a oneshot service that limit is ``TimeoutStartSec=``: systemd ignores
  ``RuntimeMaxSec=`` there (``systemd-analyze verify`` warns about it), so the files do not
  carry it. ``KillMode=mixed`` sends SIGTERM to the controller only,
  which pauses at the next safe point; ``TimeoutStopSec=`` gives it ``STOP_TIMEOUT`` for
  that before everything left is killed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upgrader.compat import UTC
from upgrader.windows.window import Window, format_duration, zone_name

UNDO_MARGIN = 15 * 60  # seconds after the window's end for the undo of a failing step
STOP_TIMEOUT = 60 * 60  # seconds between SIGTERM (pause at a safe point) and SIGKILL
RESUMABLE = ("paused", "failed")
_SAFE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


@dataclass(frozen=True)
class Units:
    """The two files of one schedule: ``<name>.service`` and ``<name>.timer``."""

    name: str
    service: str
    timer: str
    command: tuple[str, ...]
    limit: int  # seconds: TimeoutStartSec=, the window's length and UNDO_MARGIN


def unit_name(environment: str, target: str) -> str:
    """``upgrader-production-3.6``."""
    return f"upgrader-{environment}-{target}"


def resumable_run(
    summaries: Sequence[Mapping[str, Any]], environment: str, target: str
) -> tuple[str | None, Mapping[str, Any] | None]:
    """(run id to resume or None, the latest real run of ``target`` on ``environment``).

    Only the latest run counts: a paused or failed run that a later run superseded stays
    where it is. Dry runs are not runs."""
    rows = sorted(
        (
            r
            for r in summaries
            if r.get("environment") == environment
            and r.get("target") == target
            and not r.get("dry_run")
        ),
        key=lambda r: str(r.get("run_id", "")),
        reverse=True,
    )
    latest = rows[0] if rows else None
    if latest is not None and latest.get("status") in RESUMABLE:
        return str(latest["run_id"]), latest
    return None, latest


def on_calendar(start: datetime) -> str:
    """``2026-11-28 01:00:00 Europe/Berlin``: the first whole second at or after ``start``,
    in the window's zone; in UTC for a bare offset or a wall time that happens twice."""
    if start.microsecond:
        start = (
            start.astimezone(UTC) + timedelta(microseconds=10**6 - start.microsecond)
        ).astimezone(start.tzinfo)
    zone = zone_name(start)
    twice = start.replace(fold=1 - start.fold).utcoffset() != start.utcoffset()
    if zone is None or twice:
        return f"{start.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"{start:%Y-%m-%d %H:%M:%S} {zone}"


def exec_line(argv: Sequence[str]) -> str:
    """``argv`` as systemd's ``ExecStart=`` reads it back: ``%`` and ``$`` escaped, words
    with other characters in double quotes.

    Raises:
        ValueError: a word holds a line break, which a unit file cannot carry.
    """
    words = []
    for arg in argv:
        if "\n" in arg or "\r" in arg:
            raise ValueError(f"'{arg!r}' holds a line break: it cannot go into a unit file")
        text = arg.replace("%", "%%").replace("$", "$$")
        if not _SAFE.fullmatch(arg):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(text)
    return " ".join(words)


def render(
    *,
    environment: str,
    target: str,
    window: Window,
    command: Sequence[str],
    written: datetime,
    what: str,
) -> Units:
    """The service and timer that run ``command`` at ``window``'s start.

    ``what`` says in words what the command does (for the comments and Description=)."""
    name = unit_name(environment, target)
    limit = int(window.seconds) + UNDO_MARGIN
    when = describe(window)
    install = (
        f"cp {name}.service {name}.timer /etc/systemd/system/ && systemctl "
        f"daemon-reload && systemctl enable --now {name}.timer"
    )
    header = [
        f"# Written by `upgrader schedule {target}` at {written:%Y-%m-%d %H:%M:%S %Z}; nothing "
        "is installed yet.",
        f"# Window: {when} [{window.source}].",
        f"# It {what}.",
        f"# Install: {install}",
        "# The timer fires once, for this window only: run `upgrader schedule` again for the",
        "# next one. Remove: systemctl disable --now "
        f"{name}.timer && rm /etc/systemd/system/{name}.*",
    ]
    service = [
        *header,
        "# --window makes the run refuse a step that would not fit and pause there (exit 3);",
        f"# systemd stops it {format_duration(UNDO_MARGIN)} after the window's end at the "
        "latest (TimeoutStartSec=, the",
        "# limit of a oneshot service): SIGTERM to the controller only (KillMode=mixed), which",
        "# pauses at the next safe point, then SIGKILL after TimeoutStopSec=.",
        "# `upgrader status` says where the run stands; `upgrader resume` continues it.",
        "",
        "[Unit]",
        f"Description=upgrader: {what} in the window {when}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={exec_line(command)}",
        f"TimeoutStartSec={limit}",
        f"TimeoutStopSec={STOP_TIMEOUT}",
        "KillMode=mixed",
    ]
    timer = [
        *header,
        "",
        "[Unit]",
        f"Description=upgrader: {what} at the start of the window {when}",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar(window.start)}",
        "AccuracySec=1s",
        "Persistent=false",
        f"Unit={name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return Units(name, "\n".join(service) + "\n", "\n".join(timer) + "\n", tuple(command), limit)


def describe(window: Window) -> str:
    """``Sat 2026-11-28 01:00 CET - 05:00 CET (4h)``: the window in its own zone."""
    start, end = window.start, window.end
    same_day = start.date() == end.date()
    tail = f"{end:%H:%M %Z}" if same_day else f"{end:%a %Y-%m-%d %H:%M %Z}"
    return f"{start:%a %Y-%m-%d %H:%M %Z} - {tail} ({format_duration(window.seconds)})"
