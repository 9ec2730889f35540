"""``sync``: copy a tree, resumable from its manifest, and ``would_sync``: what it would copy.

A run scans the source, plans each file (skip, delta or full), checks that the destination
has room, and only then writes: deletions, directories, links and nodes, the files on
parallel workers (each record appended as its copy is durable), then the directories'
metadata. A sync skips a file recorded ``copied`` or ``verified`` whose source and
destination stats are unchanged since (resume after a kill recopies only the files in
flight); a changed file whose copy is still the recorded one gets its changed chunks only.
"""

from __future__ import absolute_import, division, print_function

import os
import stat
import time

from .compat import fstat, lstat, lstat_or_none, monotonic, native_path, open_read
from .copying import DataCopier, link_names
from .errors import CopyError, human
from .extents import CHUNK_SIZE, algorithm, combine, decode_chunks, encode_chunks
from .manifest import (
    IN_PLACE,
    MANIFEST_VERSION,
    ManifestWriter,
    acquire_lock,
    base_record,
    load_manifest,
    read_manifest,
    release_lock,
    unchanged,
    write_summary,
)
from .progress import Progress, run_parallel
from .tree import apply_meta, remove, stat_key, walk


class _Sync(object):
    """One sync run: scan, plan (skip / delta / full), check room, then write."""

    def __init__(self, src, dst, manifest, phase, workers, chunk_size, margin, reread):
        self.src, self.dst, self.manifest = src, dst, manifest
        self.phase, self.workers, self.margin = phase, workers, margin
        self.reread = reread
        self.header, self.entries = read_manifest(manifest)
        if self.header and (self.header["src"], self.header["dst"]) != (src, dst):
            raise CopyError(
                "source",
                "manifest {0} belongs to {1} -> {2}, not {3} -> {4}".format(
                    manifest, self.header["src"], self.header["dst"], src, dst
                ),
                manifest=manifest,
            )
        self.chunk_size = self.header["chunk_size"] if self.header else chunk_size
        self.algorithm = algorithm(self.chunk_size)
        self.writer = None
        self.progress = None
        self.data = None

    # ---- plan
    def scan(self):
        self.tree = list(walk(self.src))
        self.present = set(rel for rel, _ in self.tree)
        groups = {}  # (dev, ino) -> the first name of a hard-linked file
        self.links = {}  # primary -> other names of the same inode
        self.files, self.others = [], []
        for rel, st in self.tree:
            if stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in groups:
                    self.links[groups[key]].append(rel)
                    continue
                groups[key] = rel
                self.links[rel] = []
                self.files.append((rel, st))
            elif not stat.S_ISDIR(st.st_mode):
                self.others.append((rel, st))
        self.dirs = [(rel, st) for rel, st in self.tree if stat.S_ISDIR(st.st_mode)]

    def classify(self, rel, st):
        """``skip`` (copied or verified, nothing changed), ``delta`` (dst still the recorded
        copy) or ``full``."""
        old = self.entries.get(rel)
        if not old or old.get("state") not in IN_PLACE or old.get("type") != "file":
            return "full"
        dst_st = lstat_or_none(os.path.join(self.dst, rel))
        if dst_st is None or old.get("dst") != stat_key(dst_st) or old.get("chunks") is None:
            return "full"
        links_ok = all(
            (self.entries.get(n) or {}).get("target") == rel
            and (self.entries.get(n) or {}).get("state") in IN_PLACE
            and getattr(lstat_or_none(os.path.join(self.dst, n)), "st_ino", None) == dst_st.st_ino
            for n in self.links[rel]
        )
        return "skip" if old.get("src") == stat_key(st) and links_ok else "delta"

    def plan(self):
        self.tasks = []
        self.skipped = 0
        needed = 0
        for rel, st in self.files:
            how = self.classify(rel, st)
            if how == "skip":
                self.skipped += 1
                continue
            self.tasks.append((rel, st, how))
            dst_st = lstat_or_none(os.path.join(self.dst, rel))
            reusable = dst_st.st_blocks * 512 if dst_st and stat.S_ISREG(dst_st.st_mode) else 0
            needed += (
                max(0, st.st_blocks * 512 - reusable)
                if how == "delta"
                else st.st_blocks * 512 - (reusable if dst_st and dst_st.st_nlink == 1 else 0)
            )
        self.gone = sorted(
            (
                p
                for p, e in self.entries.items()
                if e.get("state") != "deleted" and p not in self.present
            ),
            reverse=True,
        )
        for rel in self.gone:
            dst_st = lstat_or_none(os.path.join(self.dst, rel))
            if dst_st and stat.S_ISREG(dst_st.st_mode) and dst_st.st_nlink == 1:
                needed -= dst_st.st_blocks * 512
        self.tasks.sort(key=lambda t: -t[1].st_blocks)
        self.check_room(max(0, needed))

    def check_room(self, needed):
        vfs = os.statvfs(self.dst)
        available = vfs.f_bavail * vfs.f_frsize
        wanted = int(needed * (1 + self.margin))
        if wanted > available:
            raise CopyError(
                "full",
                "destination {0} has {1} free but the copy needs {2} ({3} + {4:.0%} margin); "
                "nothing written".format(
                    self.dst, human(available), human(wanted), human(needed), self.margin
                ),
                path=self.dst,
                needed_bytes=needed,
                wanted_bytes=wanted,
                available_bytes=available,
                margin=self.margin,
            )

    # ---- act
    def run(self, progress, progress_file):
        started = monotonic()
        self.scan()
        self.plan()
        header = None
        if self.header is None:
            header = self.header = {
                "manifest": MANIFEST_VERSION,
                "src": self.src,
                "dst": self.dst,
                "chunk_size": self.chunk_size,
                "algorithm": self.algorithm,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        self.writer = ManifestWriter(self.manifest, header)
        total = sum(t[1].st_blocks * 512 for t in self.tasks)
        self.progress = Progress(self.phase, total, len(self.tasks), progress, progress_file)
        self.data = DataCopier(
            self.dst, self.chunk_size, self.algorithm, self.workers, self.progress
        )
        try:
            deleted = self.delete()
            for rel, _ in self.dirs:
                self.make_dir(rel)
            for rel, st in self.others:
                self.copy_other(rel, st)
            run_parallel(self.copy_file, self.tasks, self.workers)
            self.finish_dirs()
            self.progress.finish()
        finally:
            self.writer.close()
        self.entries = load_manifest(self.manifest)
        write_summary(
            self.manifest, self.header, self.entries, {"phase": self.phase, "finished": time.time()}
        )
        reg = [st for rel, st in self.tree if stat.S_ISREG(st.st_mode)]
        inodes = dict(((st.st_dev, st.st_ino), st) for st in reg)
        return {
            "copied": sorted(t[0] for t in self.tasks),
            "skipped": self.skipped,
            "deleted": deleted,
            "bytes_copied": self.data.bytes_written,
            "bytes_total": self.progress.state["bytes_done"],
            "apparent_bytes": sum(st.st_size for st in reg),
            "allocated_bytes": sum(st.st_blocks * 512 for st in inodes.values()),
            "files": len(reg),
            "seconds": round(monotonic() - started, 3),
        }

    def delete(self):
        records = []
        for rel in self.gone:  # reverse order: children before their directory
            remove(os.path.join(self.dst, rel))
            old = self.entries[rel]
            records.append(
                {
                    "path": rel,
                    "type": old.get("type"),
                    "state": "deleted",
                    "phase": self.phase,
                    "copies": old.get("copies", 0),
                }
            )
        if records:
            self.writer.append(records)
        return [r["path"] for r in records]

    def make_dir(self, rel):
        path = os.path.join(self.dst, rel)
        st = lstat_or_none(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            st = None
        if st is None:
            os.mkdir(path, 0o700)

    def copy_other(self, rel, st):
        """Symlinks (as links) and device/fifo nodes; sockets are not copied."""
        if stat.S_ISSOCK(st.st_mode):
            return
        path = os.path.join(self.dst, rel)
        is_link = stat.S_ISLNK(st.st_mode)
        record = base_record(rel, "symlink" if is_link else "special", st, self.phase)
        if is_link:
            record["target"] = os.readlink(os.path.join(self.src, rel))
        old = self.entries.get(rel)
        dst_st = lstat_or_none(path)
        if unchanged(old, record) and dst_st is not None and old.get("dst") == stat_key(dst_st):
            return
        remove(path)
        if is_link:
            os.symlink(record["target"], path)
        else:
            os.mknod(path, st.st_mode, st.st_rdev)
        apply_meta(path, st, is_link)
        record["dst"] = stat_key(lstat(path))
        record["copies"] = (old or {}).get("copies", 0) + 1
        self.writer.append([record])

    def copy_file(self, task):
        rel, _, how = task
        src_path, dst_path = os.path.join(self.src, rel), os.path.join(self.dst, rel)
        self.progress.add(current=rel)
        old = []
        if how == "delta":
            entry = self.entries[rel]
            old = decode_chunks(entry["chunks"], entry["size"], self.chunk_size)
        sfd = open_read(src_path)
        try:
            st = fstat(sfd)  # the stat the record keeps: taken before any byte is read
            digests, written = self.data.copy(sfd, st, dst_path, rel, how, old)
        finally:
            os.close(sfd)
        apply_meta(dst_path, st)
        link_names(dst_path, self.links[rel], self.dst)
        checksum = combine(self.algorithm, digests)
        state = "copied"
        if self.reread:  # this worker reads back while the others write: the disk does both
            found = self.data.read_back(dst_path, rel, st.st_size)
            if found != checksum:
                raise CopyError(
                    "mismatch",
                    "{0}: the copy on {1} reads back as {2}, not {3} as it was written: the "
                    "destination storage does not keep what it is given".format(
                        rel, self.dst, found, checksum
                    ),
                    path=rel,
                    expected=checksum,
                    found=found,
                )
            state = "verified"
        record = base_record(rel, "file", st, self.phase)
        record.update(
            state=state,
            checksum=checksum,
            dst=stat_key(lstat(dst_path)),
            written=written,
            chunks=encode_chunks(digests, st.st_size, self.chunk_size),
            copies=(self.entries.get(rel) or {}).get("copies", 0) + 1,
        )
        records = [record]
        for name in self.links[rel]:
            link = base_record(name, "hardlink", st, self.phase)
            link.update(
                target=rel,
                checksum=checksum,
                dst=record["dst"],
                copies=record["copies"],
                state=state,
            )
            records.append(link)
        self.writer.append(records)
        self.progress.add(files=1)

    def finish_dirs(self):
        """Directory owner, mode and times after their content; then fsync every directory."""
        records = []
        for rel, st in reversed(self.dirs):
            path = os.path.join(self.dst, rel)
            apply_meta(path, st)
            record = base_record(rel, "dir", st, self.phase)
            record["dst"] = stat_key(lstat(path))
            old = self.entries.get(rel)
            if not unchanged(old, record):
                record["copies"] = (old or {}).get("copies", 0) + 1
                records.append(record)
        apply_meta(self.dst, lstat(self.src))  # the export's root: the datastore's owner
        for rel in [""] + [rel for rel, _ in self.dirs]:
            fd = os.open(os.path.join(self.dst, rel), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if records:
            self.writer.append(records)


def sync(
    src,
    dst,
    manifest,
    phase="presync",
    workers=4,
    chunk_size=CHUNK_SIZE,
    margin=0.05,
    progress=None,
    progress_file=None,
    lock_wait=60.0,
    reread=False,
):
    """Copy the tree ``src`` into the existing directory ``dst``, recording ``manifest``.

    Files already copied (or verified) and unchanged on both sides are skipped; a changed file
    whose copy is still the recorded one gets only its changed chunks rewritten. Copies are
    recorded ``copied``: run ``verify`` to re-read them and record them ``verified``. With
    ``reread``, each worker re-reads its file from the storage (O_DIRECT) right after its
    fsync, while the other workers go on writing, and records it ``verified``; a copy that
    reads back otherwise than written stops the sync (CopyError ``mismatch``).
    Returns a summary: copied (paths), skipped (count), deleted (paths), bytes_copied
    (written), bytes_total (data bytes read from src), apparent_bytes, allocated_bytes,
    files, seconds. Raises CopyError (full, locked, source) with the evidence.
    """
    src, dst, manifest = (os.path.abspath(native_path(p)) for p in (src, dst, manifest))
    if not os.path.isdir(src):
        raise CopyError("source", "source {0} is not a directory".format(src), path=src)
    if not os.path.isdir(dst):
        raise CopyError("io", "destination {0} is not a directory".format(dst), path=dst)
    lock = acquire_lock(manifest, lock_wait)
    try:
        job = _Sync(src, dst, manifest, phase, workers, chunk_size, margin, reread)
        return job.run(progress, progress_file)
    finally:
        release_lock(lock)


def would_sync(src, dst, manifest, margin=0.05):
    """What ``sync`` would do now, decided by the same rules, writing nothing (check mode):
    ``{would_copy, would_copy_bytes, would_delete, skipped}``. No room raises
    CopyError(full) as sync would."""
    src, dst, manifest = (os.path.abspath(native_path(p)) for p in (src, dst, manifest))
    job = _Sync(src, dst, manifest, "presync", 1, CHUNK_SIZE, margin, False)
    job.scan()
    job.plan()
    return {
        "would_copy": sorted(t[0] for t in job.tasks),
        "would_copy_bytes": sum(t[1].st_blocks * 512 for t in job.tasks),  # as sync counts it
        "would_delete": list(job.gone),
        "skipped": job.skipped,
    }
