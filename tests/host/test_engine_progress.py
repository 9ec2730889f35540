"""Progress as the operator follows it, and the worker threads behind it."""

from __future__ import absolute_import, division, print_function

import json
import os
import threading
import time
import unittest

from enginekit import DENSE, IMAGE, EngineCase, engine, read_file

dc = engine()


class ProgressTest(EngineCase):
    def test_the_progress_file_ends_finished_with_every_byte_and_file(self):
        src, dst, manifest = self.datastore()
        events = []
        progress_file = manifest + ".progress"
        dc.sync(src, dst, manifest, progress=events.append, progress_file=progress_file)
        final = json.loads(read_file(progress_file).decode("ascii"))
        self.assertTrue(final["finished"])
        self.assertEqual((final["files_done"], final["files_total"]), (4, 4))
        self.assertGreaterEqual(final["bytes_done"], final["bytes_total"] - 4 * 4096)
        self.assertEqual((final["pid"], final["phase"]), (os.getpid(), "presync"))
        self.assertEqual(events[-1], final)
        done = [e["files_done"] for e in events]
        self.assertEqual(done, sorted(done))
        summary = json.loads(read_file(manifest + ".summary.json").decode("ascii"))
        expected = {IMAGE, DENSE, "0/7/checkpoint", "0/7/deployment.0"}
        self.assertEqual(set(f["path"] for f in summary["files"]), expected)
        self.assertEqual(summary["totals"]["files"], 4)

    def test_verify_reports_its_own_phase_and_the_files_it_rereads(self):
        src, dst, manifest = self.datastore()
        dc.sync(src, dst, manifest)
        events = []
        dc.verify(dst, manifest, progress=events.append)
        final = events[-1]
        self.assertEqual((final["phase"], final["finished"]), ("verify", True))
        self.assertEqual((final["files_done"], final["files_total"]), (4, 4))
        self.assertGreaterEqual(final["bytes_done"], final["bytes_total"] - 4 * 4096)


class ParallelTest(unittest.TestCase):
    def test_results_come_back_in_the_order_of_the_items(self):
        def slow_square(n):
            time.sleep(0.001 * (n % 3))
            return n * n

        self.assertEqual(
            dc.progress.run_parallel(slow_square, range(20), 4), [n * n for n in range(20)]
        )

    def test_the_items_run_at_the_same_time_on_the_workers(self):
        running, most = [0], [0]
        lock = threading.Lock()

        def work(_):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1

        dc.progress.run_parallel(work, range(8), 4)
        self.assertEqual(most[0], 4)

    def test_after_the_first_error_no_new_item_starts_and_that_error_is_raised(self):
        started = []

        def work(n):
            started.append(n)
            if n == 2:
                raise ValueError("item 2 failed")
            time.sleep(0.05)

        with self.assertRaises(ValueError) as info:
            dc.progress.run_parallel(work, range(40), 2)
        self.assertEqual(str(info.exception), "item 2 failed")
        self.assertLess(len(started), 8)


if __name__ == "__main__":
    unittest.main()
