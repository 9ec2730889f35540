"""The migrator chain of the lab ``onedb`` and which package ships which steps.

The real ``onedb upgrade`` keeps loading the single ``<current>_to_*.rb`` it finds in
its library directory until none is left, so what it can reach depends on the
installed package (3.4.1 ships the steps up to 3.4.1, 3.6.0 ships them all). The lab
``onedb`` is the 3.6.0 one unless ONEDB_LAB_PACKAGE names another release, and unlike
the real one it honours ``upgrade <version>`` as the version to stop at.
"""

from __future__ import annotations

from upgrader.lab.onedb import to34, to36
from upgrader.lab.onedb.base import Migrator, noop

CHAIN: tuple[Migrator, ...] = (
    Migrator("3.2.0", "3.2.1", noop),
    Migrator("3.2.1", "3.3.0", noop),
    Migrator("3.3.0", "3.3.80", to34.up),
    Migrator("3.3.80", "3.4.0", noop),
    Migrator("3.4.0", "3.4.1", noop),
    Migrator("3.4.1", "3.5.80", to36.up_3_5_80),
    Migrator("3.5.80", "3.6.0", to36.up_3_6_0),
)
VERSIONS: tuple[str, ...] = (CHAIN[0].source, *(m.target for m in CHAIN))
PACKAGES: dict[str, str] = {"3.2.1": "3.2.1", "3.4.1": "3.4.1", "3.6.0": "3.6.0"}
NEWEST_PACKAGE = "3.6.0"
PACKAGE_ENV = "ONEDB_LAB_PACKAGE"


def plan(current: str, target: str | None, package: str = NEWEST_PACKAGE) -> list[Migrator]:
    """The migrators that take a ``current`` database to ``target`` (default: newest).

    ``package`` limits the steps to those its onedb ships. Nothing matches a version
    outside the chain (a 3.4.2 database, say), exactly like the real tool.
    """
    limit = VERSIONS.index(PACKAGES[package])
    if target is not None:
        limit = min(limit, VERSIONS.index(target))
    steps: list[Migrator] = []
    version = current
    while True:
        step = next((m for m in CHAIN if m.source == version), None)
        if step is None or VERSIONS.index(step.target) > limit:
            return steps
        steps.append(step)
        version = step.target
