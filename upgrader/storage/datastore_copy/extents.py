"""Where a file's data is, read window by window, and the per-chunk checksum of its content.

Data ranges come from ``SEEK_DATA``/``SEEK_HOLE`` (``lseek`` whence 3 and 4 on Linux; 2.7's
``os`` does not name them), never from reading zeros. The checksum depends only on content:
per chunk sha256, where a chunk that is a hole hashes as zeros *without* hashing them
(cached digests), so a test can recompute it by reading the file plainly, and the delta can
compare chunk digests to rewrite only what changed.
"""

from __future__ import absolute_import, division, print_function

import errno
import hashlib
import os
import threading

from .compat import hexlify, native_path, open_read, unhexlify
from .fileio import open_storage, read_direct, read_into, thread_buffer, zeros

# 1 MiB chunks ("sha256-1m"): a chunk that is part hole hashes its zeros, and images have
# data scattered in 1 MiB extents, so 4 MiB chunks hashed about four times the data of a
# sparse image. The price is a longer digest list per file in the manifest (about 67 bytes
# per MiB of data; all-hole chunks are written as null).
CHUNK_SIZE = 1 << 20
SEGMENT = 32 << 20  # verify splits big files so one huge image does not serialise it
_WINDOW = 8 << 20  # bytes per read request (whole chunks)
SEEK_DATA = getattr(os, "SEEK_DATA", 3)
SEEK_HOLE = getattr(os, "SEEK_HOLE", 4)


def algorithm(chunk_size):
    """The checksum's name in the manifest: ``sha256-1m`` for 1 MiB chunks."""
    if chunk_size % (1 << 20) == 0:
        return "sha256-{0}m".format(chunk_size >> 20)
    return "sha256-{0}b".format(chunk_size)


_zero_lock = threading.Lock()
_zero_digests = {}


def zero_digest(n):
    """Digest of n zero bytes, computed once per length: a hole chunk is never hashed again."""
    digest = _zero_digests.get(n)
    if digest is None:
        digest = hashlib.sha256(zeros(n).view[:n]).digest()
        with _zero_lock:
            _zero_digests[n] = digest
    return digest


def extents(fd, start, end):
    """Data ranges ``[(from, to)]`` of ``fd`` within [start, end) from SEEK_DATA/SEEK_HOLE."""
    out = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP) and not out:
                return [(start, end)]  # file system without hole reporting: all data
            raise
        if data >= end:
            break
        hole = os.lseek(fd, data, SEEK_HOLE)
        out.append((data, min(hole, end)))
        pos = hole
    return out


def _window_size(chunk_size):
    """Bytes read per I/O: whole chunks, about ``_WINDOW`` (large reads keep a disk busy)."""
    return max(1, _WINDOW // chunk_size) * chunk_size


def windows(fd, size, chunk_size, first=0, last=None, direct=False):
    """Read chunks [first, last) of a file window by window; yield what each window holds.

    Yields ``(buf, wstart, pieces, chunks)``: ``pieces`` are the window's data ranges as
    ``(file_offset, length)``, their bytes in ``buf`` at ``file_offset - wstart`` (valid until
    the next window); ``chunks`` lists ``(index, start, length, pieces, digest)`` per chunk.
    A window is a few chunks read with one call per data range, so a dense image is read in
    large requests; hole gaps are hashed as zeros from a shared buffer, an all-hole chunk
    costs a dictionary lookup.
    """
    nchunks = (size + chunk_size - 1) // chunk_size
    last = nchunks if last is None else min(last, nchunks)
    lo, hi = first * chunk_size, min(size, last * chunk_size)
    wsize = _window_size(chunk_size)
    buf = thread_buffer(wsize)
    found = extents(fd, lo, hi)
    k = 0
    for wstart in range(lo, hi, wsize):
        wend = min(wstart + wsize, hi)
        while k < len(found) and found[k][1] <= wstart:
            k += 1
        pieces = []
        j = k
        while j < len(found) and found[j][0] < wend:
            a, b = max(found[j][0], wstart), min(found[j][1], wend)
            pieces.append((a, b - a))
            j += 1
        for a, n in pieces:
            if direct:
                read_direct(fd, buf, wstart, a, n)
            else:
                read_into(fd, buf, a - wstart, n, a)
        chunks = []
        for index in range(wstart // chunk_size, (wend + chunk_size - 1) // chunk_size):
            start = index * chunk_size
            end = min(start + chunk_size, size)
            mine = [
                (max(a, start), min(a + n, end) - max(a, start))
                for a, n in pieces
                if a < end and a + n > start
            ]
            chunks.append((index, start, end - start, mine, _digest(buf, wstart, start, end, mine)))
        yield buf, wstart, pieces, chunks


def _digest(buf, wstart, start, end, pieces):
    """sha256 of the logical content of [start, end): its data pieces and the zeros between."""
    if not pieces:
        return zero_digest(end - start)
    h = hashlib.sha256()  # large updates: hashlib releases the GIL, threads hash in parallel
    view = buf.view
    pos = start
    for a, n in pieces:
        if a > pos:
            h.update(zeros(a - pos).view[: a - pos])
        h.update(view[a - wstart : a - wstart + n])
        pos = a + n
    if pos < end:
        h.update(zeros(end - pos).view[: end - pos])
    return h.digest()


def combine(name, digests):
    """The file's checksum: sha256 over its chunk digests, prefixed with the algorithm."""
    return name + ":" + hashlib.sha256(b"".join(digests)).hexdigest()


def encode_chunks(digests, size, chunk_size):
    """Chunk digests for the manifest; ``None`` stands for an all-zero chunk (keeps it short)."""
    out = []
    for i, d in enumerate(digests):
        length = min(chunk_size, size - i * chunk_size)
        out.append(None if d == zero_digest(length) else hexlify(d))
    return out


def decode_chunks(chunks, size, chunk_size):
    return [
        zero_digest(min(chunk_size, size - i * chunk_size)) if c is None else unhexlify(c)
        for i, c in enumerate(chunks)
    ]


def file_checksum(path, chunk_size=CHUNK_SIZE):
    """The manifest's checksum of one file: sha256 over its per-chunk sha256 digests."""
    fd = open_read(native_path(path))
    try:
        size = os.fstat(fd).st_size
        digests = [c[4] for window in windows(fd, size, chunk_size) for c in window[3]]
    finally:
        os.close(fd)
    return combine(algorithm(chunk_size), digests)


def hash_segment(task):
    """Digests of chunks [first, last) of one destination file, read from its storage.

    ``task`` is ``(path, rel, size, chunk_size, first, last)``; returns ``(rel, first,
    digests, bytes read)``. The sync's read-back and the verify both call it through this
    module, so a test can stand in for a storage that does not keep what it is given.
    """
    path, rel, size, chunk_size, first, last = task
    fd, direct = open_storage(path, chunk_size)
    try:
        nread, digests = 0, []
        for _, _, pieces, chunks in windows(fd, size, chunk_size, first, last, direct):
            digests += [c[4] for c in chunks]
            nread += sum(n for _, n in pieces)
    finally:
        os.close(fd)
    return rel, first, digests, nread
