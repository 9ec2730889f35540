"""The ``upgrader`` command line: the only place where errors become messages and exit codes."""

from __future__ import annotations

import sys

import click

from upgrader import __version__
from upgrader.errors import UpgraderError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upgrader")
def cli() -> None:
    """Plan, run, check and report OpenNebula 3.x upgrades and storage migrations."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an ``UpgraderError`` becomes one line on stderr and its exit code."""
    try:
        cli.main(args=argv, prog_name="upgrader", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except UpgraderError as exc:
        click.echo(f"error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(0)
