"""sync(): sparse, faithful to metadata, parallel, incremental, and never writing the source."""

from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import random
import stat
import subprocess
import unittest

from enginekit import (
    DENSE,
    GROUP,
    IMAGE,
    MIB,
    OWNER,
    ROOT,
    EngineCase,
    engine,
    plain_checksum,
    read_file,
    sparse_file,
    times_ns,
    write_at,
    write_file,
)

dc = engine()
# every path make_datastore() builds, parents first
TREE = ["0", "0/7", "0/7/checkpoint", "0/7/deployment.0", "0/7/deployment.hard", "0/7/disk.0"]
TREE += ["1", IMAGE, DENSE]


def fingerprint(root):
    """Everything about a tree the engine must not change: content, mode, owner, times.

    Read without listing a directory (the paths are known) and through O_NOATIME, so the
    access times of files and directories are part of it (a symlink's is not: readlink()
    touches it and the kernel offers no way around that).
    """
    out = {}
    for rel in TREE:
        path = os.path.join(root, rel)
        st = os.lstat(path)
        item = [st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_ino, st.st_blocks]
        atime, mtime = times_ns(path)
        item.append(mtime)
        if stat.S_ISLNK(st.st_mode):
            item.append(os.readlink(path))
        else:
            item.append(atime)
        if stat.S_ISREG(st.st_mode):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
            with os.fdopen(fd, "rb") as fh:
                item.append(hashlib.sha256(fh.read()).hexdigest())
        out[rel] = item
    return out


class SyncTest(EngineCase):
    def test_a_sparse_image_stays_sparse_and_reads_back_identical(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        s, d = os.stat(os.path.join(src, IMAGE)), os.stat(os.path.join(dst, IMAGE))
        self.assertEqual(d.st_size, 64 * MIB)
        self.assertLess(d.st_blocks * 512, 8 * MIB)  # not 64 MiB of zeros
        self.assertLessEqual(abs(d.st_blocks - s.st_blocks) * 512, 0.02 * s.st_blocks * 512)
        self.assertEqual(read_file(os.path.join(dst, IMAGE)), read_file(os.path.join(src, IMAGE)))
        entry = dc.load_manifest(manifest)[IMAGE]
        self.assertEqual(entry["checksum"], plain_checksum(os.path.join(src, IMAGE)))
        self.assertEqual((entry["blocks"], entry["state"]), (s.st_blocks * 512, "copied"))

    def test_owner_mode_times_to_the_nanosecond_symlink_and_hardlink_are_kept(self):
        src, dst, manifest = self.datastore()
        summary = dc.sync(src, dst, manifest)
        for rel in ("0/7/checkpoint", "0/7/deployment.0", "0/7", "0/7/disk.0", "1", IMAGE):
            s, d = os.lstat(os.path.join(src, rel)), os.lstat(os.path.join(dst, rel))
            self.assertEqual((d.st_mode, d.st_uid, d.st_gid), (s.st_mode, s.st_uid, s.st_gid), rel)
            self.assertEqual(
                times_ns(os.path.join(dst, rel))[1], times_ns(os.path.join(src, rel))[1], rel
            )
        checkpoint = os.lstat(os.path.join(dst, "0/7/checkpoint"))
        self.assertEqual((checkpoint.st_uid, checkpoint.st_gid), (OWNER, GROUP))
        self.assertEqual(stat.S_IMODE(checkpoint.st_mode), 0o640)
        self.assertEqual(os.readlink(os.path.join(dst, "0/7/disk.0")), "../../" + IMAGE)
        self.assertEqual(
            os.stat(os.path.join(dst, "0/7/deployment.0")).st_ino,
            os.stat(os.path.join(dst, "0/7/deployment.hard")).st_ino,
        )
        self.assertEqual((summary["files"], summary["skipped"]), (5, 0))
        self.assertEqual(dc.load_manifest(manifest)["0/7/deployment.hard"]["type"], "hardlink")
        with open(manifest, "rb") as fh:
            header = json.loads(fh.readline().decode("ascii"))
        self.assertEqual(header["src"], src)
        self.assertEqual((header["chunk_size"], header["algorithm"]), (MIB, "sha256-1m"))

    def test_many_files_copied_by_parallel_workers_are_all_identical(self):
        src, dst, manifest = self.empty_pair()
        rng = random.Random(5)
        sizes = {}
        for i in range(24):
            name = "disk.{0}".format(i)
            sizes[name] = rng.randrange(0, 3 * MIB)
            write_file(os.path.join(src, name), os.urandom(sizes[name]))
        summary = dc.sync(src, dst, manifest, workers=4)
        self.assertEqual(summary["copied"], sorted(sizes))
        self.assertEqual(summary["bytes_copied"], sum(sizes.values()))
        entries = dc.load_manifest(manifest)
        for name in sizes:
            path = os.path.join(src, name)
            self.assertEqual(read_file(os.path.join(dst, name)), read_file(path), name)
            self.assertEqual(entries[name]["checksum"], plain_checksum(path), name)
            self.assertEqual(entries[name]["copies"], 1)

    def test_a_second_sync_copies_nothing_and_a_changed_file_only_its_changed_chunk(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        again = dc.sync(src, dst, manifest)
        self.assertEqual((again["copied"], again["bytes_copied"], again["skipped"]), ([], 0, 4))
        write_at(os.path.join(src, IMAGE), 100, b"changed while the VM ran")
        delta = dc.sync(src, dst, manifest, phase="delta")
        self.assertEqual(delta["copied"], [IMAGE])
        self.assertEqual(delta["bytes_copied"], MIB)  # the data of chunk 0 only, out of 5 MiB
        self.assertEqual(read_file(os.path.join(dst, IMAGE)), read_file(os.path.join(src, IMAGE)))
        entries = dc.load_manifest(manifest)
        self.assertEqual((entries[IMAGE]["copies"], entries[IMAGE]["phase"]), (2, "delta"))
        self.assertEqual(entries["0/7/checkpoint"]["copies"], 1)

    def test_the_delta_punches_a_hole_where_the_source_became_a_hole(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        sparse_file(os.path.join(src, IMAGE), 64 * MIB, [(0, os.urandom(MIB))])
        before = os.stat(os.path.join(dst, IMAGE)).st_ino
        dc.sync(src, dst, manifest, phase="delta")
        d = os.stat(os.path.join(dst, IMAGE))
        self.assertEqual(d.st_ino, before)  # rewritten in place, chunk by chunk
        self.assertLessEqual(d.st_blocks * 512, 1.02 * MIB + 4096)
        self.assertEqual(read_file(os.path.join(dst, IMAGE)), read_file(os.path.join(src, IMAGE)))

    def test_a_file_removed_from_the_source_is_removed_from_the_destination(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        os.unlink(os.path.join(src, "0/7/checkpoint"))
        summary = dc.sync(src, dst, manifest, phase="delta")
        self.assertEqual(summary["deleted"], ["0/7/checkpoint"])
        self.assertFalse(os.path.exists(os.path.join(dst, "0/7/checkpoint")))
        self.assertEqual(dc.load_manifest(manifest)["0/7/checkpoint"]["state"], "deleted")

    def test_the_source_is_left_exactly_as_it_was_access_times_included(self):
        src, dst, manifest = self.datastore()
        before = fingerprint(src)
        dc.sync(src, dst, manifest)
        write_at(os.path.join(dst, IMAGE), 5, b"x")  # a delta later must not copy back either
        dc.sync(src, dst, manifest, phase="delta")
        dc.verify(dst, manifest)
        self.assertEqual(fingerprint(src), before)

    @unittest.skipUnless(ROOT, "mounts a small tmpfs: needs root")
    def test_a_destination_too_small_stops_before_writing_with_the_numbers(self):
        src, dst, manifest = self.empty_pair()
        write_file(os.path.join(src, "disk.0"), os.urandom(6 * MIB))
        subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dst])
        try:
            with self.assertRaises(dc.CopyError) as info:
                dc.sync(src, dst, manifest)
            self.assertEqual(os.listdir(dst), [])
        finally:
            subprocess.check_call(["umount", dst])
        err = info.exception
        self.assertEqual(err.kind, "full")
        self.assertEqual(err.details["available_bytes"], 4 * MIB)
        self.assertGreaterEqual(err.details["needed_bytes"], 6 * MIB)
        for part in ("4.0 MiB free", "6.3 MiB"):
            self.assertIn(part, str(err))
        self.assertNotIn("\n", str(err))

    def test_a_source_that_is_not_a_directory_is_refused_in_one_line(self):
        _, dst, manifest = self.empty_pair()
        with self.assertRaises(dc.CopyError) as info:
            dc.sync(self.path("nowhere"), dst, manifest)
        self.assertEqual(info.exception.kind, "source")
        self.assertIn("nowhere is not a directory", str(info.exception))


if __name__ == "__main__":
    unittest.main()
