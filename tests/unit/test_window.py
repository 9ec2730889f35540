"""Window arithmetic: weekly windows across DST changes, midnight and the week's end, dated
windows, what is open now, what opens next, what still fits, and ``--window`` specs."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from upgrader.compat import UTC
from upgrader.text import parse_duration
from upgrader.windows.window import (
    Window,
    current,
    fits,
    format_duration,
    next_opening,
    occurrences,
    parse_spec,
    window_from_dict,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def weekly(at: str, duration: object = "4h", zone: str | None = "Europe/Berlin") -> dict:
    spec = {"weekly": at, "duration": duration}
    if zone:
        spec["timezone"] = zone
    return spec


def first(spec: dict, now: datetime) -> Window:
    return occurrences([spec], now, 1)[0]


# ------------------------------------------------------------------ DST changes
# 2026: Europe/Berlin springs forward on Sun 29 March (02:00 CET -> 03:00 CEST) and falls
# back on Sun 25 October (03:00 CEST -> 02:00 CET).
def test_a_start_in_the_spring_forward_gap_opens_when_the_gap_ends():
    found = occurrences([weekly("Sun 02:30")], utc(2026, 3, 20), 3)
    assert [w.start.astimezone(UTC) for w in found] == [
        utc(2026, 3, 22, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, the first instant after
        utc(2026, 4, 5, 0, 30),  # 02:30 CEST
    ]
    gap_day = found[1]
    assert (gap_day.start.hour, gap_day.start.minute) == (3, 0)
    assert gap_day.start.tzname() == "CEST"
    assert gap_day.end.astimezone(UTC) == utc(2026, 3, 29, 5, 0)


def test_a_start_in_the_repeated_fall_back_hour_takes_the_first_occurrence():
    window = first(weekly("Sun 02:30"), utc(2026, 10, 20))
    assert window.start.astimezone(UTC) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not CET
    assert window.start.tzname() == "CEST"
    assert window.end.astimezone(UTC) == utc(2026, 10, 25, 4, 30)  # 05:30 CET


@pytest.mark.parametrize(
    ("day", "start_utc", "end_wall"),
    [
        (utc(2026, 3, 28), utc(2026, 3, 29, 0, 0), "06:00 CEST"),  # an hour lost: ends at 06:00
        (utc(2026, 10, 24), utc(2026, 10, 24, 23, 0), "04:00 CET"),  # an hour gained: 04:00
    ],
)
def test_a_four_hour_window_over_the_change_lasts_four_real_hours(day, start_utc, end_wall):
    window = first(weekly("Sun 01:00"), day)
    assert window.start.astimezone(UTC) == start_utc
    assert f"{window.start:%H:%M}" == "01:00"
    assert f"{window.end:%H:%M %Z}" == end_wall
    assert window.end.astimezone(UTC) - window.start.astimezone(UTC) == timedelta(hours=4)
    assert window.seconds == 4 * 3600


def test_a_gap_elsewhere_new_york_spring_forward():
    window = first(weekly("Sun 02:15", "1h", "America/New_York"), utc(2026, 3, 7))
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2026-03-08 03:00 EDT"
    assert window.end.astimezone(UTC) == utc(2026, 3, 8, 8, 0)


def test_a_weekly_window_without_a_timezone_is_in_utc():
    window = first(weekly("Sat 01:00", 5400, zone=None), utc(2026, 6, 1))
    assert window.start == utc(2026, 6, 6, 1, 0)
    assert window.end == utc(2026, 6, 6, 2, 30)
    assert window.source == "weekly Sat 01:00 UTC, 1h30m"
    assert first(weekly("Sat 01:00", "4h"), utc(2026, 6, 1)).source == (
        "weekly Sat 01:00 Europe/Berlin, 4h"
    )


# ------------------------------------------------------- midnight, the week's end
def test_a_window_over_midnight_is_open_after_midnight():
    spec = weekly("Fri 22:00", "4h", zone=None)
    now = utc(2026, 6, 6, 1, 59)  # Saturday
    window = current([spec], now)
    assert window is not None
    assert (window.start, window.end) == (utc(2026, 6, 5, 22, 0), utc(2026, 6, 6, 2, 0))
    assert occurrences([spec], now, 1) == [window]
    assert current([spec], utc(2026, 6, 6, 2, 0)) is None  # the end is not inside


def test_a_window_over_the_week_end_opens_sunday_and_closes_monday():
    spec = weekly("Sun 23:30", "2h", zone=None)
    monday = utc(2026, 6, 8, 0, 30)
    window = current([spec], monday)
    assert window is not None
    assert (window.start, window.end) == (utc(2026, 6, 7, 23, 30), utc(2026, 6, 8, 1, 30))
    assert window.remaining(monday) == 3600
    assert next_opening([spec], monday) == Window(
        utc(2026, 6, 14, 23, 30), utc(2026, 6, 15, 1, 30), window.source
    )


# ---------------------------------------------------------------- dated windows
DATED_PAST = {"start": "2024-06-01T01:00:00+02:00", "end": "2024-06-01T05:00:00+02:00"}
DATED = {"start": "2026-06-03T01:00:00+02:00", "end": "2026-06-03T05:00:00+02:00"}


def test_dated_and_weekly_windows_come_together_sorted_and_past_dated_ones_dropped():
    specs = [weekly("Sat 01:00", "4h", zone=None), DATED_PAST, DATED]
    found = occurrences(specs, utc(2026, 6, 1), 3)
    assert [w.start.astimezone(UTC) for w in found] == [
        utc(2026, 6, 2, 23, 0),
        utc(2026, 6, 6, 1, 0),
        utc(2026, 6, 13, 1, 0),
    ]
    assert found[0].source == "2026-06-03T01:00:00+02:00 to 2026-06-03T05:00:00+02:00"
    assert f"{found[0].start:%H:%M%z}" == "01:00+0200"  # kept in its own offset
    assert occurrences([DATED_PAST], utc(2026, 6, 1)) == []
    assert next_opening([DATED_PAST], utc(2026, 6, 1)) is None


def test_the_open_window_comes_first_and_count_limits():
    specs = [DATED, weekly("Wed 02:00", "30m", zone=None)]
    now = utc(2026, 6, 3, 0, 0)  # 02:00+02:00, inside DATED
    found = occurrences(specs, now, 4)
    assert len(found) == 4
    assert found[0].source.startswith("2026-06-03T01:00")
    assert found[0].contains(now)
    assert [w.start for w in found[1:]] == [
        utc(2026, 6, 3, 2, 0),
        utc(2026, 6, 10, 2, 0),
        utc(2026, 6, 17, 2, 0),
    ]


def test_overlapping_windows_stay_separate_and_current_is_the_one_closing_last():
    short = {"start": "2026-06-03T00:00:00+00:00", "end": "2026-06-03T02:00:00+00:00"}
    long = {"start": "2026-06-03T01:00:00+00:00", "end": "2026-06-03T06:00:00+00:00"}
    now = utc(2026, 6, 3, 1, 30)
    assert len(occurrences([short, long], now)) == 2
    open_now = current([short, long], now)
    assert open_now is not None
    assert open_now.end == utc(2026, 6, 3, 6, 0)


def test_next_opening_is_strictly_after_now():
    spec = {"start": "2026-06-03T01:00:00+00:00", "end": "2026-06-03T02:00:00+00:00"}
    at_start = utc(2026, 6, 3, 1, 0)
    assert current([spec], at_start) is not None
    assert next_opening([spec], at_start) is None
    assert next_opening([spec], at_start - timedelta(seconds=1)) == current([spec], at_start)


def test_nothing_configured():
    now = utc(2026, 6, 1)
    assert occurrences([], now) == []
    assert current([], now) is None
    assert next_opening([], now) is None


# ------------------------------------------------------------ contains and fits
WINDOW = Window(
    datetime(2026, 6, 6, 1, 0, tzinfo=BERLIN), datetime(2026, 6, 6, 5, 0, tzinfo=BERLIN), "test"
)


def test_contains_the_start_but_not_the_end():
    assert WINDOW.contains(utc(2026, 6, 5, 23, 0))
    assert not WINDOW.contains(utc(2026, 6, 5, 22, 59, 59))
    assert WINDOW.contains(utc(2026, 6, 6, 2, 59, 59))
    assert not WINDOW.contains(utc(2026, 6, 6, 3, 0))
    assert WINDOW.remaining(utc(2026, 6, 6, 2, 0)) == 3600
    assert WINDOW.remaining(utc(2026, 6, 6, 4, 0)) == 0


def test_fits_exactly_at_the_edge_and_not_one_second_more():
    now = utc(2026, 6, 6, 2, 0)  # an hour before the end
    assert fits(WINDOW, now, 3600)
    assert not fits(WINDOW, now, 3601)
    assert not fits(WINDOW, now, 3600.001)
    assert fits(WINDOW, now, 0)
    assert not fits(WINDOW, now, float("inf"))
    assert not fits(WINDOW, now, float("nan"))
    assert not fits(WINDOW, now, 1e18)


def test_comparisons_hold_in_the_repeated_hour():
    # 02:30 CET (fold=1) comes an hour after 02:30 CEST (fold=0); Python compares and
    # subtracts two times of the same zone by wall time and would call them equal.
    window = Window(
        datetime(2026, 10, 25, 1, 0, tzinfo=BERLIN),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),
        "fall back",
    )
    assert window.seconds == 2.5 * 3600
    assert window.contains(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN))
    assert window.remaining(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)) == 3600
    assert fits(window, datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN), 5400)
    assert not fits(window, datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN), 5401)


# -------------------------------------------------------------- --window specs
NOW = datetime(2026, 6, 6, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("now+2h", NOW, NOW + timedelta(hours=2)),
        ("now+90m", NOW, NOW + timedelta(minutes=90)),
        ("now+1h30m", NOW, NOW + timedelta(minutes=90)),
        ("NOW+45s", NOW, NOW + timedelta(seconds=45)),
        ("2026-06-06T13:00+02:00/2026-06-06T17:00+02:00", utc(2026, 6, 6, 11), utc(2026, 6, 6, 15)),
        ("2026-06-06T11:00Z/2026-06-06T12:00Z", utc(2026, 6, 6, 11), utc(2026, 6, 6, 12)),
        ("2026-06-06T13:00+02:00+4h", utc(2026, 6, 6, 11), utc(2026, 6, 6, 15)),
        ("2026-06-06T09:00:00+00:00+1h30m", utc(2026, 6, 6, 9), utc(2026, 6, 6, 10, 30)),
    ],
)
def test_good_window_specs(spec, start, end):
    window = parse_spec(spec, NOW)
    assert (window.start, window.end) == (start, end)
    assert window.source == f"ad hoc --window {spec}"


def test_start_plus_duration_keeps_the_start_offset():
    window = parse_spec("2026-06-06T13:00+02:00+4h", NOW)
    assert window.end.isoformat() == "2026-06-06T17:00:00+02:00"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "no end and no duration"),
        ("now", "no end and no duration"),
        ("now+", "needs a unit"),
        ("now+2", "needs a unit"),
        ("now+0m", "longer than 0"),
        ("now+2 hours", "is not a duration"),
        ("now+1.5h", "is not a duration"),
        ("tomorrow", "no end and no duration"),
        ("2026-06-06T13:00/2026-06-06T17:00", "has no UTC offset"),
        ("2026-06-06T13:00+02:00", "no end and no duration"),
        ("2026-06-06T13:00+0200", "no end and no duration"),  # not "+200 seconds"
        ("2026-06-06 13h/2026-06-06 17h", "is not an ISO 8601 time"),
        ("2026-06-06T17:00Z/2026-06-06T13:00Z", "its end is not after its start"),
        ("2026-06-06T08:00Z/2026-06-06T09:00Z", "ended at 2026-06-06T09:00:00+00:00"),
    ],
)
def test_bad_window_specs_give_one_line_naming_the_accepted_forms(spec, why):
    with pytest.raises(ValueError, match="--window") as info:
        parse_spec(spec, NOW)
    message = str(info.value)
    assert why in message
    assert "\n" not in message
    if "ended" not in message and "not after" not in message:
        assert "now+DURATION" in message and "START/END" in message
        assert "START+DURATION" in message


# ------------------------------------------------------ journal form, durations
def test_as_dict_and_back():
    window = first(weekly("Sun 01:00"), utc(2026, 3, 28))
    data = window.as_dict()
    assert data == {
        "start": "2026-03-29T01:00:00+01:00",
        "end": "2026-03-29T06:00:00+02:00",
        "source": "weekly Sun 01:00 Europe/Berlin, 4h",
    }
    back = window_from_dict(data)
    assert back == window
    assert back.seconds == 4 * 3600


@pytest.mark.parametrize(
    "data",
    [
        {"start": "2026-03-29T01:00:00+01:00", "end": "2026-03-29T06:00:00+02:00"},
        {"start": "2026-03-29T01:00:00", "end": "2026-03-29T06:00:00+02:00", "source": "x"},
        {"start": "yesterday", "end": "2026-03-29T06:00:00+02:00", "source": "x"},
    ],
)
def test_window_from_dict_refuses_what_as_dict_never_writes(data):
    with pytest.raises(ValueError):
        window_from_dict(data)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5400, 5400.0),
        (90.5, 90.5),
        ("4h", 14400.0),
        ("90m", 5400.0),
        ("1h30m", 5400.0),
        ("45s", 45.0),
        ("1h 30m", 5400.0),
    ],
)
def test_durations_take_the_config_grammar(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "4 hours", "1.5h", "h", True, -1, None])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (725, "12m5s"),
        (4320, "1h12m"),
        (4379, "1h12m"),
        (14400, "4h"),
        (3 * 86400 + 14 * 3600 + 21 * 60 + 7, "3d14h21m"),
        (-5, "0s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
