"""A long copy reports its progress as retries of the storage module's ``state: progress``:
each such runner_retry becomes one line for the operator; any other retry stays silent."""

from __future__ import annotations

from upgrader.ansible_adapter.events import Watch


def _retry(res: dict) -> dict:
    return {
        "event": "runner_retry",
        "counter": 7,
        "created": "2026-11-24T06:00:00",
        "event_data": {"host": "fe1", "task": "Follow the copy engine", "res": res},
    }


def _lines(*events: dict) -> list[str]:
    lines: list[str] = []
    watch = Watch("3.6/storage-presync", None, None, None, lines.append)
    for event in events:
        watch.handle(event)
    assert watch.error is None
    return lines


def test_a_retry_with_the_engines_progress_is_one_line_with_size_files_and_eta():
    lines = _lines(
        _retry(
            {
                "attempts": 3,
                "finished": False,
                "upgrader_progress": {
                    "phase": "presync",
                    "bytes_done": 1288490189,
                    "bytes_total": 3113851290,
                    "files_done": 310,
                    "files_total": 900,
                    "eta_seconds": 80.4,
                    "finished": False,
                },
            }
        )
    )
    assert lines == [
        "[step/3.6/storage-presync] fe1: copy 41 % (1.2 GiB of 2.9 GiB, 310 files), ETA 1m20s"
    ]


def test_the_verify_says_verify_and_a_short_eta_has_seconds_only():
    lines = _lines(
        _retry(
            {
                "upgrader_progress": {
                    "phase": "verify",
                    "bytes_done": 512 << 20,
                    "bytes_total": 1 << 30,
                    "files_done": 2,
                    "eta_seconds": 9.6,
                }
            }
        )
    )
    assert lines == [
        "[step/3.6/storage-presync] fe1: verify 50 % (512.0 MiB of 1.0 GiB, 2 files), ETA 10s"
    ]


def test_before_the_engine_wrote_anything_the_copy_is_starting():
    assert _lines(_retry({"upgrader_progress": {}})) == [
        "[step/3.6/storage-presync] fe1: copy starting"
    ]


def test_other_retries_print_nothing():
    assert _lines(_retry({"attempts": 2, "rc": 3, "stdout": "libvirtd is not running"})) == []
