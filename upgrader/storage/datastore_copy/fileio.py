"""Positional reads and writes into page-aligned buffers, on Python 2.7 and 3.x.

Several threads share a file's descriptor (the segments of a big file), so every read and
write names its offset. Python 3 has ``os.preadv`` (3.7) and ``os.pwrite``; where it lacks
them, and on 2.7, which has neither, libc's ``pread64``/``pwrite64`` are called through ctypes,
which releases the GIL as ``os.preadv`` does. A buffer is an anonymous mmap: page-aligned, as
O_DIRECT wants, with a memoryview for hashing (``hashlib`` releases the GIL on large
updates) and its address for ctypes.
"""

from __future__ import absolute_import, division, print_function

import ctypes
import errno
import mmap
import os
import threading

from . import libc
from .compat import PY2, open_read

PAGE = 4096  # O_DIRECT alignment that every Linux file system accepts
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_SYNC_FILE_RANGE_WRITE = 2
_POSIX_FADV_DONTNEED = 4
_HAVE_PREADV = hasattr(os, "preadv")  # 3.7
_HAVE_PWRITE = hasattr(os, "pwrite")  # 3.3


class Buffer(object):
    """``size`` bytes of anonymous memory: ``view`` (memoryview) and ``addr`` (for ctypes)."""

    __slots__ = ("_array", "_map", "addr", "size", "view")

    def __init__(self, size):
        self.size = size
        self._map = mmap.mmap(-1, size)
        # 2.7's mmap has no memoryview; a ctypes array over the same memory has both
        self._array = (ctypes.c_char * size).from_buffer(self._map)
        self.addr = ctypes.addressof(self._array)
        self.view = memoryview(self._array) if PY2 else memoryview(self._map)

    def zero(self, start, n):
        ctypes.memset(self.addr + start, 0, n)


_zero_lock = threading.Lock()
_zeros = [Buffer(1 << 20)]


def zeros(n):
    """A shared buffer of at least ``n`` zero bytes (hashing the holes of a chunk, writing
    zeros where a hole cannot be punched); never written to."""
    buf = _zeros[-1]
    if buf.size >= n:
        return buf
    with _zero_lock:
        if _zeros[-1].size < n:
            _zeros.append(Buffer(n))
        return _zeros[-1]


_tls = threading.local()


def thread_buffer(size):
    """One reused, page-aligned buffer per worker thread (O_DIRECT needs the alignment)."""
    buf = getattr(_tls, "buf", None)
    if buf is None or buf.size != size + PAGE:
        buf = _tls.buf = Buffer(size + PAGE)
    return buf


def _pread_into(fd, buf, start, n, offset):
    """One read of up to ``n`` bytes at ``offset`` into ``buf`` at ``start``; bytes read."""
    if _HAVE_PREADV:  # novermin: 3.7
        return os.preadv(fd, [buf.view[start : start + n]], offset)
    while True:
        got = libc.pread(fd, buf.addr + start, n, offset)
        if got >= 0:
            return got
        if ctypes.get_errno() != errno.EINTR:
            libc.raise_errno()


def read_into(fd, buf, start, n, offset):
    """Fill ``buf[start:start+n]`` from ``offset``; a file that shrank meanwhile reads as
    zeros."""
    done = 0
    while done < n:
        got = _pread_into(fd, buf, start + done, n - done, offset + done)
        if got == 0:
            buf.zero(start + done, n - done)
            return
        done += got


def read_direct(fd, buf, wstart, offset, n):
    """O_DIRECT read of [offset, offset+n) into buf (at offset - wstart), widened to pages.

    The widened bytes are the file's own (or past its end), so they never corrupt the data
    of a neighbouring piece; a short read means end of file and the rest reads as zeros.
    """
    a0 = offset & ~(PAGE - 1)
    end = min(-(-(offset + n) // PAGE) * PAGE, wstart + buf.size)
    start, length = a0 - wstart, end - a0
    done = 0
    while done < length:
        got = _pread_into(fd, buf, start + done, length - done, a0 + done)
        done += got
        if got == 0 or done % PAGE:
            buf.zero(start + done, length - done)
            return


def write_from(fd, buf, start, n, offset):
    """Write ``buf[start:start+n]`` at ``offset``, all of it."""
    while n > 0:
        if _HAVE_PWRITE:  # novermin: 3.3
            done = os.pwrite(fd, buf.view[start : start + n], offset)
        else:
            done = libc.pwrite(fd, buf.addr + start, n, offset)
            if done < 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                libc.raise_errno()
        start, n, offset = start + done, n - done, offset + done


def open_storage(path, chunk_size):
    """Open a destination file to read what its storage holds, not the page cache.

    O_DIRECT where the file system allows it (no copy through the cache, nothing evicted);
    otherwise a plain descriptor whose cached pages are dropped first. Returns
    ``(fd, direct)``.
    """
    if chunk_size % PAGE == 0 and hasattr(os, "O_DIRECT"):
        try:
            return open_read(path, os.O_DIRECT), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    fd = open_read(path)
    drop_cache(fd)
    return fd, False


def drop_cache(fd):
    if hasattr(os, "posix_fadvise"):  # novermin: 3.3
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    elif libc.posix_fadvise is not None:
        libc.posix_fadvise(fd, 0, 0, _POSIX_FADV_DONTNEED)  # advice: an error changes nothing


def start_writeback(fd, offset, length):
    """Start writing [offset, offset+length) to the device now, without waiting for it.

    Without this the data waits in the page cache until the file's fsync, and the disk idles
    while the first files are read and hashed (measured: about 15 % of the copy's time).
    Durability still comes from the fsync; where the call is missing this does nothing.
    """
    if libc.sync_file_range is not None:
        libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def punch(fd, offset, length):
    """Turn [offset, offset+length) into a hole; write zeros where punching is unsupported."""
    if libc.fallocate is not None:
        flags = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
        if libc.fallocate(fd, flags, offset, length) == 0:
            return
        if ctypes.get_errno() not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            libc.raise_errno()
    zero = zeros(1 << 20)
    while length > 0:
        n = min(length, zero.size)
        write_from(fd, zero, 0, n, offset)
        offset += n
        length -= n
