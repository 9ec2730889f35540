"""What every lab migrator gets: the open database, where to print, and the front end's paths.

A migrator is the Python twin of one ``src/onedb/<from>_to_<to>.rb`` file: ``up``
returns True when done and False when it refuses (after printing why); an exception
means it failed. The chain runs inside one SQLite transaction, so a failure leaves
nothing half done even before ``onedb`` restores its backup.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from upgrader.lab.onedb.xmlbody import BodyError


class MigrationError(Exception):
    """A migrator cannot go on; the message is printed before the restore."""


@dataclass
class Context:
    """The state a migrator works on."""

    conn: sqlite3.Connection
    out: TextIO
    var_location: str = "/var/lib/one"
    lab_root: Path | None = None

    def say(self, line: str = "") -> None:
        """Print one line on onedb's standard output."""
        self.out.write(f"{line}\n")

    def rows(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Every row of a query, by column name."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    def rewrite(
        self, table: str, fn: Callable[[str], str], where: str = "", params: tuple[object, ...] = ()
    ) -> None:
        """Replace the body of every row of ``table`` (matching ``where``) by ``fn(body)``."""
        clause = f" WHERE {where}" if where else ""
        for oid, body in self.conn.execute(
            f"SELECT oid, body FROM {table}{clause} ORDER BY oid", params
        ).fetchall():
            new = self.edit(table, oid, body, fn)
            if new != body:
                self.conn.execute(f"UPDATE {table} SET body=? WHERE oid=?", (new, oid))

    @staticmethod
    def edit(table: str, oid: object, body: str, fn: Callable[[str], str]) -> str:
        """``fn(body)``, with a malformed body reported by table and oid."""
        try:
            return fn(body)
        except BodyError as exc:
            raise MigrationError(f"Malformed body in {table} (oid {oid}): {exc}") from None

    def link(self, source: str, target: str) -> None:
        """``ln -s source target`` on the front end, ignoring failures like the Ruby code.

        Only done when ONEDB_LAB_ROOT names a directory standing in for the front end's
        ``/``; both paths are taken inside it. Without it the link is silently skipped.
        """
        if self.lab_root is None:
            return
        with contextlib.suppress(OSError):
            os.symlink(self.lab_root / source.lstrip("/"), self.lab_root / target.lstrip("/"))


@dataclass(frozen=True)
class Migrator:
    """One step of the chain: ``<source>_to_<target>.rb``."""

    source: str
    target: str
    up: Callable[[Context], bool]

    @property
    def one_version(self) -> str:
        """What the Ruby file's ``one_version`` returns."""
        return f"OpenNebula {self.target}"

    @property
    def filename(self) -> str:
        """The Ruby file this step stands for."""
        return f"{self.source}_to_{self.target}.rb"


def noop(ctx: Context) -> bool:
    """A version bump with no schema change."""
    del ctx
    return True


def ruby_to_i(value: str | None) -> int:
    """Ruby's ``String#to_i``: the leading integer, 0 when there is none (``"0.5"`` -> 0)."""
    m = re.match(r"\s*([+-]?\d+)", value or "")
    return int(m.group(1)) if m else 0
