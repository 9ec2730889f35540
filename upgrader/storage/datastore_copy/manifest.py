"""The resumable manifest: JSON lines appended with fsync, its summary, and its lock.

A record is appended (flush + fsync) after each copied file: a SIGKILL loses at most the
files in flight, and the next run (a second pre-sync, or the delta in the window) copies
only what has not been copied or has changed since. The latest record of a path wins; a torn
last line (killed mid-append) is ignored. One process works on a manifest at a time: it
holds ``<manifest>.lock`` (flock), in which it writes its pid for the next one to name.
"""

from __future__ import absolute_import, division, print_function

import fcntl
import json
import os
import stat
import threading
import time

from .compat import (
    fs_native,
    is_busy,
    is_missing,
    json_bytes,
    monotonic,
    native_text,
    thread_id,
)
from .errors import CopyError
from .tree import stat_key

MANIFEST_VERSION = 1
IN_PLACE = ("copied", "verified")  # states of a record whose copy is (or was) in place
_COMPARED = ("type", "mode", "uid", "gid", "mtime_ns", "target", "size", "checksum")
_PATHS = ("path", "target", "src", "dst")  # the fields that hold file names (as JSON text)


def _native_names(record):
    for key in _PATHS:
        value = record.get(key)
        if value is not None and not isinstance(value, dict):
            record[key] = fs_native(value)
    return record


def read_manifest(path):
    """Header and latest record per path; a torn last line (killed mid-append) is ignored."""
    header, entries = None, {}
    try:
        with open(path, "rb") as fh:
            lines = fh.read().splitlines()
    except (IOError, OSError) as exc:
        if is_missing(exc):
            return None, {}
        raise
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:
            record = None
        if record is None:
            if number == len(lines):
                break
            raise CopyError(
                "io",
                "manifest {0} line {1} is corrupt".format(path, number),
                path=path,
                line=number,
            )
        if "manifest" in record:
            header = _native_names(record)
        else:
            entries[fs_native(record["path"])] = _native_names(record)
    return header, entries


def load_manifest(manifest):
    """Relative path -> latest manifest record (deleted paths included, ``state: deleted``)."""
    return read_manifest(manifest)[1]


class ManifestWriter(object):
    """Appends records with flush+fsync, one writer at a time (records are the resume point)."""

    def __init__(self, path, header):
        self.path = path
        self.lock = threading.Lock()
        self.fh = open(path, "ab")  # closed in close()
        if header is not None:
            self.append([header])

    def append(self, records):
        data = b"".join(json_bytes(r) + b"\n" for r in records)
        with self.lock:
            self.fh.write(data)
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


def write_json_atomic(path, data):
    """Write ``path`` whole or not at all (a reader never sees half a progress file)."""
    tmp = "{0}.tmp.{1}.{2}".format(path, os.getpid(), thread_id())
    with open(tmp, "wb") as fh:
        fh.write(json_bytes(data, indent=1, separators=(",", ": ")))
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)


def write_summary(manifest, header, entries, extra):
    """``<manifest>.summary.json``: each file's size, blocks, checksum and state, the totals."""
    files = [
        {
            "path": p,
            "size": e["size"],
            "blocks": e["blocks"],
            "checksum": e["checksum"],
            "state": e["state"],
        }
        for p, e in sorted(entries.items())
        if e.get("type") == "file" and e.get("state") != "deleted"
    ]
    totals = {
        "files": len(files),
        "apparent_bytes": sum(f["size"] for f in files),
        "allocated_bytes": sum(f["blocks"] for f in files),
    }
    summary = {
        "src": header.get("src"),
        "dst": header.get("dst"),
        "algorithm": header.get("algorithm"),
        "files": files,
        "totals": totals,
    }
    summary.update(extra)
    write_json_atomic(manifest + ".summary.json", summary)


# --------------------------------------------------------------------------- records


def base_record(rel, kind, st, phase):
    """A record of ``rel`` as the source has it (``st``), before its copy is known."""
    key = stat_key(st)
    return {
        "path": rel,
        "type": kind,
        "size": st.st_size if kind in ("file", "hardlink") else 0,
        "blocks": st.st_blocks * 512 if kind == "file" else 0,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": key["mtime_ns"],
        "target": None,
        "checksum": None,
        "chunks": None,
        "src": key,
        "dst": None,
        "state": "copied",
        "phase": phase,
        "copies": 0,
    }


def unchanged(old, new):
    """Whether ``old``'s copy is in place and the source still as it was then."""
    return (
        old is not None
        and old.get("state") in IN_PLACE
        and all(old.get(k) == new.get(k) for k in _COMPARED)
    )


# --------------------------------------------------------------------------- lock


def acquire_lock(manifest, lock_wait):
    """flock ``<manifest>.lock``; wait for a copy left running by a killed controller."""
    path = manifest + ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    deadline = monotonic() + lock_wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except (IOError, OSError) as exc:
            if not is_busy(exc):
                os.close(fd)
                raise
        if monotonic() >= deadline:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = native_text(os.read(fd, 32)).strip() or "unknown"
            os.close(fd)
            raise CopyError(
                "locked",
                "manifest {0} is locked by pid {1} (another copy is running; "
                "waited {2:g} s)".format(manifest, holder, lock_wait),
                pid=holder,
                lock=path,
                waited=lock_wait,
            )
        time.sleep(min(0.2, max(0.0, deadline - monotonic())))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, "{0}\n".format(os.getpid()).encode("ascii"))
    return fd


def release_lock(fd):
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
