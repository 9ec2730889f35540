"""Where a file's data is (SEEK_DATA/SEEK_HOLE), and the checksum of its content."""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import unittest

from enginekit import (
    MIB,
    EngineCase,
    engine,
    plain_checksum,
    sparse_file,
    write_file,
)

dc = engine()


def reports_holes(path):
    """Whether the file system of ``path`` says where a file's holes are."""
    probe = os.path.join(path, "hole-probe")
    sparse_file(probe, 2 * MIB, [(MIB, b"x")])
    fd = os.open(probe, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, 3) == MIB  # SEEK_DATA
    finally:
        os.close(fd)
        os.unlink(probe)


class ExtentsTest(EngineCase):
    def setUp(self):
        super(ExtentsTest, self).setUp()
        if not reports_holes(self.tmp):
            self.skipTest("the file system of the temporary directory hides holes")
        self.file = self.path("sparse.img")
        sparse_file(
            self.file,
            16 * MIB,
            [(2 * MIB, os.urandom(MIB)), (10 * MIB + 100, os.urandom(200))],
        )

    def extents(self, start, end):
        fd = os.open(self.file, os.O_RDONLY)
        try:
            return dc.extents.extents(fd, start, end)
        finally:
            os.close(fd)

    def test_only_the_data_ranges_are_named_and_the_holes_are_not(self):
        found = self.extents(0, 16 * MIB)
        self.assertEqual(len(found), 2, found)
        (a, b), (c, d) = found
        self.assertEqual((a, b), (2 * MIB, 3 * MIB))
        self.assertTrue(c <= 10 * MIB + 100 and d >= 10 * MIB + 300, found)
        self.assertTrue(d - c <= 8192, found)  # one or two file system blocks, not MiBs

    def test_a_range_of_the_file_gets_its_data_clipped_to_it(self):
        self.assertEqual(self.extents(2 * MIB + 512, 5 * MIB), [(2 * MIB + 512, 3 * MIB)])
        self.assertEqual(self.extents(4 * MIB, 10 * MIB), [])

    def test_windows_give_each_chunk_its_data_pieces_and_the_digest_of_its_content(self):
        with open(self.file, "rb") as fh:
            content = fh.read()
        fd = os.open(self.file, os.O_RDONLY)
        try:
            chunks = [c for window in dc.extents.windows(fd, 16 * MIB, MIB) for c in window[3]]
        finally:
            os.close(fd)
        self.assertEqual([c[0] for c in chunks], list(range(16)))
        for index, start, length, pieces, digest in chunks:
            self.assertEqual(digest, hashlib.sha256(content[start : start + length]).digest())
            if index not in (2, 10):
                self.assertEqual(pieces, [], index)
        self.assertEqual(chunks[2][3], [(2 * MIB, MIB)])


class ChecksumTest(EngineCase):
    def test_checksum_equals_an_independent_plain_read(self):
        sparse_file(self.path("sparse"), 40 * MIB, [(6 * MIB - 100, os.urandom(200))])
        write_file(self.path("dense"), os.urandom(9 * MIB + 3))
        write_file(self.path("empty"), b"")
        for name in ("sparse", "dense", "empty"):
            path = self.path(name)
            self.assertEqual(dc.file_checksum(path), plain_checksum(path), name)
            self.assertEqual(dc.file_checksum(path, 4 * MIB), plain_checksum(path, 4 * MIB), name)

    def test_checksum_depends_on_content_not_on_holes(self):
        write_file(self.path("dense"), b"\0" * 5 * MIB + b"end")
        sparse_file(self.path("sparse"), 5 * MIB + 3, [(5 * MIB, b"end")])
        if reports_holes(self.tmp):
            self.assertLess(
                os.stat(self.path("sparse")).st_blocks, os.stat(self.path("dense")).st_blocks
            )
        self.assertEqual(
            dc.file_checksum(self.path("dense")), dc.file_checksum(self.path("sparse"))
        )
        self.assertEqual(dc.file_checksum(self.path("dense")), plain_checksum(self.path("dense")))


class InventoryTest(EngineCase):
    def test_inventory_counts_images_vm_dirs_and_checkpoints(self):
        src, _, _ = self.datastore()
        inv = dc.inventory(src)
        self.assertEqual((inv["images"], inv["vm_dirs"], inv["checkpoints"]), (2, 1, 1))
        self.assertEqual((inv["files"], inv["symlinks"], inv["dirs"]), (5, 1, 3))
        expected = 64 * MIB + 5 * MIB + 17 + 300000 + 2 * len(b"<domain/>\n")
        self.assertEqual(inv["apparent_bytes"], expected)


if __name__ == "__main__":
    unittest.main()
