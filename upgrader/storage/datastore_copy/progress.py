"""Progress for the operator, and the worker threads that make it.

Threads are enough for parallel copies: the reads and writes (``os`` or ctypes) and the
hashing (``hashlib`` on large updates) release the GIL, on 2.7 as on 3.x.
"""

from __future__ import absolute_import, division, print_function

import os
import threading

from .compat import fs_text, monotonic
from .manifest import write_json_atomic


class Progress(object):
    """Counts bytes and files; calls ``progress`` and rewrites ``progress_file`` (<= 1/s)."""

    def __init__(self, phase, bytes_total, files_total, callback, path):
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
        self.started = monotonic()
        self.last = 0.0

    def add(self, nbytes=0, files=0, current=None):
        with self.lock:
            s = self.state
            s["bytes_done"] += nbytes
            s["files_done"] += files
            if current is not None:
                s["current"] = fs_text(current)
            now = monotonic()
            if not files and now - self.last < 1.0:
                return
            self._emit(now)

    def finish(self):
        with self.lock:
            self.state.update(finished=True, current=None, eta_seconds=0)
            self._emit(monotonic())

    def _emit(self, now):
        s = self.state
        rate = s["bytes_done"] / max(now - self.started, 1e-6)
        if not s["finished"] and rate > 0:
            s["eta_seconds"] = round(max(s["bytes_total"] - s["bytes_done"], 0) / rate, 1)
        snapshot = dict(s)
        if self.path and (now - self.last >= 1.0 or s["finished"]):
            write_json_atomic(self.path, snapshot)
        self.last = now
        if self.callback is not None:
            self.callback(snapshot)


def run_parallel(fn, items, workers):
    """``[fn(item) for item in items]`` on up to ``workers`` threads; after the first error no
    new item starts, and the error of the first failed item is raised.

    Items already running finish (their records are written), so an interrupted run loses
    at most the files in flight. One worker runs in the calling thread.
    """
    items = list(items)
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [fn(item) for item in items]
    results = [None] * len(items)
    failed = []  # (index, exception)
    lock = threading.Lock()
    queue = iter(range(len(items)))

    def work():
        while True:
            with lock:
                i = None if failed else next(queue, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # KeyboardInterrupt from a callback too
                with lock:
                    failed.append((i, exc))
                return

    threads = [threading.Thread(target=work) for _ in range(min(workers, len(items)))]
    for t in threads:
        t.daemon = True  # a process that must exit is not held by a copy in flight
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # with a timeout: 2.7 delivers Ctrl-C to a joining thread only so
    except BaseException as exc:
        with lock:
            failed.append((-1, exc))
        for t in threads:
            t.join()
    if failed:
        raise min(failed, key=lambda f: f[0])[1]
    return results
