"""The manifest: a copy interrupted (even by SIGKILL) resumes where it stopped; its lock."""

from __future__ import absolute_import, division, print_function

import fcntl
import os
import signal
import subprocess
import sys
import time
import unittest

from enginekit import ENGINE_DIR, MIB, EngineCase, engine, read_file, write_file

dc = engine()


class ResumeTest(EngineCase):
    def test_a_delta_after_an_interrupted_sync_recopies_nothing_already_copied(self):
        src, dst, manifest = self.datastore()
        seen = []

        def stop_after_two(event):
            if event["files_done"] and event["files_done"] not in seen:
                seen.append(event["files_done"])
                if len(seen) == 2:
                    raise KeyboardInterrupt  # the operator, or a killed controller

        with self.assertRaises(KeyboardInterrupt):
            dc.sync(src, dst, manifest, workers=1, progress=stop_after_two)
        done = set(p for p, e in dc.load_manifest(manifest).items() if e["type"] == "file")
        self.assertEqual(len(done), 2)
        summary = dc.sync(src, dst, manifest, phase="delta")
        self.assertEqual(len(summary["copied"]), 2)
        self.assertFalse(set(summary["copied"]) & done)
        self.assertEqual(set(e["copies"] for e in dc.load_manifest(manifest).values()), {1})

    def test_sigkill_mid_copy_then_a_delta_recopies_only_the_files_not_recorded(self):
        src, dst, manifest = self.empty_pair()
        names = ["disk.{0}".format(i) for i in range(12)]
        for name in names:
            write_file(os.path.join(src, name), os.urandom(2 * MIB))
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[4]); import datastore_copy; "
            "datastore_copy.sync(sys.argv[1], sys.argv[2], sys.argv[3], workers=1, "
            "progress=lambda e: time.sleep(0.1 if e['files_done'] else 0))"
        )
        proc = subprocess.Popen([sys.executable, "-c", code, src, dst, manifest, ENGINE_DIR])
        deadline = time.time() + 20
        while time.time() < deadline and self.lines(manifest) < 4:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        copied = set(dc.load_manifest(manifest))
        self.assertTrue(3 <= len(copied) < 12, copied)
        summary = dc.sync(src, dst, manifest, phase="delta", lock_wait=5)
        self.assertEqual(sorted(set(summary["copied"]) | copied), sorted(names))
        self.assertFalse(set(summary["copied"]) & copied)
        self.assertEqual(set(e["copies"] for e in dc.load_manifest(manifest).values()), {1})
        for name in names:
            self.assertEqual(read_file(os.path.join(dst, name)), read_file(os.path.join(src, name)))

    @staticmethod
    def lines(path):
        try:
            return read_file(path).count(b"\n")
        except (IOError, OSError):
            return 0


class ManifestFileTest(EngineCase):
    def copied(self):
        src, dst, manifest = self.empty_pair()
        for i in range(3):
            write_file(os.path.join(src, "disk.{0}".format(i)), os.urandom(MIB))
        dc.sync(src, dst, manifest)
        return src, dst, manifest

    def test_a_torn_last_line_is_ignored_and_a_corrupt_one_before_it_is_an_error(self):
        src, dst, manifest = self.copied()
        with open(manifest, "ab") as fh:
            fh.write(b'{"path": "disk.9", "ty')  # killed in the middle of an append
        self.assertEqual(sorted(dc.load_manifest(manifest)), ["disk.0", "disk.1", "disk.2"])
        self.assertEqual(dc.sync(src, dst, manifest)["skipped"], 3)
        lines = read_file(manifest).splitlines()
        lines[2] = b"{not json"
        write_file(manifest, b"\n".join(lines) + b"\n")
        with self.assertRaises(dc.CopyError) as info:
            dc.load_manifest(manifest)
        self.assertEqual((info.exception.kind, info.exception.details["line"]), ("io", 3))
        self.assertIn("line 3 is corrupt", str(info.exception))

    def test_the_manifest_of_another_copy_is_refused(self):
        _, dst, manifest = self.copied()
        other = self.path("other")
        os.mkdir(other)
        with self.assertRaises(dc.CopyError) as info:
            dc.sync(other, dst, manifest)
        self.assertEqual(info.exception.kind, "source")
        self.assertIn("belongs to", str(info.exception))

    def test_a_file_name_that_is_not_utf8_is_recorded_and_found_again(self):
        src, dst, manifest = self.empty_pair()
        raw = b"disk-\xff\xfe.img"  # a name no UTF-8 decoder accepts
        fd = os.open(os.path.join(src.encode("utf-8"), raw), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, os.urandom(MIB))
        os.close(fd)
        first = dc.sync(src, dst, manifest)
        self.assertEqual(len(first["copied"]), 1)
        self.assertEqual(os.listdir(dst.encode("utf-8")), [raw])
        self.assertEqual(dc.verify(dst, manifest)["mismatches"], [])
        again = dc.sync(src, dst, manifest)
        self.assertEqual((again["copied"], again["skipped"]), ([], 1))
        self.assertEqual(list(dc.load_manifest(manifest)), first["copied"])


class LockTest(EngineCase):
    def hold_lock(self, manifest, pid):
        fd = os.open(manifest + ".lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, pid)
        self.addCleanup(os.close, fd)

    def test_a_held_lock_gives_locked_naming_the_pid_and_nothing_is_written(self):
        src, dst, manifest = self.datastore()
        self.hold_lock(manifest, b"4242\n")
        with self.assertRaises(dc.CopyError) as info:
            dc.sync(src, dst, manifest, lock_wait=0.3)
        self.assertEqual(info.exception.kind, "locked")
        self.assertIn("pid 4242", str(info.exception))
        self.assertEqual(os.listdir(dst), [])

    def test_verify_waits_for_a_running_copy_then_gives_locked(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        self.hold_lock(manifest, b"4343\n")
        started = time.time()
        with self.assertRaises(dc.CopyError) as info:
            dc.verify(dst, manifest, lock_wait=0.5)
        self.assertGreaterEqual(time.time() - started, 0.45)
        self.assertEqual(info.exception.kind, "locked")
        self.assertIn("pid 4343", str(info.exception))


if __name__ == "__main__":
    unittest.main()
