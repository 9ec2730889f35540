"""``upgrader schedule`` through the real CLI: the timer and service it writes, checked by
``systemd-analyze`` where the machine has it and by reading the files in any case."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from upgrader.compat import UTC
from upgrader.journal.store import EventType, Journal

SECRET = "oneadmin:never-in-a-unit-file"
SITE = """\
environments:
  staging:
    oned: http://s:2633/RPC2
    credentials: s.auth
    inventory: s.yml
    windows:
      - {start: "2024-06-01T01:00:00+02:00", end: "2024-06-01T05:00:00+02:00"}
  production:
    oned: http://p:2633/RPC2
    credentials: p.auth
    inventory: p.yml
    windows:
      - {weekly: "Sat 01:00", duration: 4h, timezone: Europe/Berlin}
"""
UNDO_MARGIN = 15 * 60
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def upgrader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "site" / "upgrader.yml"
    path.parent.mkdir()
    path.write_text(SITE)
    for name in ("s.auth", "p.auth"):
        (path.parent / name).write_text(SECRET + "\n")
        (path.parent / name).chmod(0o600)
    return path


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def scheduled(out: Path, name: str) -> tuple[configparser.ConfigParser, configparser.ConfigParser]:
    """Both files of ``name``, after ``systemd-analyze verify`` where it exists."""
    service, timer = out / f"{name}.service", out / f"{name}.timer"
    if SYSTEMD_ANALYZE:
        check = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", str(service), str(timer)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        assert check.stdout + check.stderr == "", "systemd-analyze warns about the units"
    return read_unit(service), read_unit(timer)


def on_calendar(timer: configparser.ConfigParser) -> datetime:
    """The timer's ``OnCalendar=YYYY-MM-DD HH:MM:SS Zone`` as an instant; systemd's own
    reading of it agrees where systemd-analyze exists."""
    text = timer["Timer"]["OnCalendar"]
    day, clock, zone = text.split(" ")
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(zone))
    if SYSTEMD_ANALYZE:
        said = subprocess.run(
            [SYSTEMD_ANALYZE, "calendar", text],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "TZ": "UTC"},
        )
        assert f"Next elapse: {moment.astimezone(UTC):%a %Y-%m-%d %H:%M:%S} UTC" in said.stdout
    return moment


def exec_start(service: configparser.ConfigParser) -> list[str]:
    return shlex.split(service["Service"]["ExecStart"])


def venv_upgrader() -> str:
    return str(Path(sys.executable).absolute().parent / "upgrader")


def test_schedule_runs_the_upgrade_in_the_next_weekly_window(tmp_path, config):
    out = tmp_path / "units"
    before = datetime.now(UTC)
    result = upgrader("schedule", "3.6.0", "--config", str(config), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "upgrader-production-3.6.service",
        "upgrader-production-3.6.timer",
    ]
    service, timer = scheduled(out, "upgrader-production-3.6")
    start = on_calendar(timer)
    assert timer["Timer"]["OnCalendar"].endswith(" Europe/Berlin")
    assert (f"{start:%a %H:%M:%S}", start.tzinfo.key) == ("Sat 01:00:00", "Europe/Berlin")
    assert before < start <= before + timedelta(days=7, hours=1)  # 7 days, or a DST hour more
    end = (start.astimezone(UTC) + timedelta(hours=4)).astimezone(start.tzinfo)
    assert exec_start(service) == [
        venv_upgrader(),
        "run",
        "3.6",
        "--yes",
        "--config",
        str(config),
        "--window",
        f"{start.isoformat()}/{end.isoformat()}",
    ]
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["TimeoutStartSec"] == str(4 * 3600 + UNDO_MARGIN)
    assert service["Service"]["KillMode"] == "mixed"
    assert int(service["Service"]["TimeoutStopSec"]) >= 600
    assert timer["Timer"]["AccuracySec"] == "1s"
    assert timer["Timer"]["Persistent"] == "false"
    assert timer["Timer"]["Unit"] == "upgrader-production-3.6.service"
    for path in out.iterdir():
        text = path.read_text()
        assert "systemctl enable --now upgrader-production-3.6.timer" in text
        assert "weekly Sat 01:00 Europe/Berlin, 4h" in text
        assert SECRET not in text and "never-in" not in text
    assert SECRET not in result.stdout + result.stderr
    assert "systemctl enable --now upgrader-production-3.6.timer" in result.stdout


def paused_run(config: Path, run_id: str, environment: str, target: str, how: EventType) -> None:
    journal = Journal.create(config.parent / "runs" / run_id, run_id)
    journal.record(
        EventType.RUN_STARTED,
        run_id=run_id,
        environment=environment,
        target=target,
        fingerprint="f",
        identity="i",
        plan={"steps": []},
        dry_run=False,
    )
    journal.record(how, reason="the window closed", next_step="node-upgrade")


def test_a_paused_run_is_resumed_in_an_ad_hoc_window(tmp_path, config):
    paused_run(config, "staging-20261101T010000-aaaa", "staging", "3.6", EventType.RUN_FAILED)
    paused_run(config, "staging-20261102T010000-bbbb", "staging", "3.6", EventType.RUN_PAUSED)
    paused_run(config, "production-20261103T010000-cccc", "production", "3.6", EventType.RUN_PAUSED)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    window = f"{start.astimezone(ZoneInfo('Asia/Kolkata')).isoformat()}+1h30m"
    out = tmp_path / "units"
    result = upgrader(
        "schedule",
        "3.6",
        "--stage",
        "--config",
        str(config),
        "--output",
        str(out),
        "--window",
        window,
    )
    assert result.returncode == 0, result.stderr
    service, timer = scheduled(out, "upgrader-staging-3.6")
    # a bare offset (+05:30) has no zone name: the timer says the same instant in UTC
    assert timer["Timer"]["OnCalendar"].endswith(" UTC")
    assert on_calendar(timer) == start
    command = exec_start(service)
    assert command[:6] == [
        venv_upgrader(),
        "resume",
        "staging-20261102T010000-bbbb",
        "--yes",
        "--stage",
        "--config",
    ]
    start_text, end_text = command[command.index("--window") + 1].split("/")
    assert datetime.fromisoformat(start_text) == start
    assert datetime.fromisoformat(end_text) - start == timedelta(minutes=90)
    assert service["Service"]["TimeoutStartSec"] == str(90 * 60 + UNDO_MARGIN)
    assert "resumes the paused run staging-20261102T010000-bbbb" in result.stdout


def test_refusals(tmp_path, config):
    out = str(tmp_path / "units")
    cases = [
        # staging has only a dated window that has ended: refused by the window
        (["3.6", "--stage"], 3, "no maintenance window of staging opens after now"),
        (["3.9"], 2, "unknown target version '3.9'"),
        (["zfs"], 2, "unknown target 'zfs'"),
        (["3.6", "--window", "next saturday"], 2, "expected now+DURATION"),
        (["3.6", "--window", "now+2h"], 2, "is open already"),
    ]
    for args, code, message in cases:
        result = upgrader("schedule", *args, "--config", str(config), "--output", out)
        assert result.returncode == code, (args, result)
        assert result.stderr.startswith("error: ") and message in result.stderr, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "units").exists()


def test_no_windows_at_all_is_refused_by_the_window(tmp_path):
    path = tmp_path / "upgrader.yml"
    path.write_text(
        "\n".join(line for line in SITE.splitlines() if "windows" not in line and "{" not in line)
        + "\n"
    )
    result = upgrader("schedule", "3.6", "--config", str(path), "--output", str(tmp_path))
    assert result.returncode == 3, result
    assert "production has no maintenance windows configured: nothing to schedule" in (
        result.stderr
    )
    assert "--window START/END" in result.stderr and result.stderr.count("\n") == 1
