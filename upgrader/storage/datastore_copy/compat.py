"""What Python 2.7 and 3.x do differently, answered once for the engine.

The engine runs on the host's interpreter: Python 2.7 on a 2012 front end, 3.6+ on a newer
one. Where 3.x has a call 2.7 lacks, this module gives one function for both: the clock, a
stat with nanosecond times, setting them back exactly, a directory listing that leaves the
directory's access time alone, file names as JSON text. Paths inside the engine are the
interpreter's native ``str`` (bytes on 2.7); they become text only in JSON.
"""

from __future__ import absolute_import, division, print_function

import binascii
import codecs
import ctypes
import errno
import json
import os
import re
import stat
import sys
import threading
import time

from . import libc

PY2 = sys.version_info[0] == 2
# Text: 2.7's unicode, 3.x's str (no u"" literals here: the formatter drops their prefix).
UNICODE = type(b"".decode("ascii"))

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _monotonic_libc():
    ts = libc.Timespec()
    if libc.clock_gettime(libc.CLOCK_MONOTONIC, ctypes.byref(ts)) != 0:
        libc.raise_errno()
    return ts.tv_sec + ts.tv_nsec * 1e-9


if hasattr(time, "monotonic"):  # novermin: 3.3
    monotonic = time.monotonic
elif libc.clock_gettime is not None:
    monotonic = _monotonic_libc
else:  # pragma: no cover - deadlines then follow the wall clock
    monotonic = time.time


def thread_id():
    return threading.current_thread().ident


def is_missing(exc):
    """Whether an OSError/IOError says the path is not there."""
    return getattr(exc, "errno", None) in (errno.ENOENT, errno.ENOTDIR)


def is_busy(exc):
    """Whether a non-blocking flock failed because someone else holds the lock."""
    return getattr(exc, "errno", None) in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


# --------------------------------------------------------------------------- stat, times


class _Stat(object):
    """2.7's stat result with 3.x's ``st_atime_ns``/``st_mtime_ns``/``st_ctime_ns``."""

    __slots__ = ("_st", "st_atime_ns", "st_ctime_ns", "st_mtime_ns")

    def __init__(self, st, ns):
        self._st = st
        self.st_atime_ns, self.st_mtime_ns, self.st_ctime_ns = ns

    def __getattr__(self, name):
        return getattr(self._st, name)


def _float_ns(st):
    """The times from 2.7's floats: the seconds exact, the fraction within about 0.1 us
    (what a file system that libc cannot ask exactly gets; the same for the same file every
    time, which is what the manifest compares)."""
    out = []
    for index, name in (
        (stat.ST_ATIME, "st_atime"),
        (stat.ST_MTIME, "st_mtime"),
        (stat.ST_CTIME, "st_ctime"),
    ):
        seconds = int(st[index])
        fraction = int(round((getattr(st, name) - seconds) * 1e9))  # noqa: RUF046 - 2.7: a float
        out.append(seconds * 1000000000 + min(max(fraction, 0), 999999999))
    return tuple(out)


def stat_ns(st, name):
    """``st.st_<name>_ns`` (atime, mtime, ctime), also of a plain 2.7 ``os.stat`` result."""
    exact = getattr(st, "st_" + name + "_ns", None)
    if exact is not None:
        return exact
    return _float_ns(st)[("atime", "mtime", "ctime").index(name)]


def lstat(path):
    """``os.lstat`` with exact ``st_*_ns`` times on 2.7 too (libc's statx or fstatat)."""
    st = os.lstat(path)
    if not PY2:
        return st
    return _Stat(st, libc.lstat_times_ns(path) or _float_ns(st))


def fstat(fd):
    """``os.fstat`` with exact ``st_*_ns`` times on 2.7 too."""
    st = os.fstat(fd)
    if not PY2:
        return st
    return _Stat(st, libc.fstat_times_ns(fd) or _float_ns(st))


def lstat_or_none(path):
    try:
        return lstat(path)
    except OSError as exc:
        if is_missing(exc):
            return None
        raise


def set_times_ns(path, atime_ns, mtime_ns):
    """Set a path's access and modification times to the nanosecond, not following a symlink.

    2.7's ``os.utime`` takes float seconds and follows symlinks; the libc call it lacks,
    ``utimensat``, is in every Linux since 2.6.22.
    """
    if not PY2:  # novermin: 3.3
        os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)
        return
    if libc.utimensat is None:  # pragma: no cover - a symlink keeps the time of its copy
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            os.utime(path, (atime_ns / 1e9, mtime_ns / 1e9))
        return
    times = (libc.Timespec * 2)(
        libc.Timespec(atime_ns // 1000000000, atime_ns % 1000000000),
        libc.Timespec(mtime_ns // 1000000000, mtime_ns % 1000000000),
    )
    if libc.utimensat(libc.AT_FDCWD, path, times, libc.AT_SYMLINK_NOFOLLOW) != 0:
        libc.raise_errno(path)


# --------------------------------------------------------------------------- files, directories


def open_read(path, extra=0):
    """Open read-only without touching atime when permitted (the source is never modified)."""
    flags = os.O_RDONLY | _O_CLOEXEC | extra
    try:
        return os.open(path, flags | _O_NOATIME)
    except OSError as exc:
        if exc.errno != errno.EPERM:  # O_NOATIME: only the owner (or root) may ask for it
            raise
        return os.open(path, flags)


def _names_libc(fd):
    """The names in the directory open as ``fd``, read by libc; closes ``fd``."""
    handle = libc.fdopendir(fd)
    if not handle:
        os.close(fd)
        libc.raise_errno()
    names = []
    try:
        while True:
            ctypes.set_errno(0)
            entry = libc.readdir64(handle)
            if not entry:
                if ctypes.get_errno():
                    libc.raise_errno()
                return names
            name = entry.contents.d_name
            if name not in (b".", b".."):
                names.append(name)
    finally:
        libc.closedir(handle)


def list_dir(path):
    """``[(name, lstat)]`` of a directory, sorted by name; its access time stays as it was.

    The names are read through an O_NOATIME descriptor: on 3.x with ``os.listdir(fd)``, on
    2.7 (whose ``os.listdir`` opens the directory itself) with libc's readdir.
    """
    fd = open_read(path, _O_DIRECTORY)
    if not PY2:  # novermin: 3.3
        try:
            names = sorted(os.listdir(fd))
            return [(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in names]
        finally:
            os.close(fd)
    if None in (libc.fdopendir, libc.readdir64, libc.closedir):  # pragma: no cover
        os.close(fd)
        names = os.listdir(path)
    else:
        names = _names_libc(fd)
    return [(n, lstat(os.path.join(path, n))) for n in sorted(names)]


# --------------------------------------------------------------------------- text and JSON


def _escaped(byte):
    """U+DC80..U+DCFF for the bytes 0x80..0xFF, as 3.x's ``surrogateescape`` writes them."""
    return ("\\udc%02x" % byte).encode("ascii").decode("unicode_escape")


def _escape_undecodable(exc):
    """2.7's stand-in for 3.x's ``surrogateescape``: an undecodable byte b becomes U+DC00+b."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = bytearray(exc.object[exc.start : exc.end])
    return UNICODE().join(_escaped(b) for b in bad), exc.end


if PY2:
    codecs.register_error("datastore_copy.escape", _escape_undecodable)
_ESCAPED = re.compile(UNICODE("[{0}-{1}]").format(_escaped(0x80), _escaped(0xFF)))


def native_path(path):
    """A path argument (str, bytes, unicode, pathlib) as the native str the engine uses."""
    if PY2:
        return fs_native(path) if isinstance(path, UNICODE) else path
    if not PY2:  # novermin: 3.6
        path = os.fspath(path)
        return os.fsdecode(path) if isinstance(path, bytes) else path


def fs_text(name):
    """A native file name as text for JSON, undecodable bytes kept as 3.x keeps them."""
    if PY2 and isinstance(name, bytes):
        return name.decode("utf-8", "datastore_copy.escape")
    return name


def fs_native(text):
    """The inverse of ``fs_text``: a name read from JSON as the native str."""
    if not PY2 or not isinstance(text, UNICODE):
        return text
    if not _ESCAPED.search(text):
        return text.encode("utf-8")
    return b"".join(
        bytes(bytearray([ord(c) - 0xDC00])) if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("utf-8")
        for c in text
    )


def _texts(value):
    if isinstance(value, dict):
        return dict((_texts(k), _texts(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_texts(v) for v in value]
    return fs_text(value)


def json_bytes(value, **options):
    """``json.dumps`` (keys sorted) as ASCII bytes; 2.7's names that are not UTF-8 are
    escaped first, as 3.x escapes them."""
    try:
        text = json.dumps(value, sort_keys=True, **options)
    except UnicodeDecodeError:
        text = json.dumps(_texts(value), sort_keys=True, **options)
    return text if isinstance(text, bytes) else text.encode("ascii")


def native_text(data):
    """Bytes read from a file as the native str (undecodable bytes replaced on 3.x)."""
    return data if PY2 else data.decode("utf-8", "replace")


def hexlify(digest):
    """A digest as native hex text."""
    text = binascii.hexlify(digest)
    return text if PY2 else text.decode("ascii")


unhexlify = binascii.unhexlify
