"""Datastore copy engine: copy a datastore tree to its new file system, verified and resumable.

It runs on the host that has both file systems mounted (the OpenNebula front end), so the data
never crosses the controller. Ansible ships it there as a module_utils file, which is why this is
one self-contained module: standard library only, no ``upgrader`` imports, Python 3.9+.

Why it is built this way (issue 7, DESIGN.md section 6):

* Sparse images stay sparse: data ranges come from ``SEEK_DATA``/``SEEK_HOLE``, never from
  reading zeros, and the destination gets its size with ``ftruncate``.
* The checksum depends only on content: per chunk sha256, where a chunk that is a hole hashes
  as zeros *without* hashing them (cached digests), so a test can recompute it by reading the
  file plainly, and the delta can compare chunk digests to rewrite only what changed.
* The manifest is JSON lines appended with fsync after each copied file: a SIGKILL loses at
  most the files in flight, and the next run (a second pre-sync, or the delta in the window)
  copies only what has not been copied or has changed since.
* Two record states for a file's copy: ``sync`` records ``copied`` (checksums computed from the
  data read from the source, the copy fsync'd), and ``verify`` -- which the runbook always runs
  before the switch -- re-reads the destination and records ``verified`` (or ``mismatch``, which
  the next sync copies again). ``sync`` does NOT re-read each file it wrote: that was a second
  full read of the data on the window's clock, and ``verify`` re-reads every entry anyway.
  A sync skips a file recorded ``copied`` or ``verified`` whose source and destination stats
  are unchanged since (resume after a kill recopies only the files in flight).
* The source is opened read-only and never written; the destination is re-read with O_DIRECT
  where possible (else after its cached pages are dropped), so ``verified`` means what the
  destination's storage holds, not what the page cache holds.
* Speed (issue 7's targets): data is read in windows of several chunks (large requests),
  hashed by several threads (hashlib releases the GIL), big files are verified as segments
  in parallel; the copy is bound by the destination's write rate and verify by its read rate.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import shutil
import stat
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

__all__ = [
    "IN_PLACE",
    "CopyError",
    "file_checksum",
    "inventory",
    "load_manifest",
    "sync",
    "verify",
    "would_sync",
]

MANIFEST_VERSION = 1
# 1 MiB chunks ("sha256-1m"): a chunk that is part hole hashes its zeros, and images have
# data scattered in 1 MiB extents, so 4 MiB chunks hashed about four times the data of a
# sparse image. The price is a longer digest list per file in the manifest (about 67 bytes
# per MiB of data; all-hole chunks are written as null).
CHUNK_SIZE = 1 << 20
_SEGMENT = 32 << 20  # verify splits big files so one huge image does not serialise it
_WINDOW = 8 << 20  # bytes per read request (whole chunks)
_FILE_THREADS = 4  # threads copying the segments of one big file
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_PAGE = 4096  # O_DIRECT alignment that every Linux file system accepts


class CopyError(Exception):
    """A copy or verification that cannot go on; ``str()`` is one line for an operator.

    ``kind`` is ``full``, ``mismatch``, ``locked``, ``source`` or ``io``; ``details`` holds
    the JSON-able evidence (bytes needed and available, path, pid holding the lock...).
    """

    def __init__(self, kind: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details


# --------------------------------------------------------------------------- helpers


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _algorithm(chunk_size: int) -> str:
    if chunk_size % (1 << 20) == 0:
        return f"sha256-{chunk_size >> 20}m"
    return f"sha256-{chunk_size}b"


_zero_lock = threading.Lock()
_zero_digests: dict[int, bytes] = {}
_zero_buffers: dict[int, memoryview] = {}


def _zeros(n: int) -> memoryview:
    """A shared read-only buffer of at least n zero bytes (for hashing the holes of a chunk)."""
    with _zero_lock:
        size = max([s for s in _zero_buffers if s >= n], default=0)
        if not size:
            size = max(n, 1 << 20)
            _zero_buffers[size] = memoryview(bytes(size))
        return _zero_buffers[size]


def _zero_digest(n: int) -> bytes:
    """Digest of n zero bytes, computed once per length: a hole chunk is never hashed again."""
    digest = _zero_digests.get(n)
    if digest is None:
        digest = hashlib.sha256(_zeros(n)[:n]).digest()
        with _zero_lock:
            _zero_digests[n] = digest
    return digest


def _open_read(path: str) -> int:
    """Open read-only without touching atime when permitted (the source is never modified)."""
    return _open_read_flags(path, 0)


def _open_read_flags(path: str, extra: int) -> int:
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | extra
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, flags)


def _extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """Data ranges of ``fd`` within [start, end) from SEEK_DATA/SEEK_HOLE (no reads)."""
    out: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP) and not out:
                return [(start, end)]  # file system without hole reporting: all data
            raise
        if data >= end:
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        out.append((data, min(hole, end)))
        pos = hole
    return out


def _read_exact(fd: int, view: memoryview, offset: int) -> None:
    """Fill ``view`` from ``offset``; a file that shrank meanwhile reads as zeros."""
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            view[done:] = _zeros(len(view) - done)[: len(view) - done]
            return
        done += n


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while len(view):
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _read_direct(fd: int, buf: memoryview, offset: int, start: int, n: int) -> None:
    """O_DIRECT read of [offset, offset+n) into buf (at offset - start), widened to pages.

    The widened bytes are the file's own (or past its end), so they never corrupt the data
    of a neighbouring piece; a short read means end of file and the rest reads as zeros.
    """
    a0 = offset & ~(_PAGE - 1)
    end = min(-(-(offset + n) // _PAGE) * _PAGE, start + len(buf))
    view = buf[a0 - start : end - start]
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], a0 + done)
        done += got
        if got == 0 or done % _PAGE:
            view[done:] = _zeros(len(view) - done)[: len(view) - done]
            return


def _open_storage(path: str, chunk_size: int) -> tuple[int, bool]:
    """Open a destination file to read what its storage holds, not the page cache.

    O_DIRECT where the file system allows it (no copy through the cache, nothing evicted);
    otherwise a plain descriptor whose cached pages are dropped first.
    """
    if chunk_size % _PAGE == 0 and hasattr(os, "O_DIRECT"):
        try:
            return _open_read_flags(path, os.O_DIRECT), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    fd = _open_read(path)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return fd, False


def _window_size(chunk_size: int) -> int:
    """Bytes read per I/O: whole chunks, about ``_WINDOW`` (large reads keep a disk busy)."""
    return max(1, _WINDOW // chunk_size) * chunk_size


def _windows(
    fd: int,
    size: int,
    chunk_size: int,
    first: int = 0,
    last: int | None = None,
    direct: bool = False,
):
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
    buf = _buffer(wsize)
    extents = _extents(fd, lo, hi)
    k = 0
    for wstart in range(lo, hi, wsize):
        wend = min(wstart + wsize, hi)
        while k < len(extents) and extents[k][1] <= wstart:
            k += 1
        pieces = []
        j = k
        while j < len(extents) and extents[j][0] < wend:
            a, b = max(extents[j][0], wstart), min(extents[j][1], wend)
            pieces.append((a, b - a))
            j += 1
        for a, n in pieces:
            if direct:
                _read_direct(fd, buf, a, wstart, n)
            else:
                _read_exact(fd, buf[a - wstart : a - wstart + n], a)
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


def _digest(
    buf: memoryview, wstart: int, start: int, end: int, pieces: list[tuple[int, int]]
) -> bytes:
    """sha256 of the logical content of [start, end): its data pieces and the zeros between."""
    if not pieces:
        return _zero_digest(end - start)
    h = hashlib.sha256()  # large updates: hashlib releases the GIL, threads hash in parallel
    pos = start
    for a, n in pieces:
        if a > pos:
            h.update(_zeros(a - pos)[: a - pos])
        h.update(buf[a - wstart : a - wstart + n])
        pos = a + n
    if pos < end:
        h.update(_zeros(end - pos)[: end - pos])
    return h.digest()


def _combine(algorithm: str, digests: list[bytes]) -> str:
    return f"{algorithm}:" + hashlib.sha256(b"".join(digests)).hexdigest()


def _encode_chunks(digests: list[bytes], size: int, chunk_size: int) -> list[str | None]:
    """Chunk digests for the manifest; ``None`` stands for an all-zero chunk (keeps it short)."""
    out: list[str | None] = []
    for i, d in enumerate(digests):
        length = min(chunk_size, size - i * chunk_size)
        out.append(None if d == _zero_digest(length) else d.hex())
    return out


def _decode_chunks(chunks: list[str | None], size: int, chunk_size: int) -> list[bytes]:
    return [
        _zero_digest(min(chunk_size, size - i * chunk_size)) if c is None else bytes.fromhex(c)
        for i, c in enumerate(chunks)
    ]


def file_checksum(path: str, chunk_size: int = CHUNK_SIZE) -> str:
    """The manifest's checksum of one file: sha256 over its per-chunk sha256 digests."""
    fd = _open_read(path)
    try:
        size = os.fstat(fd).st_size
        digests = [c[4] for *_, chunks in _windows(fd, size, chunk_size) for c in chunks]
    finally:
        os.close(fd)
    return _combine(_algorithm(chunk_size), digests)


def _stat_key(st: os.stat_result) -> dict[str, int]:
    return {
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _walk(root: str):
    """Yield ``(rel, lstat)`` for every entry under root, parents before children, sorted.

    Directories are listed through an O_NOATIME descriptor: even their access times stay.
    """
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        fd = _open_read(os.path.join(root, rel_dir))
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            stats = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
        finally:
            os.close(fd)
        subdirs = []
        for name, st in stats:
            rel = os.path.join(rel_dir, name)
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def _is_image(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def inventory(src: str) -> dict:
    """Read-only walk of a datastore: counts and totals for the preflight and the report.

    ``images`` are OpenNebula image files (32-hex names), ``vm_dirs`` the system datastore's
    per-VM directories (numeric names holding ``disk.*`` or ``deployment.*`` files),
    ``checkpoints`` the saved memory of suspended VMs.
    """
    out = dict.fromkeys(
        (
            "files",
            "dirs",
            "symlinks",
            "other",
            "apparent_bytes",
            "allocated_bytes",
            "images",
            "vm_dirs",
            "checkpoints",
        ),
        0,
    )
    vm_dirs = set()
    for rel, st in _walk(src):
        name = os.path.basename(rel)
        if stat.S_ISDIR(st.st_mode):
            out["dirs"] += 1
        elif stat.S_ISLNK(st.st_mode):
            out["symlinks"] += 1
        elif stat.S_ISREG(st.st_mode):
            out["files"] += 1
            out["apparent_bytes"] += st.st_size
            out["allocated_bytes"] += st.st_blocks * 512
            out["images"] += _is_image(name)
            out["checkpoints"] += name.startswith("checkpoint")
            parent = os.path.dirname(rel)
            if os.path.basename(parent).isdigit() and name.startswith(("disk.", "deployment.")):
                vm_dirs.add(parent)
        else:
            out["other"] += 1
    out["vm_dirs"] = len(vm_dirs)
    return out


# --------------------------------------------------------------------------- manifest


def _read_manifest(path: str) -> tuple[dict | None, dict[str, dict]]:
    """Header and latest record per path; a torn last line (killed mid-append) is ignored."""
    header, entries = None, {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None, {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == len(lines):
                break
            raise CopyError(
                "io", f"manifest {path} line {number} is corrupt", path=path, line=number
            ) from exc
        if "manifest" in record:
            header = record
        else:
            entries[record["path"]] = record
    return header, entries


def load_manifest(manifest: str) -> dict[str, dict]:
    """Relative path -> latest manifest record (deleted paths included, ``state: deleted``)."""
    return _read_manifest(manifest)[1]


class _Manifest:
    """Appends records with flush+fsync, one writer at a time (records are the resume point)."""

    def __init__(self, path: str, header: dict | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if header is not None:
            self.append([header])

    def append(self, records: list[dict]) -> None:
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        with self.lock:
            self.fh.write(data)
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_summary(manifest: str, header: dict, entries: dict[str, dict], extra: dict) -> None:
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
    _write_json_atomic(
        f"{manifest}.summary.json",
        {
            "src": header.get("src"),
            "dst": header.get("dst"),
            "algorithm": header.get("algorithm"),
            "files": files,
            "totals": totals,
            **extra,
        },
    )


# --------------------------------------------------------------------------- lock, progress


def _acquire_lock(manifest: str, lock_wait: float) -> int:
    """flock ``<manifest>.lock``; wait for a copy left running by a killed controller."""
    path = f"{manifest}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    deadline = time.monotonic() + lock_wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise CopyError(
                    "locked",
                    f"manifest {manifest} is locked by pid {holder} "
                    f"(another copy is running; waited {lock_wait:g} s)",
                    pid=holder,
                    lock=path,
                    waited=lock_wait,
                ) from None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class _Progress:
    """Counts bytes and files; calls ``progress`` and rewrites ``progress_file`` (<= 1/s)."""

    def __init__(self, phase: str, bytes_total: int, files_total: int, callback, path) -> None:
        self.state = {
            "phase": phase,
            "bytes_done": 0,
            "bytes_total": bytes_total,
            "files_done": 0,
            "files_total": files_total,
            "current": None,
            "eta_seconds": None,
            "pid": os.getpid(),
            "finished": False,
        }
        self.callback, self.path = callback, path
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.last = 0.0

    def add(self, nbytes: int = 0, files: int = 0, current: str | None = None) -> None:
        with self.lock:
            s = self.state
            s["bytes_done"] += nbytes
            s["files_done"] += files
            if current is not None:
                s["current"] = current
            now = time.monotonic()
            if not files and now - self.last < 1.0:
                return
            self._emit(now)

    def finish(self) -> None:
        with self.lock:
            self.state.update(finished=True, current=None, eta_seconds=0)
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        s = self.state
        rate = s["bytes_done"] / max(now - self.started, 1e-6)
        if not s["finished"] and rate > 0:
            s["eta_seconds"] = round(max(s["bytes_total"] - s["bytes_done"], 0) / rate, 1)
        snapshot = dict(s)
        if self.path and (now - self.last >= 1.0 or s["finished"]):
            _write_json_atomic(self.path, snapshot)
        self.last = now
        if self.callback is not None:
            self.callback(snapshot)


def _run_parallel(fn, items, workers: int) -> list:
    """Run fn over items in threads; after the first error no new item starts.

    Items already running finish (their records are written), so an interrupted run loses
    at most the files in flight.
    """
    if not items:
        return []
    failed = threading.Event()

    def guarded(item):
        if failed.is_set():
            return None
        try:
            return fn(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()
        return [f.result() for f in futures]


# --------------------------------------------------------------------------- writing

_tls = threading.local()
_fallocate = None


def _buffer(size: int) -> memoryview:
    """One reused, page-aligned buffer per worker thread (O_DIRECT needs the alignment)."""
    buf = getattr(_tls, "buf", None)
    if buf is None or len(buf) != size + _PAGE:
        buf = _tls.buf = memoryview(mmap.mmap(-1, size + _PAGE))
    return buf


def _libc_function(name: str, *argtypes):
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = list(argtypes)
    return func


_sync_file_range = _libc_function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing [offset, offset+length) to the device now, without waiting for it.

    Without this the data waits in the page cache until the file's fsync, and the disk idles
    while the first files are read and hashed (measured: about 15 % of the copy's time).
    Durability still comes from the fsync; where the call is missing this does nothing.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _punch(fd: int, offset: int, length: int) -> None:
    """Turn [offset, offset+length) into a hole; write zeros where punching is unsupported."""
    global _fallocate  # noqa: PLW0603 - resolved once per process
    if _fallocate is None:
        try:
            func = ctypes.CDLL(None, use_errno=True).fallocate
            func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            _fallocate = func
        except (OSError, AttributeError):
            _fallocate = False
    if (
        _fallocate
        and _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0
    ):
        return
    if _fallocate and ctypes.get_errno() not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    while length > 0:
        n = min(length, 1 << 20)
        _write_all(fd, _zeros(n)[:n], offset)
        offset += n
        length -= n


def _remove(path: str) -> None:
    """Remove whatever is at path (file, link or directory tree); nothing there is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _apply_meta(path: str, st: os.stat_result, is_link: bool = False) -> None:
    """Owner first (chown clears setuid bits), then mode, then times."""
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    if not is_link:
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _base_record(rel: str, kind: str, st: os.stat_result, phase: str) -> dict:
    return {
        "path": rel,
        "type": kind,
        "size": st.st_size if kind in ("file", "hardlink") else 0,
        "blocks": st.st_blocks * 512 if kind == "file" else 0,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": st.st_mtime_ns,
        "target": None,
        "checksum": None,
        "chunks": None,
        "src": _stat_key(st),
        "dst": None,
        "state": "copied",
        "phase": phase,
        "copies": 0,
    }


IN_PLACE = ("copied", "verified")  # states of a record whose copy is (or was) in place
_COMPARED = ("type", "mode", "uid", "gid", "mtime_ns", "target", "size", "checksum")


def _unchanged(old: dict | None, new: dict) -> bool:
    return (
        old is not None
        and old.get("state") in IN_PLACE
        and all(old.get(k) == new.get(k) for k in _COMPARED)
    )


class _Sync:
    """One sync run: scan, plan (skip / delta / full), check room, then write."""

    def __init__(self, src, dst, manifest, phase, workers, chunk_size, margin, reread) -> None:
        self.src, self.dst, self.manifest = src, dst, manifest
        self.phase, self.workers, self.margin = phase, workers, margin
        self.reread = reread
        self.header, self.entries = _read_manifest(manifest)
        if self.header and (self.header["src"], self.header["dst"]) != (src, dst):
            raise CopyError(
                "source",
                f"manifest {manifest} belongs to {self.header['src']} -> "
                f"{self.header['dst']}, not {src} -> {dst}",
                manifest=manifest,
            )
        self.chunk_size = self.header["chunk_size"] if self.header else chunk_size
        self.algorithm = _algorithm(self.chunk_size)
        self.writer: _Manifest | None = None
        self.progress: _Progress | None = None
        self.bytes_written = 0
        self.count_lock = threading.Lock()

    # ---- plan
    def scan(self) -> None:
        self.tree = list(_walk(self.src))
        self.present = {rel for rel, _ in self.tree}
        groups: dict[tuple[int, int], str] = {}
        self.links: dict[str, list[str]] = {}  # primary -> other names of the same inode
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

    def classify(self, rel: str, st: os.stat_result) -> str:
        """``skip`` (copied or verified, nothing changed), ``delta`` (dst still the recorded
        copy) or ``full``."""
        old = self.entries.get(rel)
        if not old or old.get("state") not in IN_PLACE or old.get("type") != "file":
            return "full"
        dst_st = _lstat(os.path.join(self.dst, rel))
        if dst_st is None or old.get("dst") != _stat_key(dst_st) or old.get("chunks") is None:
            return "full"
        links_ok = all(
            (self.entries.get(n) or {}).get("target") == rel
            and (self.entries.get(n) or {}).get("state") in IN_PLACE
            and getattr(_lstat(os.path.join(self.dst, n)), "st_ino", None) == dst_st.st_ino
            for n in self.links[rel]
        )
        return "skip" if old.get("src") == _stat_key(st) and links_ok else "delta"

    def plan(self) -> None:
        self.tasks = []
        self.skipped = 0
        needed = 0
        for rel, st in self.files:
            how = self.classify(rel, st)
            if how == "skip":
                self.skipped += 1
                continue
            self.tasks.append((rel, st, how))
            dst_st = _lstat(os.path.join(self.dst, rel))
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
            dst_st = _lstat(os.path.join(self.dst, rel))
            if dst_st and stat.S_ISREG(dst_st.st_mode) and dst_st.st_nlink == 1:
                needed -= dst_st.st_blocks * 512
        self.tasks.sort(key=lambda t: -t[1].st_blocks)
        self.check_room(max(0, needed))

    def check_room(self, needed: int) -> None:
        vfs = os.statvfs(self.dst)
        available = vfs.f_bavail * vfs.f_frsize
        wanted = int(needed * (1 + self.margin))
        if wanted > available:
            raise CopyError(
                "full",
                f"destination {self.dst} has {_human(available)} free but the copy needs "
                f"{_human(wanted)} ({_human(needed)} + {self.margin:.0%} margin); nothing written",
                path=self.dst,
                needed_bytes=needed,
                wanted_bytes=wanted,
                available_bytes=available,
                margin=self.margin,
            )

    # ---- act
    def run(self, progress, progress_file) -> dict:
        started = time.monotonic()
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
        self.writer = _Manifest(self.manifest, header)
        total = sum(t[1].st_blocks * 512 for t in self.tasks)
        self.progress = _Progress(self.phase, total, len(self.tasks), progress, progress_file)
        try:
            deleted = self.delete()
            for rel, _ in self.dirs:
                self.make_dir(rel)
            for rel, st in self.others:
                self.copy_other(rel, st)
            _run_parallel(self.copy_file, self.tasks, self.workers)
            self.finish_dirs()
            self.progress.finish()
        finally:
            self.writer.close()
        self.entries = load_manifest(self.manifest)
        _write_summary(
            self.manifest, self.header, self.entries, {"phase": self.phase, "finished": time.time()}
        )
        reg = [st for rel, st in self.tree if stat.S_ISREG(st.st_mode)]
        return {
            "copied": sorted(t[0] for t in self.tasks),
            "skipped": self.skipped,
            "deleted": deleted,
            "bytes_copied": self.bytes_written,
            "bytes_total": self.progress.state["bytes_done"],
            "apparent_bytes": sum(st.st_size for st in reg),
            "allocated_bytes": sum(
                st.st_blocks * 512 for st in {(st.st_dev, st.st_ino): st for st in reg}.values()
            ),
            "files": len(reg),
            "seconds": round(time.monotonic() - started, 3),
        }

    def delete(self) -> list[str]:
        records = []
        for rel in self.gone:  # reverse order: children before their directory
            _remove(os.path.join(self.dst, rel))
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

    def make_dir(self, rel: str) -> None:
        path = os.path.join(self.dst, rel)
        st = _lstat(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            st = None
        if st is None:
            os.mkdir(path, 0o700)

    def copy_other(self, rel: str, st: os.stat_result) -> None:
        """Symlinks (as links) and device/fifo nodes; sockets are not copied."""
        if stat.S_ISSOCK(st.st_mode):
            return
        path = os.path.join(self.dst, rel)
        is_link = stat.S_ISLNK(st.st_mode)
        record = _base_record(rel, "symlink" if is_link else "special", st, self.phase)
        if is_link:
            record["target"] = os.readlink(os.path.join(self.src, rel))
        old = self.entries.get(rel)
        dst_st = _lstat(path)
        if _unchanged(old, record) and dst_st is not None and old.get("dst") == _stat_key(dst_st):
            return
        _remove(path)
        if is_link:
            os.symlink(record["target"], path)
        else:
            os.mknod(path, st.st_mode, st.st_rdev)
        _apply_meta(path, st, is_link)
        record["dst"] = _stat_key(os.lstat(path))
        record["copies"] = (old or {}).get("copies", 0) + 1
        self.writer.append([record])

    def copy_file(self, task) -> None:
        rel, _, how = task
        src_path, dst_path = os.path.join(self.src, rel), os.path.join(self.dst, rel)
        self.progress.add(current=rel)
        sfd = _open_read(src_path)
        try:
            st = os.fstat(sfd)  # the stat the record keeps: taken before any byte is read
            digests, written = self.write_data(sfd, st, dst_path, rel, how)
        finally:
            os.close(sfd)
        _apply_meta(dst_path, st)
        for name in self.links[rel]:
            link = os.path.join(self.dst, name)
            if getattr(_lstat(link), "st_ino", None) != os.lstat(dst_path).st_ino:
                _remove(link)
                os.link(dst_path, link)
        checksum = _combine(self.algorithm, digests)
        state = "copied"
        if self.reread:  # this worker reads back while the others write: the disk does both
            found = self.read_back(dst_path, rel, st.st_size)
            if found != checksum:
                raise CopyError(
                    "mismatch",
                    f"{rel}: the copy on {self.dst} reads back as {found}, not {checksum} as "
                    "it was written: the destination storage does not keep what it is given",
                    path=rel,
                    expected=checksum,
                    found=found,
                )
            state = "verified"
        old = self.entries.get(rel) or {}
        record = _base_record(rel, "file", st, self.phase)
        record.update(
            state=state,
            checksum=checksum,
            dst=_stat_key(os.lstat(dst_path)),
            written=written,
            chunks=_encode_chunks(digests, st.st_size, self.chunk_size),
            copies=old.get("copies", 0) + 1,
        )
        records = [record]
        for name in self.links[rel]:
            link = _base_record(name, "hardlink", st, self.phase)
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

    def read_back(self, path: str, rel: str, size: int) -> str:
        """The checksum of the fsync'd copy as its storage returns it (O_DIRECT)."""
        nchunks = (size + self.chunk_size - 1) // self.chunk_size
        per = max(1, _SEGMENT // self.chunk_size)
        digests: list[bytes] = []
        for first in range(0, max(nchunks, 1), per):
            task = (path, rel, size, self.chunk_size, first, min(first + per, nchunks))
            digests += _hash_segment(task)[2]
        return _combine(self.algorithm, digests)

    def write_data(self, sfd: int, st, dst_path: str, rel: str, how: str):
        """Copy the data ranges (full) or only the chunks whose digest changed (delta)."""
        old: list[bytes] = []
        if how == "delta":
            entry = self.entries[rel]
            old = _decode_chunks(entry["chunks"], entry["size"], self.chunk_size)
            dfd = os.open(dst_path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        else:
            _remove(dst_path)
            dfd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        # The delta of a big file is read and hashed as segments by several threads (its
        # source is read fully but little is written); positional reads and writes make the
        # shared descriptors safe. A full copy is written by one thread per file: segments
        # written in parallel measured about 10 % slower (interleaved writes).
        nchunks = (st.st_size + self.chunk_size - 1) // self.chunk_size
        per = max(1, _SEGMENT // self.chunk_size) if how == "delta" else max(1, nchunks)
        ranges = [(first, min(first + per, nchunks)) for first in range(0, nchunks, per)]

        def copy(chunks_range):
            return self.copy_range(sfd, dfd, st.st_size, chunks_range, how, old)

        try:
            results = (
                _run_parallel(copy, ranges, min(self.workers, _FILE_THREADS))
                if len(ranges) > 1
                else [copy(r) for r in ranges]
            )
            digests = [d for ds, _ in results for d in ds]
            written = sum(n for _, n in results)
            os.ftruncate(dfd, st.st_size)
            os.fsync(dfd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                vfs = os.statvfs(self.dst)
                free = vfs.f_bavail * vfs.f_frsize
                raise CopyError(
                    "full",
                    f"destination {self.dst} is full while copying {rel} "
                    f"({_human(free)} free, the file needs "
                    f"{_human(st.st_blocks * 512)})",
                    path=rel,
                    needed_bytes=st.st_blocks * 512,
                    available_bytes=free,
                ) from exc
            raise
        finally:
            os.close(dfd)
        with self.count_lock:
            self.bytes_written += written
        return digests, written

    def copy_range(
        self,
        sfd: int,
        dfd: int,
        size: int,
        chunks_range: tuple[int, int],
        how: str,
        old: list[bytes],
    ) -> tuple[list[bytes], int]:
        """Copy chunks [first, last): digests from the data read, written as they are read."""
        digests, written = [], 0
        for buf, wstart, pieces, chunks in _windows(sfd, size, self.chunk_size, *chunks_range):
            digests += [c[4] for c in chunks]
            if how == "full":  # every data range of the window, one write each
                for a, n in pieces:
                    _write_all(dfd, buf[a - wstart : a - wstart + n], a)
                written += sum(n for _, n in pieces)
            else:
                written += self.write_changed(dfd, buf, wstart, chunks, old)
            if pieces:
                _start_writeback(dfd, wstart, pieces[-1][0] + pieces[-1][1] - wstart)
            self.progress.add(nbytes=sum(n for _, n in pieces))
        return digests, written

    @staticmethod
    def write_changed(
        dfd: int, buf: memoryview, wstart: int, chunks: list, old: list[bytes]
    ) -> int:
        """Delta: rewrite only the chunks whose digest changed; holes punched as holes."""
        written = 0
        for index, start, length, pieces, digest in chunks:
            if index < len(old) and old[index] == digest:
                continue
            pos = start
            for a, n in pieces:
                if a > pos:
                    _punch(dfd, pos, a - pos)
                _write_all(dfd, buf[a - wstart : a - wstart + n], a)
                pos = a + n
            if pos < start + length:
                _punch(dfd, pos, start + length - pos)
            written += sum(n for _, n in pieces)
        return written

    def finish_dirs(self) -> None:
        """Directory owner, mode and times after their content; then fsync every directory."""
        records = []
        for rel, st in reversed(self.dirs):
            path = os.path.join(self.dst, rel)
            _apply_meta(path, st)
            record = _base_record(rel, "dir", st, self.phase)
            record["dst"] = _stat_key(os.lstat(path))
            old = self.entries.get(rel)
            if not _unchanged(old, record):
                record["copies"] = (old or {}).get("copies", 0) + 1
                records.append(record)
        _apply_meta(self.dst, os.lstat(self.src))  # the export's root: the datastore's owner
        for rel in [""] + [rel for rel, _ in self.dirs]:
            fd = os.open(os.path.join(self.dst, rel), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if records:
            self.writer.append(records)


def sync(
    src: str,
    dst: str,
    manifest: str,
    *,
    phase: str = "presync",
    workers: int = 4,
    chunk_size: int = CHUNK_SIZE,
    margin: float = 0.05,
    progress=None,
    progress_file=None,
    lock_wait: float = 60.0,
    reread: bool = False,
) -> dict:
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
    src, dst, manifest = (os.path.abspath(p) for p in (src, dst, manifest))
    if not os.path.isdir(src):
        raise CopyError("source", f"source {src} is not a directory", path=src)
    if not os.path.isdir(dst):
        raise CopyError("io", f"destination {dst} is not a directory", path=dst)
    lock = _acquire_lock(manifest, lock_wait)
    try:
        return _Sync(src, dst, manifest, phase, workers, chunk_size, margin, reread).run(
            progress, progress_file
        )
    finally:
        _release_lock(lock)


def would_sync(src: str, dst: str, manifest: str, *, margin: float = 0.05) -> dict:
    """What ``sync`` would do now, decided by the same rules, writing nothing (check mode):
    ``{would_copy, would_delete, skipped}``. No room raises CopyError(full) as sync would."""
    src, dst, manifest = (os.path.abspath(p) for p in (src, dst, manifest))
    job = _Sync(src, dst, manifest, "presync", 1, CHUNK_SIZE, margin, False)
    job.scan()
    job.plan()
    return {
        "would_copy": sorted(t[0] for t in job.tasks),
        "would_copy_bytes": sum(t[1].st_blocks * 512 for t in job.tasks),  # as sync counts it
        "would_delete": list(job.gone),
        "skipped": job.skipped,
    }


# --------------------------------------------------------------------------- verify


def _check_meta(entry: dict, st: os.stat_result, dst: str) -> list[tuple[str, object, object]]:
    """(field, expected, found) for every attribute of ``entry`` the destination does not have."""
    kind = entry["type"]
    is_type = {
        "file": stat.S_ISREG,
        "hardlink": stat.S_ISREG,
        "dir": stat.S_ISDIR,
        "symlink": stat.S_ISLNK,
    }.get(kind, lambda m: True)
    if not is_type(st.st_mode):
        return [("type", kind, stat.filemode(st.st_mode)[0])]
    wrong = [
        (f, entry[f], getattr(st, "st_" + f))
        for f in ("uid", "gid")
        if entry.get(f) is not None and entry[f] != getattr(st, "st_" + f)
    ]
    if (
        kind != "symlink"
        and entry.get("mode") is not None
        and entry["mode"] != stat.S_IMODE(st.st_mode)
    ):
        wrong.append(("mode", oct(entry["mode"]), oct(stat.S_IMODE(st.st_mode))))
    if kind in ("file", "hardlink") and entry["size"] != st.st_size:
        wrong.append(("size", entry["size"], st.st_size))
    if kind == "symlink":
        target = os.readlink(os.path.join(dst, entry["path"]))
        if target != entry["target"]:
            wrong.append(("target", entry["target"], target))
    if kind == "hardlink":
        other = _lstat(os.path.join(dst, entry["target"]))
        if other is None or other.st_ino != st.st_ino:
            wrong.append(("target", entry["target"], "not the same file"))
    return wrong


def _hash_segment(task) -> tuple[str, int, list[bytes], int]:
    """Digests of chunks [first, last) of one destination file, read from its storage."""
    path, rel, size, chunk_size, first, last = task
    fd, direct = _open_storage(path, chunk_size)
    try:
        nread, digests = 0, []
        for _, _, pieces, chunks in _windows(fd, size, chunk_size, first, last, direct):
            digests += [c[4] for c in chunks]
            nread += sum(n for _, n in pieces)
    finally:
        os.close(fd)
    return rel, first, digests, nread


def verify(
    dst: str,
    manifest: str,
    *,
    workers: int = 4,
    progress=None,
    progress_file=None,
    reread: str = "all",
    lock_wait: float = 60.0,
) -> dict:
    """Re-read manifest entries on ``dst`` and compare checksum, type, size, mode, owner.

    ``reread="all"`` (the default, what the window runs) re-reads every file entry.
    ``reread="unverified"`` re-reads only entries not verified yet (``copied`` by a sync, or
    found wrong before) and those whose destination stat changed since their verification;
    the others are checked by stat and metadata only.

    Read-only on dst, with O_DIRECT where the file system allows it (what the storage holds,
    not the page cache); big files are split into segments hashed in parallel, so one large
    image does not leave the other workers idle. Entries that match are recorded
    ``verified`` with the stat of their copy (a later sync skips them while that stat holds,
    and the rollback compares against it); a file whose checksum differs is recorded
    ``mismatch``, so the next sync copies it again even if its stat did not change.
    Mismatches are returned, not raised: ``{entries, verified, mismatches: [{path, field,
    expected, found}], missing, seconds, bytes_read, reread, stat_checked}``.
    """
    if reread not in ("all", "unverified"):
        raise CopyError("io", f"verify reread must be 'all' or 'unverified', not {reread!r}")
    started = time.monotonic()
    dst, manifest = os.path.abspath(dst), os.path.abspath(manifest)
    lock = _acquire_lock(manifest, lock_wait)
    try:
        header, entries = _read_manifest(manifest)
        if header is None:
            raise CopyError("io", f"manifest {manifest} is missing or has no header", path=manifest)
        result, records = _verify(dst, header, entries, workers, reread, progress, progress_file)
        if records:
            writer = _Manifest(manifest, None)
            try:
                writer.append(records)
            finally:
                writer.close()
            entries.update((r["path"], r) for r in records)
    finally:
        _release_lock(lock)
    result["seconds"] = round(time.monotonic() - started, 3)
    _write_summary(
        manifest, header, entries, {"phase": "verify", "finished": time.time(), "verify": result}
    )
    return result


def _verify(dst, header, entries, workers, reread, progress, progress_file):
    chunk_size = header["chunk_size"]
    algorithm = header.get("algorithm") or _algorithm(chunk_size)
    per_segment = max(1, _SEGMENT // chunk_size)
    live = {p: e for p, e in entries.items() if e.get("state") in (*IN_PLACE, "mismatch")}
    mismatches, missing, segments, seen = [], [], [], {}
    stat_checked = 0
    for rel, entry in sorted(live.items()):
        path = os.path.join(dst, rel)
        st = _lstat(path)
        if st is None:
            missing.append(rel)
            continue
        wrong = _check_meta(entry, st, dst)
        mismatches += [{"path": rel, "field": f, "expected": e, "found": x} for f, e, x in wrong]
        if wrong:
            continue
        seen[rel] = st
        if entry["type"] != "file":
            continue
        if (
            reread == "unverified"
            and entry["state"] == "verified"
            and entry.get("dst") == _stat_key(st)
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
    files = {s[1] for s in segments}
    report = _Progress(
        "verify", sum(live[r]["blocks"] for r in files), len(files), progress, progress_file
    )

    def hash_one(task):
        result = _hash_segment(task)
        report.add(nbytes=result[3], current=task[1])
        return result

    results = _run_parallel(hash_one, sorted(segments, key=lambda s: s[4] - s[5]), workers)
    per_file: dict[str, list] = {}
    for rel, first, digests, _ in results:
        per_file.setdefault(rel, []).append((first, digests))
    records = []
    for rel, parts in sorted(per_file.items()):
        found = _combine(algorithm, [d for _, ds in sorted(parts) for d in ds])
        if found != live[rel]["checksum"]:
            mismatches.append(
                {
                    "path": rel,
                    "field": "checksum",
                    "expected": live[rel]["checksum"],
                    "found": found,
                }
            )
            records.append(dict(live[rel], state="mismatch", found=found))
    report.add(files=len(per_file))
    report.finish()
    bad = {m["path"] for m in mismatches} | set(missing)
    for rel, st in seen.items():  # what matched: recorded verified, with the copy's stat
        entry = live[rel]
        if rel in bad or (entry["type"] == "hardlink" and entry.get("target") in bad):
            continue
        if entry["state"] != "verified" or entry.get("dst") != _stat_key(st):
            record = dict(entry, state="verified", dst=_stat_key(st))
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
