"""The SQLite side of the lab ``onedb``: versions, history, backup and restore.

Mirrors ``BackEndSQLite`` of ``src/onedb/onedb_backend.rb`` (3.4.1/3.6.0) with two lab
differences: the backup is taken with SQLite's online backup API (consistent even if
the simulator is writing), and the lock file is the simulator's ``<db dir>/.lock``
instead of ``/var/lock/one/one``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from upgrader.lab.oned.store import lock_path


class OneDBError(Exception):
    """A failure onedb reports as one line and exit code 255."""


class SqliteBackend:
    """One SQLite oned database."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise OneDBError(f"File {path} doesn't exist")
        self.path = path

    # ------------------------------------------------------------ locations
    @property
    def lock_file(self) -> Path:
        """The simulator's lock file for this database."""
        return lock_path(self.path.resolve())

    @property
    def bck_file(self) -> Path:
        """Default backup file: ``one.db.bck`` beside the database."""
        return self.path.parent / "one.db.bck"

    def check_not_running(self) -> None:
        """Refuse while oned holds the database, as ``one_not_running`` does."""
        if self.lock_file.exists():
            raise OneDBError(f"First stop OpenNebula. Lock file found: {self.lock_file}")

    # ----------------------------------------------------------- connection
    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An autocommit connection (callers BEGIN/COMMIT themselves)."""
        try:
            conn = sqlite3.connect(str(self.path), timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise OneDBError(f"Error connecting to DB: {exc}") from None
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    def tables(conn: sqlite3.Connection) -> set[str]:
        """Names of the tables present."""
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    # ------------------------------------------------------------- versions
    def read_db_version(self) -> tuple[str, int, str]:
        """(version, timestamp, comment) of the newest db_versioning row."""
        try:
            with self.connect() as conn:
                tables = self.tables(conn)
                if "db_versioning" in tables:
                    row = conn.execute(
                        "SELECT version, timestamp, comment FROM db_versioning "
                        "WHERE oid=(SELECT MAX(oid) FROM db_versioning)"
                    ).fetchone()
                    if row is not None:
                        return str(row[0]), int(row[1] or 0), str(row[2] or "")
                if not self._has_oneadmin(conn, tables):
                    raise OneDBError(
                        "Database schema does not look to be created by "
                        "OpenNebula: table user_pool is missing or empty."
                    )
                if "image_pool" not in tables:
                    raise OneDBError(
                        "Database schema looks to be created by OpenNebula 1.X."
                        "This tool only works with databases created by 2.X "
                        "versions."
                    )
        except sqlite3.DatabaseError as exc:
            raise OneDBError(f"Error connecting to DB: {exc}") from None
        return (
            "2.0",
            0,
            "Could not read any previous db_versioning data, assuming it is "
            "an OpenNebula 2.0 or 2.2 DB.",
        )

    @staticmethod
    def _has_oneadmin(conn: sqlite3.Connection, tables: set[str]) -> bool:
        if "user_pool" not in tables:
            return False
        return conn.execute("SELECT 1 FROM user_pool WHERE oid=0").fetchone() is not None

    def history(self) -> list[tuple[str, int, str]]:
        """Every db_versioning row, oldest first."""
        try:
            with self.connect() as conn:
                rows = conn.execute(
                    "SELECT version, timestamp, comment FROM db_versioning ORDER BY oid"
                )
                return [(str(v), int(t or 0), str(c or "")) for v, t, c in rows]
        except sqlite3.DatabaseError as exc:
            raise OneDBError(f"No version records found. Error message: {exc}") from None

    @staticmethod
    def add_db_version(conn: sqlite3.Connection, version: str, comment: str) -> None:
        """Append a db_versioning row (oid = max + 1), inside the caller's transaction."""
        row = conn.execute("SELECT MAX(oid) FROM db_versioning").fetchone()
        oid = int(row[0] or 0) + 1
        conn.execute(
            "INSERT INTO db_versioning (oid, version, timestamp, comment) VALUES (?, ?, ?, ?)",
            (oid, version, int(time.time()), comment),
        )

    # ------------------------------------------------------ backup/restore
    def backup(self, target: Path) -> None:
        """Copy the database to ``target`` (replaced atomically if it exists)."""
        if target.exists() and target.resolve() == self.path.resolve():
            raise OneDBError(f"File {target} is the database itself, backup aborted.")
        if target.is_dir():
            raise OneDBError(f"File {target} is a directory, backup aborted.")
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            _copy_db(self.path, tmp)
            os.replace(tmp, target)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OneDBError(f"Error writing backup {target}: {reason}") from None

    def restore(self, source: Path) -> None:
        """Copy ``source`` over the database, through SQLite (journals stay coherent)."""
        try:
            _copy_db(source, self.path)
        except sqlite3.Error as exc:
            raise OneDBError(f"Error restoring {source} into {self.path}: {exc}") from None


def _copy_db(source: Path, target: Path) -> None:
    """SQLite online backup of ``source`` into ``target``."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails early if not a DB
        dst = sqlite3.connect(str(target), timeout=10)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
