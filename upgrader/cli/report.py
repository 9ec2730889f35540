"""``upgrader report``, and the ``--report FILE`` of ``run`` and ``plan``.

Building and rendering are ``upgrader.reports``; this module only finds the journal, picks
the format and writes the file (owner-only: a report names hosts, VMs and the site's
layout). ``--report`` is checked before anything runs, so a typo in the suffix costs
nothing; the report of a run is written when the run ends, however it ends (finished,
failed, paused, refused by a gate), because the failed night is the one that needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from upgrader.cli.options import config_option, site_workspace, stage_option
from upgrader.config.workspace import Workspace
from upgrader.errors import UpgraderError, UsageError
from upgrader.journal import files
from upgrader.journal.store import read_events
from upgrader.reports.build import build
from upgrader.reports.data import from_plan
from upgrader.reports.render import format_of, render

REPORT_HELP = {
    "run": "write the run's report when it ends, however it ends: Markdown, HTML or JSON by "
    "the suffix (.md, .html, .json)",
    "plan": "write the plan's report (plan only: no preflight, no check mode): Markdown, HTML "
    "or JSON by the suffix (.md, .html, .json)",
}


def report_text(ws: Any, run_id: str, fmt: str) -> str:
    """The report of run (or dry run) ``run_id`` in ``fmt``."""
    from upgrader.run.status import find_run

    events = read_events(find_run(ws, run_id) / "journal.jsonl")
    if not events:
        raise UsageError(f"run '{run_id}' has an empty journal: nothing to report")
    return render(build(events), fmt)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it whole."""
    path = path.expanduser()
    try:
        files.write_private(path, text)
    except OSError as exc:  # a missing directory too
        raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from None


def _format_of(path: Path) -> str:
    fmt = format_of(path.name)
    if fmt is None:
        raise UsageError(
            f"--report {path}: the suffix says no format", hint="name the file .md, .html or .json"
        )
    return fmt


def _check(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse a report file with an unknown suffix, or in a missing directory, up front."""
    if value is not None:
        _format_of(value)
        parent = value.expanduser().parent
        if str(parent) and not parent.is_dir():
            raise UsageError(f"--report {value}: no directory {parent}")
    return value


def report_option(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--report FILE`` for ``run`` (the run's or dry run's report when it ends) or ``plan``
    (the plan's report). Wraps the command, whose own signature stays as it was."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, report: Path | None = None, **kwargs: Any) -> Any:
            if report is None:
                return f(*args, **kwargs)
            writer = _after_run if command == "run" else _after_plan
            return writer(f, report, args, kwargs)

        return click.option(
            "--report",
            "report",
            type=click.Path(path_type=Path),
            metavar="FILE",
            callback=_check,
            expose_value=True,
            is_eager=True,
            help=REPORT_HELP[command],
        )(wrapper)

    return decorate


def _workspace(kwargs: dict[str, Any]) -> Workspace:
    return site_workspace(kwargs.get("config"), bool(kwargs.get("stage")))


def _after_run(f: Callable[..., Any], report: Path, args: Any, kwargs: dict[str, Any]) -> Any:
    """Run the command; then report the run it started, whatever the outcome."""
    ws = _workspace(kwargs)
    runs_dir = ws.site.runs_dir
    before = {p.name for p in runs_dir.glob(f"{ws.env.name}-*")} if runs_dir.is_dir() else set()
    try:
        return f(*args, **kwargs)
    finally:
        new = (
            sorted(
                p.name
                for p in runs_dir.glob(f"{ws.env.name}-*")
                if p.name not in before and (p / "journal.jsonl").is_file()
            )
            if runs_dir.is_dir()
            else []
        )
        if new:
            _write_report(ws, new[-1], report)
        else:
            click.echo(f"no report written to {report}: no run started", err=True)


def _write_report(ws: Any, run_id: str, report: Path) -> None:
    try:
        write_private(report, report_text(ws, run_id, _format_of(report)))
    except UpgraderError as exc:  # the run's own outcome matters more than its report's
        click.echo(f"error: the report of {run_id} was not written: {exc}", err=True)
        return
    click.echo(f"report of {run_id}: {report}", err=True)


def _after_plan(f: Callable[..., Any], report: Path, args: Any, kwargs: dict[str, Any]) -> Any:
    """Print the plan as the command does; then write the plan's report (plan only), also
    when inhibitors make ``plan`` exit 5 (the report is how they get read)."""
    try:
        result = f(*args, **kwargs)
    except SystemExit:
        _plan_report(kwargs, report)
        raise
    _plan_report(kwargs, report)
    return result


def _plan_report(kwargs: dict[str, Any], report: Path) -> None:
    from upgrader.run.context import client_for, estimates
    from upgrader.run.prepare import prepare_plan
    from upgrader.windows.choose import forecast, now, window_dict

    ws = _workspace(kwargs)
    plan, _ = prepare_plan(
        ws, client_for(ws.env), kwargs.get("target") or "3.6", kwargs.get("accept") or ()
    )
    at = now()
    window = forecast(ws, None, at)
    model = from_plan(plan.to_dict(), window_dict(window), estimates(ws, plan), at.isoformat())
    write_private(report, render(model, _format_of(report)))
    click.echo(f"plan report: {report}", err=True)


@click.command()
@click.argument("run_id")
@config_option
@stage_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="Markdown, a self-contained HTML page, or JSON",
)
@click.option("-o", "output", type=click.Path(path_type=Path), help="write to FILE (mode 0600)")
def report(run_id: str, config: Path | None, stage: bool, fmt: str, output: Path | None) -> None:
    """The report of a run (what happened) or of a dry run (what would happen)."""
    text = report_text(site_workspace(config, stage), run_id, fmt)
    if output:
        write_private(output, text)
    else:
        click.echo(text, nl=False)
