"""``verify``: re-read the copies on the destination and compare them with the manifest.

``sync`` records a copy ``copied`` (checksums from the data read from the source, the copy
fsync'd); ``verify``, which the runbook always runs before the switch, re-reads the
destination and records ``verified`` (or ``mismatch``, which the next sync copies again). It
reads with O_DIRECT where the file system allows it (else after dropping the cached pages),
so ``verified`` means what the destination's storage holds, not what the page cache holds;
big files are split into segments hashed in parallel, so one large image does not leave the
other workers idle.
"""

from __future__ import absolute_import, division, print_function

import os
import stat
import time

from . import extents
from .compat import lstat_or_none, monotonic, native_path
from .errors import CopyError
from .extents import SEGMENT, algorithm, combine
from .manifest import (
    IN_PLACE,
    ManifestWriter,
    acquire_lock,
    read_manifest,
    release_lock,
    write_summary,
)
from .progress import Progress, run_parallel
from .tree import stat_key, type_letter

_IS_TYPE = {
    "file": stat.S_ISREG,
    "hardlink": stat.S_ISREG,
    "dir": stat.S_ISDIR,
    "symlink": stat.S_ISLNK,
}


def _octal(mode):
    return "0o{0:o}".format(mode)  # as 3.x's oct() writes it, on 2.7 too


def check_meta(entry, st, dst):
    """(field, expected, found) for every attribute of ``entry`` the destination does not have."""
    kind = entry["type"]
    if not _IS_TYPE.get(kind, lambda m: True)(st.st_mode):
        return [("type", kind, type_letter(st.st_mode))]
    wrong = [
        (f, entry[f], getattr(st, "st_" + f))
        for f in ("uid", "gid")
        if entry.get(f) is not None and entry[f] != getattr(st, "st_" + f)
    ]
    mode = stat.S_IMODE(st.st_mode)
    if kind != "symlink" and entry.get("mode") is not None and entry["mode"] != mode:
        wrong.append(("mode", _octal(entry["mode"]), _octal(mode)))
    if kind in ("file", "hardlink") and entry["size"] != st.st_size:
        wrong.append(("size", entry["size"], st.st_size))
    if kind == "symlink":
        target = os.readlink(os.path.join(dst, entry["path"]))
        if target != entry["target"]:
            wrong.append(("target", entry["target"], target))
    if kind == "hardlink":
        other = lstat_or_none(os.path.join(dst, entry["target"]))
        if other is None or other.st_ino != st.st_ino:
            wrong.append(("target", entry["target"], "not the same file"))
    return wrong


def verify(
    dst,
    manifest,
    workers=4,
    progress=None,
    progress_file=None,
    reread="all",
    lock_wait=60.0,
):
    """Re-read manifest entries on ``dst`` and compare checksum, type, size, mode, owner.

    ``reread="all"`` (the default, what the window runs) re-reads every file entry.
    ``reread="unverified"`` re-reads only entries not verified yet (``copied`` by a sync, or
    found wrong before) and those whose destination stat changed since their verification;
    the others are checked by stat and metadata only.

    Read-only on dst. Entries that match are recorded ``verified`` with the stat of their
    copy (a later sync skips them while that stat holds, and the rollback compares against
    it); a file whose checksum differs is recorded ``mismatch``, so the next sync copies it
    again even if its stat did not change. Mismatches are returned, not raised: ``{entries,
    verified, mismatches: [{path, field, expected, found}], missing, seconds, bytes_read,
    reread, stat_checked}``.
    """
    if reread not in ("all", "unverified"):
        raise CopyError(
            "io", "verify reread must be 'all' or 'unverified', not {0!r}".format(reread)
        )
    started = monotonic()
    dst, manifest = (os.path.abspath(native_path(p)) for p in (dst, manifest))
    lock = acquire_lock(manifest, lock_wait)
    try:
        header, entries = read_manifest(manifest)
        if header is None:
            raise CopyError(
                "io", "manifest {0} is missing or has no header".format(manifest), path=manifest
            )
        result, records = _verify(dst, header, entries, workers, reread, progress, progress_file)
        if records:
            writer = ManifestWriter(manifest, None)
            try:
                writer.append(records)
            finally:
                writer.close()
            entries.update((r["path"], r) for r in records)
    finally:
        release_lock(lock)
    result["seconds"] = round(monotonic() - started, 3)
    extra = {"phase": "verify", "finished": time.time(), "verify": result}
    write_summary(manifest, header, entries, extra)
    return result


def _segments(dst, live, chunk_size, reread):
    """Check each live entry's metadata; list the file segments to re-read.

    Returns ``(segments, mismatches, missing, seen, stat_checked)``.
    """
    per_segment = max(1, SEGMENT // chunk_size)
    mismatches, missing, segments, seen = [], [], [], {}
    stat_checked = 0
    for rel, entry in sorted(live.items()):
        path = os.path.join(dst, rel)
        st = lstat_or_none(path)
        if st is None:
            missing.append(rel)
            continue
        wrong = check_meta(entry, st, dst)
        mismatches += [{"path": rel, "field": f, "expected": e, "found": x} for f, e, x in wrong]
        if wrong:
            continue
        seen[rel] = st
        if entry["type"] != "file":
            continue
        if (
            reread == "unverified"
            and entry["state"] == "verified"
            and entry.get("dst") == stat_key(st)
        ):
            stat_checked += 1
            continue
        nchunks = (entry["size"] + chunk_size - 1) // chunk_size
        segments += [
            (path, rel, entry["size"], chunk_size, first, min(first + per_segment, nchunks))
            for first in range(0, nchunks, per_segment)
        ]
        if nchunks == 0:
            segments.append((path, rel, 0, chunk_size, 0, 0))
    return segments, mismatches, missing, seen, stat_checked


def _verify(dst, header, entries, workers, reread, progress, progress_file):
    chunk_size = header["chunk_size"]
    name = header.get("algorithm") or algorithm(chunk_size)
    live = dict((p, e) for p, e in entries.items() if e.get("state") in IN_PLACE + ("mismatch",))
    segments, mismatches, missing, seen, stat_checked = _segments(dst, live, chunk_size, reread)
    files = set(s[1] for s in segments)
    report = Progress(
        "verify", sum(live[r]["blocks"] for r in files), len(files), progress, progress_file
    )

    def hash_one(task):
        result = extents.hash_segment(task)
        report.add(nbytes=result[3], current=task[1])
        return result

    results = run_parallel(hash_one, sorted(segments, key=lambda s: s[4] - s[5]), workers)
    per_file = {}
    for rel, first, digests, _ in results:
        per_file.setdefault(rel, []).append((first, digests))
    records = []
    for rel, parts in sorted(per_file.items()):
        found = combine(name, [d for _, ds in sorted(parts) for d in ds])
        if found != live[rel]["checksum"]:
            expected = live[rel]["checksum"]
            mismatches.append(
                {"path": rel, "field": "checksum", "expected": expected, "found": found}
            )
            records.append(dict(live[rel], state="mismatch", found=found))
    report.add(files=len(per_file))
    report.finish()
    bad = set(m["path"] for m in mismatches) | set(missing)
    for rel, st in seen.items():  # what matched: recorded verified, with the copy's stat
        entry = live[rel]
        if rel in bad or (entry["type"] == "hardlink" and entry.get("target") in bad):
            continue
        if entry["state"] != "verified" or entry.get("dst") != stat_key(st):
            record = dict(entry, state="verified", dst=stat_key(st))
            record.pop("found", None)
            records.append(record)
    result = {
        "entries": len(live),
        "verified": len(live) - len(bad),
        "mismatches": mismatches,
        "missing": missing,
        "bytes_read": sum(r[3] for r in results),
        "reread": len(per_file),
        "stat_checked": stat_checked,
    }
    return result, records
