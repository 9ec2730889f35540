"""The five ``onedb`` sub-commands, worded like ``src/onedb/onedb.rb`` (3.4.1/3.6.0)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from upgrader.lab.onedb.backend import OneDBError, SqliteBackend
from upgrader.lab.onedb.base import Context, MigrationError, Migrator
from upgrader.lab.onedb.chain import NEWEST_PACKAGE, plan

FAILED = 255  # the real CLI exits with -1


@dataclass
class Settings:
    """Options and environment that shape a run."""

    verbose: bool = False
    force: bool = False
    package: str = NEWEST_PACKAGE
    lib_location: str = "/usr/lib/one/ruby"  # where the Ruby migrators would live
    var_location: str = "/var/lib/one"  # <var> in BASE_PATH and image SOURCE
    lab_root: Path | None = None  # stands in for the front end's / for `ln -s`


def _stamp(timestamp: int) -> str:
    return time.strftime("%m/%d %H:%M:%S", time.localtime(timestamp))


class OneDB:
    """``onedb`` on one SQLite database."""

    def __init__(
        self, backend: SqliteBackend, settings: Settings, out: TextIO, err: TextIO
    ) -> None:
        self.backend = backend
        self.s = settings
        self.out = out
        self.err = err

    def say(self, line: str = "") -> None:
        """One line on standard output."""
        self.out.write(f"{line}\n")

    # ------------------------------------------------------------ commands
    def version(self) -> int:
        """Print the database version (``-v``: with timestamp and comment)."""
        version, timestamp, comment = self.backend.read_db_version()
        if self.s.verbose:
            self.say(f"Version:   {version}")
            self.say(f"Timestamp: {_stamp(int(time.time()) if version == '2.0' else timestamp)}")
            self.say(f"Comment:   {comment}")
        else:
            self.say(version)
        return 0

    def history(self) -> int:
        """Print every db_versioning row."""
        for version, timestamp, comment in self.backend.history():
            self.say(f"Version:   {version}")
            self.say(f"Timestamp: {_stamp(timestamp)}")
            self.say(f"Comment:   {comment}")
            self.say()
        return 0

    def backup(self, file: Path | None) -> int:
        """Copy the database to ``file`` (default ``<db dir>/one.db.bck``)."""
        target = file or self.backend.bck_file
        if not self.s.force and target.exists():
            raise OneDBError(f"File {target} exists, backup aborted. Use -f to overwrite.")
        self.backend.backup(target)
        self.say(f"Sqlite database backup stored in {target}")
        self.say("Use 'onedb restore' or copy the file back to restore the DB.")
        return 0

    def restore(self, file: Path | None) -> int:
        """Put a backup back in place (needs ``-f``: the SQLite file always exists)."""
        source = file or self.backend.bck_file
        if not source.is_file():
            raise OneDBError(f"File {source} doesn't exist, backup restoration aborted.")
        self.backend.check_not_running()
        if not self.s.force:
            raise OneDBError(f"File {self.backend.path} exists, use -f to overwrite.")
        self.backend.restore(source)
        self.say(f"Sqlite database backup restored in {self.backend.path}")
        return 0

    def upgrade(self, target: str | None, backup: Path | None) -> int:
        """Back up, run the migrators up to ``target``, record the new version."""
        self.backend.check_not_running()
        version, _, comment = self.backend.read_db_version()
        if self.s.verbose:
            self.say("Version read:")
            self.say(f"{version} : {comment}")
            self.say()
        steps = plan(version, target, self.s.package)
        if not steps:
            self.say(f"Database already uses version {version}")
            return 0
        backup = backup or self.backend.bck_file
        self.backup(backup)
        try:
            message = self._migrate(version, steps)
        except Exception as exc:  # any failure means: restore the backup
            return self._restore_after(exc, backup)
        self.say(message)
        return 0

    # ------------------------------------------------------------- helpers
    def _migrate(self, version: str, steps: list[Migrator]) -> str:
        """Run ``steps`` in one transaction; return the db_versioning comment written."""
        with self.backend.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ctx = Context(conn, self.out, self.s.var_location, self.s.lab_root)
                for step in steps:
                    if self.s.verbose:
                        self.say(
                            f"  > Running migrator {self.s.lib_location}/onedb/{step.filename}"
                        )
                    if not step.up(ctx):
                        raise MigrationError(
                            f"Error while upgrading from {version} to {step.target}"
                        )
                    if self.s.verbose:
                        self.say("  > Done")
                        self.say()
                last = steps[-1]
                comment = (
                    f"Database migrated from {version} to {last.target} "
                    f"({last.one_version}) by onedb command."
                )
                self.backend.add_db_version(conn, last.target, comment)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return comment

    def _restore_after(self, exc: Exception, backup: Path) -> int:
        """Report a failed migration and put the backup back, as onedb.rb does."""
        if isinstance(exc, (MigrationError, OneDBError, sqlite3.Error)):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        self.out.flush()
        self.err.write(f"{message.splitlines()[0] if message else type(exc).__name__}\n")
        self.err.flush()
        self.say()
        self.say("The database will be restored")
        self.s.force = True
        self.restore(backup)
        return FAILED
