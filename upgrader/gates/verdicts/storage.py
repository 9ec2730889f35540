"""Verdict on the shared storage: datastores-healthy (mounts per host, oned's datastores).

Pure: no I/O, no clock. Named checks (``DATASTORES_HEALTHY_CHECKS``): five judge one mount
each, the others whether every host answered and what oned (3.4+) lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import (
    INCONCLUSIVE,
    CheckOutcome,
    evidence,
    judged,
    listing,
    parse_size,
    result,
)

# ------------------------------------------------------------------ datastores


@dataclass(frozen=True)
class DatastoreMount:
    """The datastore path on one host; ``mounted`` None when the host could not be read."""

    host: str
    path: str
    mounted: bool | None
    fs_type: str | None = None
    writable: bool | None = None
    size_bytes: int | None = None
    free_bytes: int | None = None
    error: str = ""
    expected_fs_type: str | None = None  # this host's expectation (inventory); the gate's wins
    # what is mounted, as findmnt shows it (device, device[/subdir] of a bind mount,
    # server:/export), read from the host's mountinfo
    source: str | None = None
    old_source: str | None = None  # the inventory's old datastore (one_datastore_source)
    new_source: str | None = None  # and the NFS export's (nfs_datastore_source)
    new_fs_type: str | None = None  # the NFS mount's type (nfs_datastore_fstype)


@dataclass(frozen=True)
class OnedDatastore:
    """One datastore as oned (3.4+) lists it."""

    id: int
    name: str
    base_path: str = ""


@dataclass(frozen=True)
class DatastoreObservation:
    """Mounts per host, from 3.4 oned's datastore view (None when not read), and the NFS
    exports the datastore moves to (their free space counts, their file system type not)."""

    mounts: tuple[DatastoreMount, ...]
    series: str | None = None  # "3.2", "3.4", "3.6"
    oned_datastores: tuple[OnedDatastore, ...] | None = None
    exports: tuple[DatastoreMount, ...] = ()


GATE = "datastores-healthy"


def datastores_healthy(
    obs: DatastoreObservation,
    *,
    fs_type: str = "",
    min_free: int | str = 0,
    datastores: Sequence[int | str] = (),
    storage: str = "",
) -> GateResult:
    """``datastores-healthy``: on every host the datastore path is mounted, of ``fs_type``
    (else the host's own expectation), writable, with more than ``min_free`` free ("10%",
    bytes, or "20G"); every NFS export likewise, but of any type; from 3.4, oned lists its
    datastores (all of ``datastores``, by id or name, when given). ``storage`` "old" or "new"
    also asks that each host mounts the old datastore, or the NFS export, as the inventory
    names them (a storage move's gates: before the switch, and after it).

    Named checks: per mount ``mounted``, ``fs_type_matches``, ``source_matches``,
    ``writable``, ``free_space``; over the hosts ``mounts_readable``; ``oned_lists_datastores``.
    """
    if storage not in ("", "old", "new"):
        raise ValueError(f"datastores-healthy: storage must be old or new, not {storage!r}")
    _threshold(min_free)  # a bad min_free is refused before anything is judged
    hosts = _host_problems(obs, fs_type=fs_type, min_free=min_free, storage=storage)
    readable = mounts_readable(obs)
    oned = oned_lists_datastores(obs, datastores=datastores)
    details = {
        "mounts": [_mount_evidence(m, m in obs.exports) for m in (*obs.mounts, *obs.exports)],
        **evidence(hosts, readable, oned),
        "expected_fs_type": fs_type or None,
        "storage": storage or None,
        "min_free": min_free,
        "oned_datastores": None
        if obs.oned_datastores is None
        else [{"id": d.id, "name": d.name} for d in obs.oned_datastores],
    }
    if not obs.mounts:
        return result(
            GATE,
            INCONCLUSIVE,
            "no host reported its datastore mount",
            "check the gate's host list (inventory group of hypervisors)",
            **details,
        )
    exports = f" and {len(obs.exports)} NFS exports" if obs.exports else ""
    on = {"old": " on the old storage", "new": " on the NFS export"}.get(storage, "")
    return judged(
        GATE,
        (hosts, oned, readable),
        details,
        passed=f"datastore healthy{on} on {len(obs.mounts)} hosts{exports}",
        fail_hint="mount the datastore (fstab / Pacemaker Filesystem resource) on the "
        "named hosts, check its export and free space; for oned's view check "
        "`onedatastore list` and oned.conf",
        wait_hint="check ssh to the named hosts and run `df -T <path>` there",
    )


def _mount_evidence(m: DatastoreMount, is_export: bool) -> dict[str, object]:
    return {
        "host": m.host,
        "path": m.path,
        "mounted": m.mounted,
        "fs_type": m.fs_type,
        "writable": m.writable,
        "size_bytes": m.size_bytes,
        "free_bytes": m.free_bytes,
        "source": m.source,
        "nfs_export": is_export,
    }


def _host_problems(
    obs: DatastoreObservation, *, fs_type: str, min_free: int | str, storage: str
) -> CheckOutcome:
    """Every readable mount through the per-mount checks: one summary line a host."""
    problems: list[dict[str, object]] = []
    lines: list[str] = []
    for m in (*obs.mounts, *obs.exports):
        if m.mounted is None:
            continue
        is_export = m in obs.exports
        what = _mount_problems(
            m, is_export=is_export, fs_type=fs_type, min_free=min_free, storage=storage
        )
        if what:
            problems.append(
                {"host": m.host, "path": m.path, "problems": what, "nfs_export": is_export}
            )
            lines.append(f"{m.host}: {'NFS export ' if is_export else ''}{', '.join(what)}")
    return CheckOutcome({"problems": problems}, tuple(lines))


def _mount_problems(
    m: DatastoreMount, *, is_export: bool, fs_type: str, min_free: int | str, storage: str
) -> list[str]:
    """What is wrong with one mount (an unmounted path: only that)."""
    if not m.mounted:
        return list(mounted(m).problems)
    found = (
        fs_type_matches(m, fs_type=fs_type, storage=storage, is_export=is_export),
        source_matches(m, storage=storage, is_export=is_export),
        writable(m),
        free_space(m, min_free=min_free),
    )
    return [line for f in found for line in f.problems]


# ------------------------------------------------------------------ the named checks


def mounted(m: DatastoreMount) -> CheckOutcome:
    """The datastore path is mounted on the host."""
    return (
        CheckOutcome(problems=(f"{m.path} not mounted",)) if m.mounted is False else CheckOutcome()
    )


def fs_type_matches(
    m: DatastoreMount, *, fs_type: str = "", storage: str = "", is_export: bool = False
) -> CheckOutcome:
    """The mount is of ``fs_type`` (else the host's expectation; after a storage move, of
    the NFS export's type); an NFS export may be of any type."""
    want = _wanted_fs_type(m, fs_type=fs_type, storage=storage, is_export=is_export)
    if want and not _fs_matches(m.fs_type, want):
        return CheckOutcome(problems=(f"{m.path} is {m.fs_type or 'unknown'}, expected {want}",))
    return CheckOutcome()


def _wanted_fs_type(m: DatastoreMount, *, fs_type: str, storage: str, is_export: bool) -> str:
    if is_export:
        return ""
    if storage == "new":
        return fs_type or m.new_fs_type or "nfs"
    return fs_type or m.expected_fs_type or ""


def source_matches(
    m: DatastoreMount, *, storage: str = "", is_export: bool = False
) -> CheckOutcome:
    """With ``storage`` "old" or "new", the host mounts the old datastore or the NFS export,
    by the source mounted there (no old source known: at least not the NFS export)."""
    if not storage or is_export:
        return CheckOutcome()
    if storage == "new":
        return _mounts_source(m, m.new_source, "the NFS export", other=m.old_source)
    return _mounts_source(m, m.old_source, "the old datastore", other=m.new_source)


def _mounts_source(
    m: DatastoreMount, want: str | None, name: str, *, other: str | None
) -> CheckOutcome:
    if want and m.source != want:
        return CheckOutcome(
            problems=(f"{m.path} mounts {m.source or 'nothing known'}, expected {name} {want}",)
        )
    if not want and other and m.source == other:
        return CheckOutcome(problems=(f"{m.path} already mounts the NFS export {other}",))
    return CheckOutcome()


def writable(m: DatastoreMount) -> CheckOutcome:
    """The mount is not read-only."""
    return (
        CheckOutcome(problems=(f"{m.path} not writable",))
        if m.writable is False
        else CheckOutcome()
    )


def free_space(m: DatastoreMount, *, min_free: int | str = 0) -> CheckOutcome:
    """More than ``min_free`` is free: a percentage of the size ("10%"), or bytes ("20G")."""
    kind, limit = _threshold(min_free)
    if m.free_bytes is None:
        return CheckOutcome()
    if kind == "percent" and m.size_bytes:
        pct = 100.0 * m.free_bytes / m.size_bytes
        if pct <= limit:
            return CheckOutcome(
                problems=(
                    f"{m.path} {pct:.1f}% free ({m.free_bytes} of "
                    f"{m.size_bytes} bytes), needs more than {limit:g}%",
                )
            )
    elif kind == "bytes" and m.free_bytes <= limit:
        return CheckOutcome(
            problems=(f"{m.path} {m.free_bytes} bytes free, needs more than {int(limit)}",)
        )
    return CheckOutcome()


def mounts_readable(obs: DatastoreObservation) -> CheckOutcome:
    """Every host and NFS server said how its datastore path is mounted."""
    unread = [
        {"host": m.host, "path": m.path, "error": m.error or "no answer"}
        for m in (*obs.mounts, *obs.exports)
        if m.mounted is None
    ]
    if not unread:
        return CheckOutcome({"unreadable": unread})
    who = listing(f"{u['host']} ({u['error']})" for u in unread)
    return CheckOutcome(
        {"unreadable": unread}, waiting=(f"could not read the datastore mount on {who}",)
    )


def oned_lists_datastores(
    obs: DatastoreObservation, *, datastores: Sequence[int | str] = ()
) -> CheckOutcome:
    """From 3.4, oned lists datastores, and every one of ``datastores`` (by id or name)."""
    missing: list[str] = []
    if obs.series is not None and obs.series >= "3.4":
        seen = obs.oned_datastores or ()
        known = {str(d.id) for d in seen} | {d.name for d in seen}
        if not seen:
            missing.append("oned lists no datastores")
        missing += [f"oned lists no datastore {d}" for d in datastores if str(d) not in known]
    return CheckOutcome({"oned_problems": missing}, tuple(missing))


DATASTORES_HEALTHY_CHECKS = (
    mounted,
    fs_type_matches,
    source_matches,
    writable,
    free_space,
    mounts_readable,
    oned_lists_datastores,
)
"""The named checks of datastores-healthy (each with its case files)."""


def _threshold(min_free: int | str) -> tuple[str, float]:
    text = str(min_free).strip()
    if text.endswith("%"):
        return "percent", float(text[:-1])
    return "bytes", float(parse_size(min_free))


def _fs_matches(found: str | None, want: str) -> bool:
    """``nfs`` takes nfs and nfs4 (what the client negotiated); other types match exactly."""
    return found == want or (want == "nfs" and found == "nfs4")
