"""What the engine asks libc for where Python 2.7 cannot say it, and names as JSON text."""

from __future__ import absolute_import, division, print_function

import os
import unittest

from enginekit import OLD_NS, EngineCase, engine, write_file

dc = engine()
libc = dc.libc


class TimesTest(EngineCase):
    def setUp(self):
        super(TimesTest, self).setUp()
        self.file = self.path("disk.0")
        write_file(self.file, b"data")
        dc.compat.set_times_ns(self.file, OLD_NS + 1, OLD_NS)

    def test_times_are_set_and_read_back_to_the_nanosecond(self):
        st = dc.compat.lstat(self.file)
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns), (OLD_NS + 1, OLD_NS))
        fd = os.open(self.file, os.O_RDONLY)
        try:
            self.assertEqual(dc.compat.fstat(fd).st_mtime_ns, OLD_NS)
        finally:
            os.close(fd)

    def test_each_libc_way_of_reading_times_gives_the_exact_times(self):
        ways = [("statx", libc._statx), ("__fxstatat64", libc._fxstatat64)]
        ways = [(name, func) for name, func in ways if func is not None]
        if not ways:
            self.skipTest("this libc has neither statx nor x86_64's __fxstatat64")
        saved = libc._statx
        fd = os.open(self.file, os.O_RDONLY)
        try:
            for name, _ in ways:
                libc._statx = saved if name == "statx" else None
                path = self.file if isinstance(self.file, bytes) else self.file.encode("utf-8")
                for found in (libc.lstat_times_ns(path), libc.fstat_times_ns(fd)):
                    self.assertEqual(found[:2], (OLD_NS + 1, OLD_NS), name)
        finally:
            libc._statx = saved
            os.close(fd)

    def test_a_symlink_gets_its_own_times_not_its_targets(self):
        link = self.path("disk.link")
        os.symlink("disk.0", link)
        dc.compat.set_times_ns(link, OLD_NS - 5, OLD_NS - 7)
        self.assertEqual(dc.compat.lstat(link).st_mtime_ns, OLD_NS - 7)
        self.assertEqual(dc.compat.lstat(self.file).st_mtime_ns, OLD_NS)


class NamesTest(unittest.TestCase):
    def test_a_name_that_is_not_utf8_is_json_text_as_python3_writes_it_and_comes_back(self):
        raw = b"disk-\xff.img"
        native = raw if dc.compat.PY2 else raw.decode("utf-8", "surrogateescape")
        self.assertEqual(dc.compat.json_bytes([native]), b'["disk-\\udcff.img"]')
        self.assertEqual(dc.compat.fs_native(dc.compat.fs_text(native)), native)

    def test_a_utf8_name_is_json_text_and_comes_back(self):
        native = b"caf\xc3\xa9" if dc.compat.PY2 else "caf\xe9"
        self.assertEqual(dc.compat.json_bytes({"path": native}), b'{"path": "caf\\u00e9"}')
        self.assertEqual(dc.compat.fs_native(dc.compat.fs_text(native)), native)


if __name__ == "__main__":
    unittest.main()
