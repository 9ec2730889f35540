"""``python -m upgrader.lab.onedb``: the lab's ``onedb`` for the simulator's SQLite database.

    python -m upgrader.lab.onedb version|history|backup [file]|restore [file]|upgrade [version]
        -s/--sqlite FILE [-b/--backup FILE] [-f/--force] [-v/--verbose]

Same sub-commands, options and messages as onedb 3.4.1/3.6.0 (SQLite only). Lab
differences: the lock file is the simulator's ``<db dir>/.lock``, the default backup
is ``<db dir>/one.db.bck``, ``upgrade`` refuses while the lock file exists, and
``upgrade <version>`` stops at that version. Environment: ONEDB_LAB_PACKAGE (which
release's onedb this is: 3.2.1, 3.4.1 or 3.6.0, default 3.6.0), ONE_LOCATION (as the
real tool: ``<var>`` becomes ``$ONE_LOCATION/var``), ONEDB_LAB_ROOT (a directory
standing in for the front end's ``/``: the 3.2 -> 3.4 step makes its ``ln -s`` image
links there; without it they are skipped).

Exit status: 0 done, 255 failed (one line on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn, TextIO

from upgrader.lab.onedb.backend import OneDBError, SqliteBackend
from upgrader.lab.onedb.chain import NEWEST_PACKAGE, PACKAGE_ENV, PACKAGES, VERSIONS
from upgrader.lab.onedb.commands import FAILED, OneDB, Settings

PROG = "upgrader.lab.onedb"
USAGE = 2
COMMANDS = {"version": 0, "history": 0, "backup": 1, "restore": 1, "upgrade": 1}


class UsageError(Exception):
    """A bad command line: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of onedb 3.x."""
    p = _Parser(
        prog=PROG,
        description="Manage the OpenNebula (lab simulator) database: "
        "version, history, backup, restore and upgrade.",
    )
    p.add_argument("command", nargs="?", help=", ".join(COMMANDS))
    p.add_argument("args", nargs="*", help="backup/restore: FILE; upgrade: VERSION")
    p.add_argument("-s", "--sqlite", type=Path, metavar="FILE", help="SQLite DB file")
    p.add_argument(
        "-b",
        "--backup",
        type=Path,
        metavar="FILE",
        help="upgrade: use this file to store the backup",
    )
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite an existing backup file / the DB on restore",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="verbose output")
    p.add_argument(
        "-V",
        "--version",
        action="store_true",
        dest="show_version",
        help="print the OpenNebula release of this onedb and exit",
    )
    mysql = p.add_argument_group("MySQL (not supported by the lab)")
    for short, long, meta in (
        ("-S", "--server", "HOST"),
        ("-P", "--port", "PORT"),
        ("-u", "--username", "USER"),
        ("-p", "--password", "PASS"),
        ("-d", "--dbname", "DBNAME"),
    ):
        mysql.add_argument(short, long, metavar=meta, dest=f"mysql_{long[2:]}")
    return p


def _package() -> str:
    package = os.environ.get(PACKAGE_ENV) or NEWEST_PACKAGE
    if package not in PACKAGES:
        raise UsageError(
            f"{PACKAGE_ENV}='{package}' is not a release the lab knows; "
            f"known: {', '.join(PACKAGES)}"
        )
    return package


def _settings(args: argparse.Namespace) -> Settings:
    one_location = os.environ.get("ONE_LOCATION")
    root = os.environ.get("ONEDB_LAB_ROOT")
    return Settings(
        verbose=args.verbose,
        force=args.force,
        package=_package(),
        lib_location=f"{one_location}/lib/ruby" if one_location else "/usr/lib/one/ruby",
        var_location=f"{one_location}/var" if one_location else "/var/lib/one",
        lab_root=Path(root) if root else None,
    )


def _check_args(args: argparse.Namespace) -> None:
    if args.command is None:
        raise UsageError(f"no command given; expected one of: {', '.join(COMMANDS)}")
    if args.command not in COMMANDS:
        raise UsageError(
            f"unknown command '{args.command}'; expected one of: {', '.join(COMMANDS)}"
        )
    if len(args.args) > COMMANDS[args.command]:
        expected = "no argument" if not COMMANDS[args.command] else "at most one argument"
        raise UsageError(f"wrong number of arguments: '{args.command}' takes {expected}")
    if args.command == "upgrade" and args.args and args.args[0] not in VERSIONS:
        raise UsageError(f"unknown version '{args.args[0]}'; known: {', '.join(VERSIONS)}")


def run(argv: list[str], out: TextIO, err: TextIO) -> int:
    """Parse ``argv`` and run one command; return the exit status."""
    parser = build_parser()
    try:
        if any(a in ("-V", "--version") for a in argv):
            out.write(f"OpenNebula {_package()} (lab onedb)\n")
            return 0
        args = parser.parse_intermixed_args(argv)
        _check_args(args)
        settings = _settings(args)
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc} (see -h)\n")
        return USAGE
    try:
        if any(
            getattr(args, f"mysql_{n}") is not None
            for n in ("server", "port", "username", "password", "dbname")
        ):
            raise OneDBError(
                "The lab onedb supports SQLite only: use -s FILE "
                "(MySQL options -S/-P/-u/-p/-d are not supported)."
            )
        if args.sqlite is None:
            raise OneDBError("You need to specify the SQLite or MySQL connection options.")
        onedb = OneDB(SqliteBackend(args.sqlite), settings, out, err)
        arg = args.args[0] if args.args else None
        if args.command == "version":
            return onedb.version()
        if args.command == "history":
            return onedb.history()
        if args.command == "backup":
            return onedb.backup(Path(arg) if arg else None)
        if args.command == "restore":
            return onedb.restore(Path(arg) if arg else None)
        return onedb.upgrade(arg, args.backup)
    except OneDBError as exc:
        out.flush()
        err.write(f"{exc}\n")
        return FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m upgrader.lab.onedb``."""
    return run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
