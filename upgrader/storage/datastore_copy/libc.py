"""The libc calls the engine makes through ctypes: those Python 2.7's ``os`` lacks, and the
few that no Python wraps (``sync_file_range``, hole punching).

Every binding is None where libc does not export it; its caller then does without (with a
plainer call, or not at all) and says so in its docstring. A ctypes call releases the GIL,
as the ``os`` functions it stands in for do.
"""

from __future__ import absolute_import, division, print_function

import ctypes
import errno
import os
import platform

_libc = ctypes.CDLL(None, use_errno=True)
_off64 = ctypes.c_int64
_LONG_IS_64 = ctypes.sizeof(ctypes.c_long) == 8


def _bind(names, restype, argtypes, plain_if_64bit=False):
    """The first of ``names`` that libc exports, typed, or None.

    ``plain_if_64bit``: the last name takes a C ``off_t``, which is 64 bits only where a
    ``long`` is, so it is used only there (the ``*64`` name is always tried first).
    """
    for i, name in enumerate(names):
        if plain_if_64bit and i == len(names) - 1 and not _LONG_IS_64:
            break
        func = getattr(_libc, name, None)
        if func is not None:
            func.restype = restype
            func.argtypes = list(argtypes)
            return func
    return None


def raise_errno(path=None):
    """Raise the OSError that errno names, after a call that returned -1."""
    err = ctypes.get_errno()
    if path is None:
        raise OSError(err, os.strerror(err))
    raise OSError(err, os.strerror(err), path)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
CLOCK_MONOTONIC = 1

clock_gettime = _bind(("clock_gettime",), ctypes.c_int, (ctypes.c_int, ctypes.POINTER(Timespec)))
utimensat = _bind(
    ("utimensat",),
    ctypes.c_int,
    (ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int),
)

# ---- positional I/O, advice, writeback, holes
pread = _bind(
    ("pread64", "pread"),
    ctypes.c_ssize_t,
    (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, _off64),
    plain_if_64bit=True,
)
pwrite = _bind(
    ("pwrite64", "pwrite"),
    ctypes.c_ssize_t,
    (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, _off64),
    plain_if_64bit=True,
)
posix_fadvise = _bind(
    ("posix_fadvise64", "posix_fadvise"),
    ctypes.c_int,
    (ctypes.c_int, _off64, _off64, ctypes.c_int),
    plain_if_64bit=True,
)
fallocate = _bind(
    ("fallocate64", "fallocate"),
    ctypes.c_int,
    (ctypes.c_int, ctypes.c_int, _off64, _off64),
    plain_if_64bit=True,
)
sync_file_range = _bind(
    ("sync_file_range",), ctypes.c_int, (ctypes.c_int, _off64, _off64, ctypes.c_uint)
)


# ---- directories read from a descriptor


class Dirent64(ctypes.Structure):
    """struct dirent64: the same layout on every Linux architecture."""

    _fields_ = [
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    ]


fdopendir = _bind(("fdopendir",), ctypes.c_void_p, (ctypes.c_int,))
readdir64 = _bind(("readdir64",), ctypes.POINTER(Dirent64), (ctypes.c_void_p,))
closedir = _bind(("closedir",), ctypes.c_int, (ctypes.c_void_p,))


# ---- nanosecond times of a file (2.7's os.stat gives floats, about 0.2 us apart today)


class _StatxTimestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("_r", ctypes.c_int32)]


class _Statx(ctypes.Structure):
    """struct statx (Linux 4.11, glibc 2.28): one layout on every architecture, 256 bytes."""

    _fields_ = [
        ("stx_mask", ctypes.c_uint32),
        ("stx_blksize", ctypes.c_uint32),
        ("stx_attributes", ctypes.c_uint64),
        ("stx_nlink", ctypes.c_uint32),
        ("stx_uid", ctypes.c_uint32),
        ("stx_gid", ctypes.c_uint32),
        ("stx_mode", ctypes.c_uint16),
        ("_spare0", ctypes.c_uint16),
        ("stx_ino", ctypes.c_uint64),
        ("stx_size", ctypes.c_uint64),
        ("stx_blocks", ctypes.c_uint64),
        ("stx_attributes_mask", ctypes.c_uint64),
        ("stx_atime", _StatxTimestamp),
        ("stx_btime", _StatxTimestamp),
        ("stx_ctime", _StatxTimestamp),
        ("stx_mtime", _StatxTimestamp),
        ("_rest", ctypes.c_char * 128),
    ]


_STATX_BASIC_STATS = 0x7FF
_statx = _bind(
    ("statx",),
    ctypes.c_int,
    (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_Statx)),
)
# glibc before 2.33 (every 2012 distribution) exports fstatat as __fxstatat64 with a version
# argument; struct stat's layout depends on the architecture: x86_64's is the one read here.
_fxstatat64 = (
    _bind(
        ("__fxstatat64",),
        ctypes.c_int,
        (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int),
    )
    if platform.machine() == "x86_64" and ctypes.sizeof(ctypes.c_void_p) == 8
    else None
)
_X86_64_STAT_SIZE = 144
_X86_64_TIMES = (72, 88, 104)  # st_atim, st_mtim, st_ctim: (tv_sec, tv_nsec) longs
_STAT_VER = 1


_fxstat64 = (
    _bind(("__fxstat64",), ctypes.c_int, (ctypes.c_int, ctypes.c_int, ctypes.c_void_p))
    if _fxstatat64 is not None
    else None
)


def _statx_times(dirfd, path, flags):
    buf = _Statx()
    if _statx(dirfd, path, flags, _STATX_BASIC_STATS, ctypes.byref(buf)) != 0:
        if ctypes.get_errno() == errno.ENOSYS:  # a kernel before 4.11 under a newer glibc
            return None
        raise_errno(path or None)
    return tuple(
        t.tv_sec * 1000000000 + t.tv_nsec for t in (buf.stx_atime, buf.stx_mtime, buf.stx_ctime)
    )


def _x86_64_times(raw):
    longs = ctypes.cast(raw, ctypes.POINTER(ctypes.c_long))
    return tuple(longs[o // 8] * 1000000000 + longs[o // 8 + 1] for o in _X86_64_TIMES)


def lstat_times_ns(path):
    """``(atime_ns, mtime_ns, ctime_ns)`` of ``path`` (not following a symlink), or None
    where libc cannot say."""
    found = _statx_times(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW) if _statx else None
    if found is None and _fxstatat64 is not None:
        raw = ctypes.create_string_buffer(_X86_64_STAT_SIZE)
        if _fxstatat64(_STAT_VER, AT_FDCWD, path, raw, AT_SYMLINK_NOFOLLOW) != 0:
            raise_errno(path)
        found = _x86_64_times(raw)
    return found


def fstat_times_ns(fd):
    """``(atime_ns, mtime_ns, ctime_ns)`` of the open file ``fd``, or None."""
    found = _statx_times(fd, b"", AT_EMPTY_PATH) if _statx else None
    if found is None and _fxstat64 is not None:
        raw = ctypes.create_string_buffer(_X86_64_STAT_SIZE)
        if _fxstat64(_STAT_VER, fd, raw) != 0:
            raise_errno()
        found = _x86_64_times(raw)
    return found
