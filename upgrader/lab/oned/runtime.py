"""Opening a simulator database the way oned starts: version check, bootstrap, load, rearm."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from upgrader.lab.oned import vm_lcm, vm_migration
from upgrader.lab.oned.clock import SimClock
from upgrader.lab.oned.cloud import Cloud, Timings
from upgrader.lab.oned.monitoring import start_monitoring
from upgrader.lab.oned.objects import Host, Vm
from upgrader.lab.oned.releases import OnedVersion
from upgrader.lab.oned.scheduler import schedule
from upgrader.lab.oned.states import ACTIVE, H_DISABLED, new_token
from upgrader.lab.oned.store import Store
from upgrader.lab.oned.virt import VirtView


class StartError(Exception):
    """oned refuses to start; the message is its own."""


def read_one_auth(path: Path) -> tuple[str, str]:
    """``USER:PASSWORD`` from a ONE_AUTH-style file."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartError(f"cannot read --one-auth {path}: {reason}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password or "\n" in text:
        raise StartError(f"malformed --one-auth {path}: expected one line USER:PASSWORD")
    return user, password


def open_store(db: Path, version: OnedVersion) -> tuple[Store, bool]:
    """Open the database; refuse another version's; return (store, is_new)."""
    if db.exists() and db.is_dir():
        raise StartError(f"--db {db} is a directory, not a database file")
    if not db.parent.is_dir():
        raise StartError(f"--db {db}: directory {db.parent} does not exist")
    try:
        store = Store(db)
        existing = store.db_version()
    except sqlite3.DatabaseError as exc:
        raise StartError(f"--db {db} is not an OpenNebula database: {exc}") from None
    if existing is not None and existing != version.db_version:
        store.close()
        raise StartError(
            f"Database version mismatch. Installed {version.banner} uses DB version "
            f"'{version.db_version}', and existing DB version is '{existing}'."
        )
    return store, existing is None


_REARM = {**vm_lcm.REARM, **vm_migration.REARM}


def rearm(c: Cloud) -> None:
    """After a restart: resume the timed work oned was doing (drivers answer again)."""
    for vm in c.pool(Vm).values():
        if vm.state == ACTIVE and vm.lcm_state in _REARM:
            _REARM[vm.lcm_state](c, vm, new_token(vm))
    for host in c.pool(Host).values():
        c.virt.add_host(host.name)
        if host.state != H_DISABLED:
            start_monitoring(c, host)
    # mm_sched's timer first fires one SCHED_INTERVAL after it starts, as later passes do
    c.at(c.t.sched_interval, schedule, c)


def open_cloud(
    db: Path,
    version: OnedVersion,
    *,
    auth: tuple[str, str],
    virt_dir: Path | None,
    speed: float = 1.0,
    timings: Timings | None = None,
    host_error_hook: str = "none",
    arm: bool = True,
) -> Cloud:
    """A ready cloud: bootstrapped on an empty database, loaded otherwise."""
    store, is_new = open_store(db, version)
    cloud = Cloud(version, store, VirtView(virt_dir), SimClock(speed), timings, host_error_hook)
    if is_new:
        store.bootstrap(
            version.series,
            version.db_version,
            f"Database created by {version.banner} (lab simulator)",
        )
        cloud.bootstrap(*auth)
    else:
        cloud.load()
    if arm:
        with cloud.lock:
            rearm(cloud)
    return cloud
