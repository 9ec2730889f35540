"""The pure parts of ``upgrader schedule``: ExecStart quoting, OnCalendar, which run to resume."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from upgrader.compat import UTC
from upgrader.windows.systemd import exec_line, on_calendar, resumable_run

BERLIN = ZoneInfo("Europe/Berlin")


def test_exec_line_quotes_what_systemd_would_split_or_expand():
    assert exec_line(["/opt/venv/bin/upgrader", "run", "3.6", "--config", "/etc/u/site.yml"]) == (
        "/opt/venv/bin/upgrader run 3.6 --config /etc/u/site.yml"
    )
    # a space splits words, % starts a specifier and $ a variable (systemd.service(5))
    assert exec_line(["/srv/my site/upgrader.yml"]) == '"/srv/my site/upgrader.yml"'
    assert exec_line(["/srv/100%/$HOME"]) == '"/srv/100%%/$$HOME"'
    assert exec_line(['a"b\\c']) == '"a\\"b\\\\c"'
    with pytest.raises(ValueError, match="line break"):
        exec_line(["/srv/a\nb"])


def test_on_calendar_names_the_zone_unless_the_wall_time_happens_twice():
    assert on_calendar(datetime(2026, 11, 28, 1, 0, tzinfo=BERLIN)) == (
        "2026-11-28 01:00:00 Europe/Berlin"
    )
    # 02:30 on the fall-back day happens twice: the first one, said in UTC
    assert on_calendar(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)) == "2026-10-25 00:30:00 UTC"
    assert on_calendar(datetime.fromisoformat("2026-06-01T01:00:00+02:00")) == (
        "2026-05-31 23:00:00 UTC"
    )
    # never before the window's start: a fraction of a second rounds up
    assert on_calendar(datetime(2026, 6, 1, 1, 0, 0, 1, tzinfo=UTC)) == "2026-06-01 01:00:01 UTC"


def row(
    run_id: str, status: str, *, env: str = "production", target: str = "3.6", dry_run: bool = False
) -> dict:
    return {
        "run_id": run_id,
        "environment": env,
        "target": target,
        "status": status,
        "dry_run": dry_run,
    }


def test_only_the_latest_real_run_of_that_target_and_environment_is_resumed():
    older = row("production-20261101T000000-aaaa", "paused")
    newer = row("production-20261102T000000-bbbb", "failed")
    others = [
        row("production-20261103T000000-cccc", "paused", target="nfs"),
        row("staging-20261104T000000-dddd", "paused", env="staging"),
        row("production-20261105T000000-eeee", "paused", dry_run=True),
        {"run_id": "production-20261106T000000-ffff", "status": "unreadable"},
    ]
    assert resumable_run([older, *others, newer], "production", "3.6") == (newer["run_id"], newer)
    done = row("production-20261107T000000-gggg", "succeeded")
    assert resumable_run([older, newer, done, *others], "production", "3.6") == (None, done)
    assert resumable_run(others, "production", "3.4") == (None, None)
