"""verify() and the sync's read-back: what the window relies on before switching mounts."""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import unittest

from enginekit import (
    MIB,
    ROOT,
    EngineCase,
    engine,
    plain_checksum,
    sparse_file,
    times_ns,
    write_at,
    write_file,
)

dc = engine()


class VerifyTest(EngineCase):
    def setUp(self):
        super(VerifyTest, self).setUp()
        src, dst, manifest = self.empty_pair()
        os.mkdir(os.path.join(src, "vm"))
        sparse_file(
            os.path.join(src, "sparse.img"),
            40 * MIB,
            [(6 * MIB - 100, os.urandom(200)), (20 * MIB, os.urandom(4 * MIB))],
        )
        write_file(os.path.join(src, "vm", "disk.0"), os.urandom(9 * MIB))
        write_file(os.path.join(src, "vm", "empty"), b"")
        dc.sync(src, dst, manifest)

    def test_a_good_copy_is_read_whole_found_right_and_recorded_verified(self):
        result = dc.verify(self.dst, self.manifest)
        self.assertEqual((result["mismatches"], result["missing"]), ([], []))
        self.assertEqual((result["verified"], result["entries"]), (4, 4))  # 3 files, 1 dir
        self.assertTrue(4 * MIB + 200 <= result["bytes_read"] - 9 * MIB <= 4 * MIB + 8192)
        entries = dc.load_manifest(self.manifest)
        self.assertEqual(set(e["state"] for e in entries.values()), {"verified"})
        again = dc.sync(self.src, self.dst, self.manifest, phase="delta")
        self.assertEqual((again["copied"], again["skipped"]), ([], 3))

    def test_a_flipped_byte_and_a_missing_file_are_named_and_copied_again(self):
        path = os.path.join(self.dst, "sparse.img")
        atime, mtime = times_ns(path)
        with open(path, "r+b") as fh:
            fh.seek(22 * MIB)
            byte = bytearray(fh.read(1))
            fh.seek(22 * MIB)
            fh.write(bytes(bytearray([byte[0] ^ 1])))
        dc.compat.set_times_ns(path, atime, mtime)  # a silent corruption: same mtime
        os.unlink(os.path.join(self.dst, "vm", "empty"))
        result = dc.verify(self.dst, self.manifest)
        found = [(m["path"], m["field"]) for m in result["mismatches"]]
        self.assertEqual(found, [("sparse.img", "checksum")])
        self.assertEqual(result["mismatches"][0]["found"], plain_checksum(path))
        self.assertEqual((result["missing"], result["verified"]), (["vm/empty"], 2))
        self.assertEqual(dc.load_manifest(self.manifest)["sparse.img"]["state"], "mismatch")
        redone = dc.sync(self.src, self.dst, self.manifest, phase="delta")
        self.assertEqual(redone["copied"], ["sparse.img", "vm/empty"])
        self.assertEqual(dc.verify(self.dst, self.manifest)["mismatches"], [])

    @unittest.skipUnless(ROOT, "gives a file to another user: needs root")
    def test_mode_and_owner_drift_are_reported(self):
        os.chmod(os.path.join(self.dst, "vm", "disk.0"), 0o600)
        os.chown(os.path.join(self.dst, "vm"), 1234, 0)
        result = dc.verify(self.dst, self.manifest)
        found = set((m["path"], m["field"]) for m in result["mismatches"])
        self.assertEqual(found, {("vm/disk.0", "mode"), ("vm", "uid")})
        mode = next(m for m in result["mismatches"] if m["field"] == "mode")
        self.assertEqual((mode["expected"], mode["found"]), ("0o644", "0o600"))

    def test_rereading_only_the_unverified_reads_the_delta_and_copies_whose_stat_changed(self):
        self.assertEqual(dc.verify(self.dst, self.manifest)["reread"], 3)
        write_file(os.path.join(self.src, "vm", "disk.0"), os.urandom(9 * MIB))
        dc.sync(self.src, self.dst, self.manifest, phase="delta")
        result = dc.verify(self.dst, self.manifest, reread="unverified")
        got = (result["reread"], result["stat_checked"], result["bytes_read"])
        self.assertEqual(got, (1, 2, 9 * MIB))
        self.assertEqual(result["verified"], result["entries"])
        write_at(os.path.join(self.dst, "sparse.img"), 21 * MIB, b"x")  # after its verification
        result = dc.verify(self.dst, self.manifest, reread="unverified")
        self.assertEqual(result["reread"], 1)
        found = [(m["path"], m["field"]) for m in result["mismatches"]]
        self.assertEqual(found, [("sparse.img", "checksum")])

    def test_a_bad_reread_option_is_refused_in_one_line(self):
        with self.assertRaises(dc.CopyError) as info:
            dc.verify(self.dst, self.manifest, reread="some")
        self.assertIn("must be 'all' or 'unverified'", str(info.exception))

    def test_would_sync_names_what_the_next_sync_copies_and_writes_nothing(self):
        write_file(os.path.join(self.src, "vm", "disk.0"), os.urandom(MIB))
        os.unlink(os.path.join(self.src, "vm", "empty"))
        with open(self.manifest, "rb") as fh:
            before = fh.read()
        todo = dc.would_sync(self.src, self.dst, self.manifest)
        with open(self.manifest, "rb") as fh:
            self.assertEqual(fh.read(), before)
        self.assertTrue(os.path.exists(os.path.join(self.dst, "vm", "empty")))
        done = dc.sync(self.src, self.dst, self.manifest, phase="delta")
        self.assertEqual(todo["would_copy"], done["copied"])
        self.assertEqual(todo["would_copy"], ["vm/disk.0"])
        self.assertEqual(todo["would_delete"], done["deleted"])
        self.assertEqual(todo["would_delete"], ["vm/empty"])
        self.assertEqual(todo["skipped"], done["skipped"])


class ReadBackTest(EngineCase):
    def test_a_sync_that_reads_back_records_every_copy_verified(self):
        src, dst, manifest = self.empty_pair()
        os.mkdir(os.path.join(src, "vm"))
        write_file(os.path.join(src, "vm", "disk.0"), os.urandom(3 * MIB))
        os.link(os.path.join(src, "vm", "disk.0"), os.path.join(src, "vm", "disk.0.link"))
        write_file(os.path.join(src, "empty"), b"")
        dc.sync(src, dst, manifest, reread=True)
        entries = dc.load_manifest(manifest)
        files = dict((p, e) for p, e in entries.items() if e["type"] in ("file", "hardlink"))
        self.assertEqual(set(e["state"] for e in files.values()), {"verified"})
        self.assertEqual(
            files["vm/disk.0"]["checksum"], plain_checksum(os.path.join(dst, "vm", "disk.0"))
        )
        again = dc.verify(dst, manifest, reread="unverified")  # read back already: by stat
        self.assertEqual((again["reread"], again["mismatches"]), (0, []))

    def test_a_copy_that_reads_back_wrong_stops_the_sync_naming_the_file(self):
        src, dst, manifest = self.empty_pair()
        write_file(os.path.join(src, "disk.0"), os.urandom(2 * MIB))
        real = dc.extents.hash_segment

        def bad_storage(task):  # what a destination that flips a bit would give back
            rel, first, digests, nread = real(task)
            return rel, first, [hashlib.sha256(b"flipped").digest()] + digests[1:], nread

        dc.extents.hash_segment = bad_storage
        try:
            with self.assertRaises(dc.CopyError) as failed:
                dc.sync(src, dst, manifest, reread=True)
        finally:
            dc.extents.hash_segment = real
        self.assertEqual(failed.exception.kind, "mismatch")
        self.assertTrue(str(failed.exception).startswith("disk.0: the copy on "))
        self.assertIn("reads back as sha256-1m:", str(failed.exception))
        state = dc.load_manifest(manifest).get("disk.0", {}).get("state")
        self.assertNotIn(state, ("copied", "verified"))


if __name__ == "__main__":
    unittest.main()
