"""What every command shares: its options (each defined once), the environment it works on,
its workspace, the accepted-findings check and the timestamped progress line.

Like every check, these raise ``UpgraderError``s, which ``cli.main`` turns into one line and an
exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from upgrader.config.workspace import Workspace
from upgrader.config.workspace import workspace as open_workspace
from upgrader.errors import UsageError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

config_option: Decorator = click.option(
    "--config", type=click.Path(path_type=Path), help="the site config file"
)
stage_option: Decorator = click.option(
    "--stage", is_flag=True, help="the staging environment (else production)"
)
accept_option: Decorator = click.option(
    "--accept", multiple=True, metavar="KEY", help="accept a finding by its key"
)
window_option: Decorator = click.option(
    "--window",
    metavar="SPEC",
    help="an ad-hoc maintenance window (journaled): now+2h, START/END or START+4h "
    "(ISO 8601 with a UTC offset); default: the window configured for the environment",
)


def json_option(what: str = "machine-readable output") -> Decorator:
    """``--json``: one JSON document on stdout (``what`` says which), progress on stderr."""
    return click.option("--json", "as_json", is_flag=True, help=f"{what} as JSON on stdout")


def environment(stage: bool) -> str:
    """The environment a command targets: staging with ``--stage``, else production."""
    return "staging" if stage else "production"


def progress(line: str) -> None:
    """One progress line on stderr, with the time it was said."""
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


def site_workspace(config: Path | None, stage: bool) -> Workspace:
    """The workspace of a command that reads only the site config and the journals."""
    return open_workspace(config, environment(stage))


def host_workspace(config: Path | None, stage: bool) -> Workspace:
    """The workspace of a command that works on the cloud's hosts, its inventory checked
    first: a broken one is then one line naming it, not a crash while gathering facts or
    gates that cannot see their hosts after Ansible ran."""
    from upgrader.config.inventory import check_inventory

    ws = site_workspace(config, stage)
    check_inventory(ws.env)
    return ws


def check_accepted(plan: Any, accept: Sequence[str]) -> None:
    """Refuse an ``--accept`` key no finding of the plan has: a typo would otherwise be
    ignored, and the operator would believe a risk was accepted that was not."""
    keys = {f.key for f in plan.findings}
    unknown = [key for key in accept if key not in keys]
    if unknown:
        raise UsageError(
            f"{', '.join(f'--accept {k}' for k in unknown)}: the plan has no such finding "
            f"(its findings: {', '.join(sorted(keys)) or 'none'})",
            hint="`upgrader plan` lists the findings and their keys",
        )
