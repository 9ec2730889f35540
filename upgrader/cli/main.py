"""The ``upgrader`` command: its group of commands, and the only place where errors become
one line on stderr and an exit code (DESIGN.md section 4)."""

from __future__ import annotations

import sys

import click

from upgrader import __version__
from upgrader.cli import gates, lab, report, runs, windows
from upgrader.errors import UpgraderError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upgrader")
def cli() -> None:
    """Plan, run, check and report OpenNebula 3.x upgrades and storage migrations."""


for command in (
    runs.plan,
    runs.run,
    runs.resume,
    runs.status,
    runs.abort,
    report.report,
    gates.gates,
    lab.lab,
    windows.windows,
    windows.schedule,
):
    cli.add_command(command)


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
        # One line, ending with what to do next (DESIGN.md section 4).
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        click.echo(f"error: {exc}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug of ours: one line here, the traceback kept for the report
        kept = _keep_traceback()
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (hint: this is a bug "
            f"in upgrader; the traceback is in {kept}; the journal says where the run "
            "stands, `upgrader status`)",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)


def _keep_traceback() -> str:
    """Write the current exception's traceback to an owner-only file; return its path."""
    import os
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="upgrader-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(traceback.format_exc())
    return path
