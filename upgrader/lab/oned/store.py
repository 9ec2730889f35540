"""The simulator's database: SQLite in oned 3.x's own table layout.

Bodies are the objects' XML, as oned stores them, so the lab ``onedb`` migrates them
the way the real Ruby migrators do and pool calls return stored bodies verbatim.
The lock file sits beside the database (``<dir>/.lock``), where a self-contained
install of oned keeps it, and holds the pid of the process that owns the database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

_OBJ = (
    "oid INTEGER PRIMARY KEY, name VARCHAR(128), body TEXT, uid INTEGER, gid INTEGER, "
    "owner_u INTEGER, group_u INTEGER, other_u INTEGER"
)

TABLES_32 = {
    "pool_control": "tablename VARCHAR(32) PRIMARY KEY, last_oid BIGINT UNSIGNED",
    "db_versioning": "oid INTEGER PRIMARY KEY, version VARCHAR(256), timestamp INTEGER, "
    "comment VARCHAR(256)",
    "acl": "oid INT PRIMARY KEY, user BIGINT, resource BIGINT, rights BIGINT",
    "user_pool": _OBJ + ", UNIQUE(name)",
    "group_pool": _OBJ + ", UNIQUE(name)",
    "host_pool": "oid INTEGER PRIMARY KEY, name VARCHAR(128), body TEXT, state INTEGER, "
    "last_mon_time INTEGER, uid INTEGER, gid INTEGER, owner_u INTEGER, "
    "group_u INTEGER, other_u INTEGER, UNIQUE(name)",
    "image_pool": _OBJ + ", UNIQUE(name,uid)",
    "template_pool": _OBJ,
    "network_pool": _OBJ + ", UNIQUE(name,uid)",
    "leases": "oid INTEGER, ip BIGINT, body TEXT, PRIMARY KEY(oid,ip)",
    "vm_pool": "oid INTEGER PRIMARY KEY, name VARCHAR(128), body TEXT, uid INTEGER, "
    "gid INTEGER, last_poll INTEGER, state INTEGER, lcm_state INTEGER, "
    "owner_u INTEGER, group_u INTEGER, other_u INTEGER",
    "history": "vid INTEGER, seq INTEGER, body TEXT, PRIMARY KEY(vid,seq)",
}
TABLES_34 = {
    **TABLES_32,
    "cluster_pool": _OBJ + ", UNIQUE(name)",
    "datastore_pool": _OBJ + ", UNIQUE(name)",
}
TABLES_36 = {
    **TABLES_34,
    "history": "vid INTEGER, seq INTEGER, body TEXT, stime INTEGER, etime INTEGER, "
    "PRIMARY KEY(vid,seq)",
    "document_pool": _OBJ + ", type INTEGER",
    "host_monitoring": "hid INTEGER, last_mon_time INTEGER, body TEXT, "
    "PRIMARY KEY(hid, last_mon_time)",
    "vm_monitoring": "vmid INTEGER, last_poll INTEGER, body TEXT, PRIMARY KEY(vmid, last_poll)",
}
TABLES = {"3.2": TABLES_32, "3.4": TABLES_34, "3.6": TABLES_36}


class LockHeldError(Exception):
    """Another live process holds the database's lock file."""


def lock_path(db: Path) -> Path:
    """Where oned's lock file for this database lives."""
    return db.parent / ".lock"


def lock_holder(db: Path) -> int | None:
    """The pid in the lock file if that process is alive, else None."""
    path = lock_path(db)
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def acquire_lock(db: Path) -> None:
    """Create the lock file with O_EXCL, as oned does; a stale one (dead pid) is replaced."""
    path = lock_path(db)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if lock_holder(db) is not None:
                raise LockHeldError(f"Cannot start oned, opening lock file {path}") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale, like `one start` removes it
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return
    raise LockHeldError(f"Cannot start oned, opening lock file {path}")


def release_lock(db: Path) -> None:
    """Remove the lock file if it is ours."""
    path = lock_path(db)
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


class Store:
    """An open oned database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def tables(self) -> set[str]:
        """Names of the tables present."""
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {r[0] for r in rows}

    def db_version(self) -> str | None:
        """The newest db_versioning row, or None for an empty database."""
        if "db_versioning" not in self.tables():
            return None
        row = self.conn.execute(
            "SELECT version FROM db_versioning ORDER BY oid DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def history(self) -> list[tuple[int, str, int, str]]:
        """Every db_versioning row: (oid, version, timestamp, comment)."""
        return list(
            self.conn.execute(
                "SELECT oid, version, timestamp, comment FROM db_versioning ORDER BY oid"
            )
        )

    def bootstrap(self, series: str, version: str, comment: str) -> None:
        """Create the tables of ``series`` and record the version, as a fresh oned does."""
        with self.transaction():
            for name, columns in TABLES[series].items():
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
            self.add_version(version, comment)

    def add_version(self, version: str, comment: str) -> None:
        """Append a db_versioning row."""
        self.conn.execute(
            "INSERT INTO db_versioning (version, timestamp, comment) VALUES (?, ?, ?)",
            (version, int(time.time()), comment),
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic batch of writes."""
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def bodies(self, table: str) -> list[tuple[int, str]]:
        """(oid, body) of every row, in oid order."""
        if table not in self.tables():
            return []
        return list(self.conn.execute(f"SELECT oid, body FROM {table} ORDER BY oid"))

    def history_bodies(self) -> list[tuple[int, int, str]]:
        """(vid, seq, body) of every history record."""
        return list(self.conn.execute("SELECT vid, seq, body FROM history ORDER BY vid, seq"))

    def last_oid(self, table: str) -> int:
        """pool_control's last oid for a pool table (-1 when none was allocated)."""
        row = self.conn.execute(
            "SELECT last_oid FROM pool_control WHERE tablename=?", (table,)
        ).fetchone()
        return int(row[0]) if row else -1

    def set_last_oid(self, table: str, oid: int) -> None:
        """Record the last oid allocated in ``table``."""
        self.conn.execute(
            "INSERT OR REPLACE INTO pool_control (tablename, last_oid) VALUES (?, ?)", (table, oid)
        )

    def upsert(self, table: str, row: dict[str, object]) -> None:
        """Insert or replace one row."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(
            f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", tuple(row.values())
        )

    def upsert_many(self, table: str, rows: Iterable[dict[str, object]]) -> None:
        """Insert or replace rows that all have the same columns."""
        rows = list(rows)
        if not rows:
            return
        cols = ", ".join(rows[0])
        marks = ", ".join("?" for _ in rows[0])
        self.conn.executemany(
            f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})",
            [tuple(r.values()) for r in rows],
        )

    def delete(self, table: str, key: str, value: int) -> None:
        """Delete the rows whose ``key`` equals ``value``."""
        self.conn.execute(f"DELETE FROM {table} WHERE {key}=?", (value,))

    def lease_bodies(self, oid: int) -> list[str]:
        """The stored bodies of one network's leases (``Leases::select``)."""
        if "leases" not in self.tables():
            return []
        return [r[0] for r in self.conn.execute("SELECT body FROM leases WHERE oid=?", (oid,))]

    def replace_leases(self, oid: int, rows: Iterable[dict[str, object]]) -> None:
        """Make one network's rows of the ``leases`` table exactly ``rows``."""
        self.delete("leases", "oid", oid)
        self.upsert_many("leases", rows)
