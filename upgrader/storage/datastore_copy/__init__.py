"""Datastore copy engine: copy a datastore tree to its new file system, verified and resumable.

It runs on the host that has both file systems mounted (the OpenNebula front end), so the data
never crosses the controller. Ansible ships this package there as module_utils
(``from ansible.module_utils.datastore_copy import sync``), which is why it imports only the
standard library and itself (relative imports, nothing of ``upgrader``), and why it is one
source for Python 2.7 and 3.6+: a 2012 front end has Python 2.7 (issue 20).

Why it is built this way (issue 7, DESIGN.md section 6):

* Sparse images stay sparse: data ranges come from ``SEEK_DATA``/``SEEK_HOLE``, never from
  reading zeros, and the destination gets its size with ``ftruncate`` (``extents``).
* The checksum depends only on content: per chunk sha256, where a chunk that is a hole hashes
  as zeros *without* hashing them, and the delta compares chunk digests to rewrite only what
  changed (``extents``, ``copying``).
* The manifest is JSON lines appended with fsync after each copied file: a SIGKILL loses at
  most the files in flight (``manifest``; ``syncing`` decides skip, delta or full).
* ``sync`` records ``copied``; ``verify`` re-reads the destination (O_DIRECT) and records
  ``verified`` or ``mismatch`` (``verifying``). ``sync(reread=True)`` reads each copy back as
  soon as it is durable, while the other workers go on writing.
* Speed (issue 7's targets): data is read in windows of several chunks (large requests),
  hashed by several threads (``hashlib`` and the reads release the GIL), big files are
  verified as segments in parallel (``progress.run_parallel``).
* Python 2.7 lacks ``os.pread``/``preadv``/``pwrite``, ``os.scandir``, nanosecond stat times
  and ``utime``, ``concurrent.futures``: ``libc`` calls them through ctypes, ``compat`` and
  ``fileio`` give one function for both interpreters, and 3.x keeps its own faster calls.

The modules that hold ``sync`` and ``verify`` are ``syncing`` and ``verifying``: a submodule
named like the function it defines would be shadowed by this package's re-export.
"""

from __future__ import absolute_import, division, print_function

from .errors import CopyError
from .extents import CHUNK_SIZE, file_checksum
from .manifest import IN_PLACE, load_manifest
from .syncing import sync, would_sync
from .tree import inventory, stat_key, walk
from .verifying import verify

__all__ = [
    "CHUNK_SIZE",
    "IN_PLACE",
    "CopyError",
    "file_checksum",
    "inventory",
    "load_manifest",
    "stat_key",
    "sync",
    "verify",
    "walk",
    "would_sync",
]
