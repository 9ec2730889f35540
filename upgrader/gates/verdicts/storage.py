"""Verdict on the shared storage: datastores-healthy (mounts per host, oned's datastores).

Each function takes an observation (a frozen dataclass of plain data, defined here next to
the verdict that consumes it) plus the gate's parameters, and returns a ``GateResult``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import FAIL, INCONCLUSIVE, PASS, listing, parse_size, result

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
    source: str | None = None  # what findmnt says is mounted (device, server:/export)
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


def _threshold(min_free: int | str) -> tuple[str, float]:
    text = str(min_free).strip()
    if text.endswith("%"):
        return "percent", float(text[:-1])
    return "bytes", float(parse_size(min_free))


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
    """
    if storage not in ("", "old", "new"):
        raise ValueError(f"datastores-healthy: storage must be old or new, not {storage!r}")
    gate = "datastores-healthy"
    kind, limit = _threshold(min_free)
    problems: list[dict[str, object]] = []
    unread: list[dict[str, str]] = []
    host_lines: list[str] = []
    for m in (*obs.mounts, *obs.exports):
        is_export = m in obs.exports
        if m.mounted is None:
            unread.append({"host": m.host, "path": m.path, "error": m.error or "no answer"})
            continue
        what: list[str] = []
        if not m.mounted:
            what.append(f"{m.path} not mounted")
        else:
            want = "" if is_export else fs_type or m.expected_fs_type
            if storage == "new" and not is_export:
                want = fs_type or m.new_fs_type or "nfs"
            if want and not _fs_matches(m.fs_type, want):
                what.append(f"{m.path} is {m.fs_type or 'unknown'}, expected {want}")
            if storage and not is_export:
                what += _source_problems(m, storage)
            if m.writable is False:
                what.append(f"{m.path} not writable")
            if m.free_bytes is not None:
                if kind == "percent" and m.size_bytes:
                    pct = 100.0 * m.free_bytes / m.size_bytes
                    if pct <= limit:
                        what.append(
                            f"{m.path} {pct:.1f}% free ({m.free_bytes} of "
                            f"{m.size_bytes} bytes), needs more than {limit:g}%"
                        )
                elif kind == "bytes" and m.free_bytes <= limit:
                    what.append(f"{m.path} {m.free_bytes} bytes free, needs more than {int(limit)}")
        if what:
            problems.append(
                {"host": m.host, "path": m.path, "problems": what, "nfs_export": is_export}
            )
            host_lines.append(f"{m.host}: {'NFS export ' if is_export else ''}{', '.join(what)}")
    oned_missing: list[str] = []
    needs_view = obs.series is not None and obs.series >= "3.4"
    if needs_view:
        seen = obs.oned_datastores or ()
        known = {str(d.id) for d in seen} | {d.name for d in seen}
        if obs.oned_datastores is None or not seen:
            oned_missing.append("oned lists no datastores")
        oned_missing += [f"oned lists no datastore {d}" for d in datastores if str(d) not in known]
    details = {
        "mounts": [
            {
                "host": m.host,
                "path": m.path,
                "mounted": m.mounted,
                "fs_type": m.fs_type,
                "writable": m.writable,
                "size_bytes": m.size_bytes,
                "free_bytes": m.free_bytes,
                "source": m.source,
                "nfs_export": m in obs.exports,
            }
            for m in (*obs.mounts, *obs.exports)
        ],
        "problems": problems,
        "unreadable": unread,
        "oned_problems": oned_missing,
        "expected_fs_type": fs_type or None,
        "storage": storage or None,
        "min_free": min_free,
        "oned_datastores": None
        if obs.oned_datastores is None
        else [{"id": d.id, "name": d.name} for d in obs.oned_datastores],
    }
    if not obs.mounts:
        return result(
            gate,
            INCONCLUSIVE,
            "no host reported its datastore mount",
            "check the gate's host list (inventory group of hypervisors)",
            **details,
        )
    if problems or oned_missing:
        summary = "; ".join([*host_lines, *oned_missing])
        return result(
            gate,
            FAIL,
            summary,
            "mount the datastore (fstab / Pacemaker Filesystem resource) on the "
            "named hosts, check its export and free space; for oned's view check "
            "`onedatastore list` and oned.conf",
            **details,
        )
    if unread:
        who = listing(f"{u['host']} ({u['error']})" for u in unread)
        return result(
            gate,
            INCONCLUSIVE,
            f"could not read the datastore mount on {who}",
            "check ssh to the named hosts and run `df -T <path>` there",
            **details,
        )
    exports = f" and {len(obs.exports)} NFS exports" if obs.exports else ""
    on = {"old": " on the old storage", "new": " on the NFS export"}.get(storage, "")
    return result(
        gate, PASS, f"datastore healthy{on} on {len(obs.mounts)} hosts{exports}", **details
    )


def _fs_matches(found: str | None, want: str) -> bool:
    """``nfs`` takes nfs and nfs4 (what the client negotiated); other types match exactly."""
    return found == want or (want == "nfs" and found == "nfs4")


def _source_problems(m: DatastoreMount, storage: str) -> list[str]:
    """Whether host ``m`` mounts the storage the gate expects, by what findmnt names."""
    want = m.new_source if storage == "new" else m.old_source
    other = m.old_source if storage == "new" else m.new_source
    if want:
        if m.source != want:
            name = "the NFS export" if storage == "new" else "the old datastore"
            return [f"{m.path} mounts {m.source or 'nothing known'}, expected {name} {want}"]
    elif other and m.source == other:  # no old source known: at least not the new one
        return [f"{m.path} already mounts the NFS export {other}"]
    return []
