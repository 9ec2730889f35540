"""``upgrader windows`` and ``upgrader schedule``: when an environment may be upgraded.

Both read only the site config (and, for ``schedule``, the journals of earlier runs); they
never talk to oned, so they work without the cloud or the lab running. ``cli.main`` registers
them; errors become messages and exit codes there.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from upgrader.cli.options import config_option, json_option, site_workspace, stage_option
from upgrader.compat import UTC
from upgrader.errors import ConfigError, UsageError, WindowClosedError
from upgrader.journal import files
from upgrader.windows.systemd import Units, describe, render, resumable_run
from upgrader.windows.window import (
    Window,
    current,
    format_duration,
    next_opening,
    occurrences,
    parse_spec,
)


@click.command()
@config_option
@stage_option
@json_option("the windows")
@click.option(
    "--count",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="how many windows to show",
)
def windows(config: Path | None, stage: bool, as_json: bool, count: int) -> None:
    """The next maintenance windows of the environment, in their own zone and in UTC."""
    ws = site_workspace(config, stage)
    now = datetime.now(UTC)
    found = _config_windows(ws, lambda specs: occurrences(specs, now, count))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "environment": ws.env.name,
                    "now": now.isoformat(),
                    "windows": [_as_json(w, now) for w in found],
                },
                indent=1,
            )
        )
    elif not ws.env.windows:
        click.echo(
            f"{ws.env.name} has no maintenance windows configured (add windows: to "
            f"environments.{ws.env.name} in {ws.site.path})"
        )
    elif not found:
        click.echo(
            f"{ws.env.name} has no maintenance window to come: every dated window of "
            f"environments.{ws.env.name} in {ws.site.path} has ended"
        )
    else:
        click.echo(f"maintenance windows of {ws.env.name} (now {now:%Y-%m-%d %H:%M} UTC):")
        for w in found:
            click.echo(f"  {window_line(w, now)}")


def window_line(w: Window, now: datetime) -> str:
    """``Sat 2026-11-28 01:00 CET - 05:00 CET (4h) = 2026-11-28 00:00 - 04:00 UTC, opens in
    3d14h [weekly Sat 01:00 Europe/Berlin, 4h]``."""
    start, end = w.start.astimezone(UTC), w.end.astimezone(UTC)
    utc_end = f"{end:%H:%M}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M}"
    if w.contains(now):
        state = f"open now, closes in {format_duration(w.remaining(now))}"
    else:
        state = f"opens in {format_duration((start - now).total_seconds())}"
    return f"{describe(w)} = {start:%Y-%m-%d %H:%M} - {utc_end} UTC, {state} [{w.source}]"


def _as_json(w: Window, now: datetime) -> dict[str, Any]:
    is_open = w.contains(now)
    return {
        **w.as_dict(),
        "start_utc": w.start.astimezone(UTC).isoformat(),
        "end_utc": w.end.astimezone(UTC).isoformat(),
        "seconds": w.seconds,
        "open": is_open,
        "closes_in": w.remaining(now) if is_open else None,
        "opens_in": None if is_open else (w.start - now).total_seconds(),
    }


def _config_windows(ws: Any, question: Any) -> Any:
    """Ask ``question(specs)`` of the environment's configured windows; a spec windows/window.py
    cannot read (config/site.py lets nothing like that through) is the config's fault."""
    try:
        return question(ws.env.windows)
    except ValueError as exc:
        raise ConfigError(
            f"windows of environments.{ws.env.name} in {ws.site.path}: {exc}"
        ) from None


@click.command()
@click.argument("target")
@config_option
@stage_option
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="the directory to write the .service and .timer to (nothing is installed)",
)
@click.option(
    "--window",
    "spec",
    metavar="SPEC",
    help="an ad-hoc window to come: START/END or START+4h (ISO 8601 with offset)",
)
def schedule(target: str, config: Path | None, stage: bool, output: Path, spec: str | None) -> None:
    """Write a systemd timer and service that run the upgrade to TARGET in the next window.

    A window open right now is not used: a timer for a moment already past never fires.
    Run `upgrader run TARGET --window START/END` by hand to use it."""
    ws = site_workspace(config, stage)
    goal = _target(ws, target)
    now = datetime.now(UTC)
    window = _window_to_schedule(ws, spec, now)
    command, what, latest = _command(ws, goal, stage, window)
    try:
        units = render(
            environment=ws.env.name,
            target=goal,
            window=window,
            command=command,
            written=now,
            what=what,
        )
    except ValueError as exc:
        raise UsageError(str(exc), hint="use a config path without line breaks") from None
    written = _write(output, units)
    click.echo(
        f"wrote {written[0]} and {written[1]}: {what} in the window "
        f"{describe(window)} [{window.source}]"
    )
    if latest is not None and latest.get("status") == "running":
        click.echo(
            f"note: run {latest['run_id']} is running or was interrupted: the run lock "
            "refuses the scheduled run while it holds the lock (upgrader status)",
            err=True,
        )
    click.echo(
        f"review them, then: cp {' '.join(str(p) for p in written)} /etc/systemd/system/ "
        f"&& systemctl daemon-reload && systemctl enable --now {units.name}.timer"
    )


def _command(
    ws: Any, goal: str, stage: bool, window: Window
) -> tuple[list[str], str, dict[str, Any] | None]:
    """(the command the service runs, what it does in words, the latest run of ``goal``):
    ``resume`` when that run is paused or failed, else a new ``run``; both bound to
    exactly ``window``."""
    from upgrader.run.status import run_summaries

    run_id, latest = resumable_run(run_summaries(ws), ws.env.name, goal)
    how = ["resume", run_id] if run_id else ["run", goal]
    command = [
        *_program(),
        *how,
        "--yes",
        *(["--stage"] if stage else []),
        "--config",
        str(ws.site.path),
        "--window",
        f"{window.start.isoformat()}/{window.end.isoformat()}",
    ]
    what = (
        f"resumes the {latest and latest.get('status')} run {run_id} of {ws.env.name}"
        if run_id
        else f"takes {ws.env.name} to {goal}"
    )
    return command, what, dict(latest) if latest is not None else None


def _target(ws: Any, target: str) -> str:
    """The target as a run journals it (``3.6``, ``nfs``); exit 2 for an unknown one, as
    ``run`` and ``plan`` refuse it."""
    from upgrader.plan.targets import storage_hop
    from upgrader.plan.versions import series_of

    move = storage_hop(ws.site, target)
    return move[1] if move else series_of(target)


def _window_to_schedule(ws: Any, spec: str | None, now: datetime) -> Window:
    """The ``--window`` given, else the next configured window that opens after now."""
    if spec is not None:
        try:
            window = parse_spec(spec, now)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if window.contains(now):
            raise UsageError(
                f"--window '{spec}' is open already: a timer can only start a window to come",
                hint="give START/END or START+4h in the future, or run `upgrader run` by hand now",
            )
        return window
    env = ws.env.name
    if not ws.env.windows:
        raise WindowClosedError(
            f"{env} has no maintenance windows configured: nothing to schedule",
            hint=f"add windows: to environments.{env} in "
            f"{ws.site.path}, or pass --window START/END",
        )
    found = _config_windows(ws, lambda specs: next_opening(specs, now))
    open_now = _config_windows(ws, lambda specs: current(specs, now))
    if found is None:  # only dated windows, and none to come
        why = (
            f"the last one is open now and closes in {format_duration(open_now.remaining(now))}"
            if open_now
            else "every dated window has ended"
        )
        raise WindowClosedError(
            f"no maintenance window of {env} opens after now: {why}",
            hint="add a window to the config, or pass --window START/END",
        )
    if open_now is not None:
        click.echo(
            f"note: the window {describe(open_now)} is open now; the timer is for the "
            "next one (to use this one, run `upgrader run` with --window by hand)",
            err=True,
        )
    return found


def _program() -> list[str]:
    """The upgrader of this very installation: the venv's console script when it has one."""
    script = Path(sys.executable).absolute().parent / "upgrader"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(Path(sys.executable).absolute()), "-m", "upgrader"]


def _write(directory: Path, units: Units) -> tuple[Path, Path]:
    """Write both files (0644: they hold paths and times, no secrets)."""
    directory = directory.absolute()
    paths = (directory / f"{units.name}.service", directory / f"{units.name}.timer")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, (units.service, units.timer), strict=True):
            files.write_private(path, text, mode=0o644)
    except OSError as exc:
        raise UsageError(f"cannot write to --output {directory}: {exc.strerror or exc}") from None
    return paths
