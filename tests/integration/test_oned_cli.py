"""Starting and stopping the simulator: bad input gets one line and a non-zero exit."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import oned


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrader.lab.oned", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def base(tmp_path: Path, **override: str) -> list[str]:
    auth = oned.write_auth(tmp_path)
    opts = {
        "--version": "3.2.1",
        "--listen": "127.0.0.1:0",
        "--db": str(tmp_path / "one.db"),
        "--one-auth": str(auth),
        **override,
    }
    return [x for kv in opts.items() for x in kv]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "listen", ["localhost", "127.0.0.1:", ":2633", "127.0.0.1:99999", "127.0.0.1:http"]
)
def test_a_malformed_listen_is_refused(tmp_path, listen):
    assert_one_line_error(run(*base(tmp_path, **{"--listen": listen})), "malformed --listen")


def test_an_unreadable_auth_file_is_refused(tmp_path):
    result = run(*base(tmp_path, **{"--one-auth": str(tmp_path / "missing")}))
    assert_one_line_error(result, "cannot read --one-auth", "missing")
    result = run(*base(tmp_path, **{"--one-auth": str(tmp_path)}))
    assert_one_line_error(result, "cannot read --one-auth")


def test_a_malformed_auth_file_is_refused(tmp_path):
    bad = tmp_path / "bad_auth"
    bad.write_text("just-a-password\n")
    assert_one_line_error(run(*base(tmp_path, **{"--one-auth": str(bad)})), "USER:PASSWORD")


def test_an_unknown_version_is_refused(tmp_path):
    assert_one_line_error(
        run(*base(tmp_path, **{"--version": "3.8.0"})), "unknown --version '3.8.0'", "3.2.1"
    )


def test_a_database_of_another_version_is_refused_with_oneds_message(tmp_path):
    oned.seed(tmp_path, "3.2.1", hosts=1, vms=1)
    before = (tmp_path / "one.db").read_bytes()
    result = run(*base(tmp_path, **{"--version": "3.4.1"}))
    assert_one_line_error(
        result,
        "Database version mismatch. Installed OpenNebula 3.4.1 uses "
        "DB version '3.4.1', and existing DB version is '3.2.1'.",
    )
    assert (tmp_path / "one.db").read_bytes() == before
    assert not (tmp_path / ".lock").exists()


def test_a_file_that_is_no_database_is_refused(tmp_path):
    (tmp_path / "one.db").write_text("not sqlite at all, " * 100)
    assert_one_line_error(run(*base(tmp_path)), "is not an OpenNebula database")


def test_a_second_simulator_on_the_same_database_is_refused(tmp_path):
    first = oned.start(tmp_path, "3.2.1")
    try:
        assert (tmp_path / ".lock").read_text().strip() == str(first.proc.pid)
        assert_one_line_error(run(*base(tmp_path)), "Cannot start oned, opening lock file")
    finally:
        assert first.stop() == 0
    assert not (tmp_path / ".lock").exists()


def test_sigterm_stops_cleanly_and_a_stale_lock_is_replaced(tmp_path):
    sim = oned.start(tmp_path, "3.2.1")
    sim.proc.send_signal(signal.SIGKILL)
    sim.proc.wait()
    sim.stop()
    assert (tmp_path / ".lock").exists()  # a crashed oned leaves its lock behind
    again = oned.start(tmp_path, "3.2.1")
    assert again.stop() == 0
    assert again.stderr == ""


def test_a_port_in_use_is_one_line(tmp_path):
    sim = oned.start(tmp_path / "a", "3.2.1")
    try:
        port = sim.url.rsplit(":", 1)[1].split("/")[0]
        (tmp_path / "b").mkdir()
        result = run(*base(tmp_path / "b", **{"--listen": f"127.0.0.1:{port}"}))
        assert_one_line_error(result, "cannot listen on")
        assert not (tmp_path / "b" / ".lock").exists()
    finally:
        sim.stop()
