"""``upgrader windows`` through the real CLI: a site config in tmp_path, no cloud, no lab."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from upgrader.compat import UTC

SITE = """\
environments:
  staging:
    oned: http://s:2633/RPC2
    credentials: s.auth
    inventory: s.yml
  production:
    oned: http://p:2633/RPC2
    credentials: p.auth
    inventory: p.yml
    windows:
      - {{weekly: "Sat 01:00", duration: 4h, timezone: Europe/Berlin}}
      - {{weekly: "Sun 23:30", duration: 5400}}
      - {{start: "2024-06-01T01:00:00+02:00", end: "2024-06-01T05:00:00+02:00"}}
      - {{start: "{open_start}", end: "{open_end}"}}
"""


def upgrader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def site(tmp_path: Path) -> tuple[Path, datetime]:
    """A config whose production has a dated window open now that closes in 1h12m30s."""
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(hours=1, minutes=12, seconds=30)
    path = tmp_path / "upgrader.yml"
    path.write_text(
        SITE.format(open_start=(now - timedelta(hours=1)).isoformat(), open_end=end.isoformat())
    )
    return path, end


def test_windows_lists_the_next_five_in_their_zone_and_in_utc(tmp_path):
    config, end = site(tmp_path)
    result = upgrader("windows", "--config", str(config))
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.startswith("maintenance windows of production (now ")
    assert len(lines) == 5
    # The open dated window with what is left of it (first, unless a weekly one is open
    # too and opened earlier); the past one nowhere.
    dated = [line for line in lines if line.endswith(f" to {end.isoformat()}]")]
    assert len(dated) == 1 and dated[0] in lines[:2]
    assert "open now, closes in 1h12m [" in dated[0]
    assert f"{end:%H:%M} UTC" in dated[0]
    assert "2024-06-01" not in result.stdout
    berlin = [line for line in lines if "[weekly Sat 01:00 Europe/Berlin, 4h]" in line]
    sunday = [line for line in lines if "[weekly Sun 23:30 UTC, 1h30m]" in line]
    assert len(berlin) == 2 and len(sunday) == 2
    for line in berlin:
        # Sat 2026-11-28 01:00 CET - 05:00 CET (4h) = 2026-11-28 00:00 - 04:00 UTC, opens in ...
        match = re.search(
            r"Sat (\S+) 01:00 (CES?T) - 05:00 \2 \(4h\) = (\S+) (\S+) - (\S+) UTC, "
            r"(opens in|open now, closes in) \w+",
            line,
        )
        assert match, line
        local = datetime.fromisoformat(f"{match[1]}T01:00").replace(
            tzinfo=ZoneInfo("Europe/Berlin")
        )
        assert local.tzname() == match[2]
        assert f"{local.astimezone(UTC):%Y-%m-%d %H:%M}" == f"{match[3]} {match[4]}"
    for line in sunday:  # over the week's end: closes on Monday
        assert re.search(r"Sun \S+ 23:30 UTC - Mon \S+ 01:00 UTC \(1h30m\)", line), line
    starts = [re.search(r"= (\S+ \S+) ", line)[1] for line in lines]
    assert starts == sorted(starts)


def test_windows_json_and_count(tmp_path):
    config, end = site(tmp_path)
    result = upgrader("windows", "--config", str(config), "--json", "--count", "2")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["environment"] == "production"
    assert len(doc["windows"]) == 2
    (dated,) = [w for w in doc["windows"] if w["end"] == end.isoformat()]
    (weekly,) = [w for w in doc["windows"] if w is not dated]
    assert dated["open"] is True and dated["opens_in"] is None
    assert datetime.fromisoformat(dated["end_utc"]) == end
    assert 4300 < dated["closes_in"] <= 4350
    assert dated["seconds"] == 2 * 3600 + 12 * 60 + 30
    assert weekly["source"] in ("weekly Sat 01:00 Europe/Berlin, 4h", "weekly Sun 23:30 UTC, 1h30m")
    assert weekly["seconds"] in (4 * 3600, 5400)
    assert (weekly["closes_in"] or weekly["opens_in"]) > 0


def test_no_windows_configured_is_one_line_and_success(tmp_path):
    config, _ = site(tmp_path)
    result = upgrader("windows", "--stage", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert "staging has no maintenance windows configured" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    config, _ = site(tmp_path)
    for args in (
        ["--config", str(tmp_path / "missing.yml")],
        ["--config", str(config), "--count", "0"],
    ):
        result = upgrader("windows", *args)
        assert result.returncode == 2, result
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
