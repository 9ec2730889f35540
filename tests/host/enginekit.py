"""What the copy engine's host tests share: the engine imported standalone, small datastores.

These tests run under Python 2.7 and 3.x alike (``python -m unittest discover -s tests/host``;
``tests/unit/test_copy_engine_pythons.py`` runs them with both interpreters). The engine is
imported as Ansible ships it: the package ``datastore_copy`` alone, with ``upgrader/storage``
on ``sys.path`` and nothing of ``upgrader``.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINE_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "upgrader", "storage")
if ENGINE_DIR not in sys.path:
    sys.path.insert(0, ENGINE_DIR)

import datastore_copy  # noqa: E402 - found through the path set just above

MIB = 1 << 20
IMAGE = "1/0123456789abcdef0123456789abcdef"
DENSE = "1/fedcba9876543210fedcba9876543210"
ROOT = os.geteuid() == 0
# Files of another owner, as oneadmin's are on a real datastore; a user who is not root can
# only give files to itself, and the copy must keep that owner too.
OWNER = 9869 if ROOT else os.getuid()
GROUP = 9869 if ROOT else os.getgid()
OLD_NS = 1600000000123456789  # a time with nanoseconds that a float cannot hold exactly


def engine():
    return datastore_copy


def plain_checksum(path, chunk=MIB):
    """The manifest checksum recomputed independently: read everything, zeros included."""
    digests = []
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            digests.append(hashlib.sha256(block).digest())
    return "sha256-{0}m:".format(chunk // MIB) + hashlib.sha256(b"".join(digests)).hexdigest()


def write_at(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def write_file(path, data):
    with open(path, "wb") as fh:
        fh.write(data)


def read_file(path):
    with open(path, "rb") as fh:
        return fh.read()


def sparse_file(path, size, pieces):
    """A file of ``size`` bytes that holds data only at ``pieces`` ``[(offset, bytes)]``."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    for offset, data in pieces:
        write_at(path, offset, data)


def times_ns(path):
    """(atime_ns, mtime_ns) of a path, not following a symlink, exactly, on 2.7 too."""
    st = datastore_copy.compat.lstat(path)
    return st.st_atime_ns, st.st_mtime_ns


def set_times(path, ns):
    datastore_copy.compat.set_times_ns(path, ns, ns)


def make_datastore(root):
    """Image datastore 1 (a sparse 64 MiB image, a dense one) and system datastore 0 (a VM).

    Returns the source directory.
    """
    src = os.path.join(root, "src")
    os.makedirs(os.path.join(src, "1"))
    vm = os.path.join(src, "0", "7")
    os.makedirs(vm)
    sparse = os.path.join(src, IMAGE)
    sparse_file(
        sparse,
        64 * MIB,
        [(0, os.urandom(MIB)), (9 * MIB + 12345, os.urandom(3 * MIB)), (63 * MIB, os.urandom(MIB))],
    )
    write_file(os.path.join(src, DENSE), os.urandom(5 * MIB + 17))
    write_file(os.path.join(vm, "deployment.0"), b"<domain/>\n")
    write_file(os.path.join(vm, "checkpoint"), os.urandom(300000))
    os.symlink("../../" + IMAGE, os.path.join(vm, "disk.0"))
    os.link(os.path.join(vm, "deployment.0"), os.path.join(vm, "deployment.hard"))
    os.chown(os.path.join(vm, "checkpoint"), OWNER, GROUP)
    os.chmod(os.path.join(vm, "checkpoint"), 0o640)
    os.lchown(os.path.join(vm, "disk.0"), OWNER, GROUP)
    os.chmod(vm, 0o750)
    for path in (os.path.join(vm, "checkpoint"), sparse, vm, os.path.join(src, "1")):
        set_times(path, OLD_NS)
    return src


class EngineCase(unittest.TestCase):
    """A test with a fresh directory: ``self.tmp``, and ``self.src``/``self.dst``/
    ``self.manifest`` once ``datastore()`` has built the usual one."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def datastore(self):
        self.src = make_datastore(self.tmp)
        self.dst = self.path("dst")
        os.mkdir(self.dst)
        self.manifest = self.path("manifest.jsonl")
        return self.src, self.dst, self.manifest

    def empty_pair(self):
        """An empty source and destination (the test fills the source)."""
        self.src, self.dst, self.manifest = self.path("src"), self.path("dst"), self.path("m.jsonl")
        os.mkdir(self.src)
        os.mkdir(self.dst)
        return self.src, self.dst, self.manifest
