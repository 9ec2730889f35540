"""One file's data copied: checksums from the data read, written as it is read.

A full copy writes every data range of the source (holes stay holes: the destination gets
its size with ``ftruncate``); a delta rewrites only the chunks whose digest differs from the
recorded one, punching holes where the source has become one. Either way the chunk digests
come from the bytes read from the source, in the same pass, so the checksum costs no second
read; ``read_back`` is the optional second read, from the destination's storage.
"""

from __future__ import absolute_import, division, print_function

import errno
import os
import threading

from . import extents
from .compat import is_missing
from .errors import CopyError, human
from .extents import SEGMENT, combine, windows
from .fileio import punch, start_writeback, write_from
from .progress import run_parallel
from .tree import remove

_FILE_THREADS = 4  # threads copying the segments of one big file


class DataCopier(object):
    """Copies file data for one sync: its chunk size, workers, progress and byte count."""

    def __init__(self, dst, chunk_size, algorithm, workers, progress):
        self.dst, self.chunk_size, self.algorithm = dst, chunk_size, algorithm
        self.workers, self.progress = workers, progress
        self.bytes_written = 0
        self.count_lock = threading.Lock()

    def copy(self, sfd, st, dst_path, rel, how, old):
        """Copy the data ranges (``full``) or only the chunks whose digest changed from
        ``old`` (``delta``); returns ``(chunk digests, bytes written)``."""
        if how == "delta":
            dfd = os.open(dst_path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        else:
            remove(dst_path)
            dfd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        # The delta of a big file is read and hashed as segments by several threads (its
        # source is read fully but little is written); positional reads and writes make the
        # shared descriptors safe. A full copy is written by one thread per file: segments
        # written in parallel measured about 10 % slower (interleaved writes).
        nchunks = (st.st_size + self.chunk_size - 1) // self.chunk_size
        per = max(1, SEGMENT // self.chunk_size) if how == "delta" else max(1, nchunks)
        ranges = [(first, min(first + per, nchunks)) for first in range(0, nchunks, per)]

        def copy_part(chunks_range):
            return self.copy_range(sfd, dfd, st.st_size, chunks_range, how, old)

        full = False
        try:
            results = run_parallel(copy_part, ranges, min(self.workers, _FILE_THREADS))
            digests = [d for ds, _ in results for d in ds]
            written = sum(n for _, n in results)
            os.ftruncate(dfd, st.st_size)
            os.fsync(dfd)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            full = True
        finally:
            os.close(dfd)
        if full:
            raise self.full(rel, st)
        with self.count_lock:
            self.bytes_written += written
        return digests, written

    def full(self, rel, st):
        vfs = os.statvfs(self.dst)
        free = vfs.f_bavail * vfs.f_frsize
        return CopyError(
            "full",
            "destination {0} is full while copying {1} ({2} free, the file needs {3})".format(
                self.dst, rel, human(free), human(st.st_blocks * 512)
            ),
            path=rel,
            needed_bytes=st.st_blocks * 512,
            available_bytes=free,
        )

    def copy_range(self, sfd, dfd, size, chunks_range, how, old):
        """Copy chunks [first, last): digests from the data read, written as they are read."""
        digests, written = [], 0
        first, last = chunks_range
        for buf, wstart, pieces, chunks in windows(sfd, size, self.chunk_size, first, last):
            digests += [c[4] for c in chunks]
            if how == "full":  # every data range of the window, one write each
                for a, n in pieces:
                    write_from(dfd, buf, a - wstart, n, a)
                written += sum(n for _, n in pieces)
            else:
                written += write_changed(dfd, buf, wstart, chunks, old)
            if pieces:
                start_writeback(dfd, wstart, pieces[-1][0] + pieces[-1][1] - wstart)
            self.progress.add(nbytes=sum(n for _, n in pieces))
        return digests, written

    def read_back(self, path, rel, size):
        """The checksum of the fsync'd copy as its storage returns it (O_DIRECT)."""
        nchunks = (size + self.chunk_size - 1) // self.chunk_size
        per = max(1, SEGMENT // self.chunk_size)
        digests = []
        for first in range(0, max(nchunks, 1), per):
            task = (path, rel, size, self.chunk_size, first, min(first + per, nchunks))
            digests += extents.hash_segment(task)[2]
        return combine(self.algorithm, digests)


def write_changed(dfd, buf, wstart, chunks, old):
    """Delta: rewrite only the chunks whose digest changed; holes punched as holes."""
    written = 0
    for index, start, length, pieces, digest in chunks:
        if index < len(old) and old[index] == digest:
            continue
        pos = start
        for a, n in pieces:
            if a > pos:
                punch(dfd, pos, a - pos)
            write_from(dfd, buf, a - wstart, n, a)
            pos = a + n
        if pos < start + length:
            punch(dfd, pos, start + length - pos)
        written += sum(n for _, n in pieces)
    return written


def link_names(dst_path, names, dst_root):
    """Make every other name of a hard-linked file a link to its copy ``dst_path``."""
    inode = os.lstat(dst_path).st_ino
    for name in names:
        link = os.path.join(dst_root, name)
        try:
            same = os.lstat(link).st_ino == inode
        except OSError as exc:
            if not is_missing(exc):
                raise
            same = False
        if not same:
            remove(link)
            os.link(dst_path, link)
