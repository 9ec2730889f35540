"""Maintenance windows as arithmetic: when they open, when they close, what still fits.

Pure: no I/O and no clock. Every function takes ``now`` (an aware datetime) from its caller,
so the same question always gets the same answer.

The site config declares windows per environment (``config/site.py`` validates them and keeps
them as raw mappings), in two kinds:

- weekly ``{weekly: "Sat 01:00", duration: 4h, timezone: Europe/Berlin}``: opens at that
  *local wall time* of the zone (UTC when no timezone is given) on every such weekday, and
  stays open for ``duration`` of *elapsed* time, so a 4 h window across a DST change is
  4 real hours (its wall-clock end moves by the hour gained or lost). A start time that does
  not exist that day (the spring-forward gap) opens at the first instant after the gap; an
  ambiguous one (the repeated hour of fall-back) opens at its first occurrence (fold=0).
  Windows may run over midnight and over the week's end (``Sun 23:30`` for 2 h closes on
  Monday at 01:30).
- dated ``{start: "2024-06-01T01:00:00+02:00", end: "2024-06-01T05:00:00+02:00"}``: once.

Windows of different specs are never merged, even when they overlap or touch: each keeps
its own source, which is what the journal and the reports name. ``current`` picks the one
that closes last, so overlapping windows never make a run stop earlier than it must.

Every comparison and every subtraction goes through UTC: Python compares and subtracts two
datetimes of the *same* zone by wall time, which is wrong across a DST change.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from upgrader.compat import UTC
from upgrader.text import format_duration, parse_duration

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_ZONE = "UTC"
_WEEKLY = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([01]\d|2[0-3]):([0-5]\d)")
_FORMS = (
    "now+DURATION (now+2h, now+90m, now+1h30m), START/END or START+DURATION "
    "(ISO 8601 times with a UTC offset, e.g. 2024-06-01T01:00+02:00/2024-06-01T05:00+02:00 "
    "or 2024-06-01T01:00+02:00+4h)"
)


@dataclass(frozen=True)
class Window:
    """One opening of a maintenance window: ``[start, end)``, both aware.

    ``start`` and ``end`` carry the window's own zone (a weekly window's ``ZoneInfo``, a dated
    window's offset), for display; ``source`` says how it was declared, e.g. ``weekly Sat
    01:00 Europe/Berlin, 4h``, ``2024-06-01T01:00:00+02:00 to 2024-06-01T05:00:00+02:00`` or
    ``ad hoc --window now+2h``.
    """

    start: datetime
    end: datetime
    source: str

    def contains(self, now: datetime) -> bool:
        """Whether the window is open at ``now``: ``start <= now < end``."""
        return _utc(self.start) <= _utc(now) < _utc(self.end)

    def remaining(self, now: datetime) -> float:
        """Seconds from ``now`` to the window's end; 0 once it has ended."""
        return max(0.0, (_utc(self.end) - _utc(now)).total_seconds())

    @property
    def seconds(self) -> float:
        """The window's length in elapsed seconds."""
        return (_utc(self.end) - _utc(self.start)).total_seconds()

    def as_dict(self) -> dict[str, str]:
        """``{"start", "end", "source"}``, ISO 8601 with offsets: for the journal and JSON."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}


def window_from_dict(d: Mapping[str, str]) -> Window:
    """The window ``as_dict`` wrote (a zone name comes back as its offset at that time).

    Raises:
        ValueError: a key is missing or a time is not ISO 8601 with an offset.
    """
    try:
        start, end, source = d["start"], d["end"], d["source"]
    except (KeyError, TypeError):
        raise ValueError(f"a window needs start, end and source, got {d!r}") from None
    return Window(_iso(str(start)), _iso(str(end)), str(source))


# ------------------------------------------------------------- the questions
def occurrences(specs: Sequence[Mapping[str, Any]], now: datetime, count: int = 5) -> list[Window]:
    """The next ``count`` windows that have not ended at ``now``, sorted by start (so one
    open at ``now`` comes first), from weekly and dated specs together. Dated windows that
    have ended are dropped; overlapping windows of different specs stay separate."""
    found: list[Window] = []
    for spec in specs:
        for i, window in enumerate(_not_ended(spec, now)):
            if i == count:
                break
            found.append(window)
    return sorted(found, key=_order)[:count]


def current(specs: Sequence[Mapping[str, Any]], now: datetime) -> Window | None:
    """The window open at ``now`` (the one that closes last, if several are); None if none."""
    open_now = [w for spec in specs for w in _open_at(spec, now)]
    return max(open_now, key=lambda w: (_utc(w.end), _utc(w.start)), default=None)


def next_opening(specs: Sequence[Mapping[str, Any]], now: datetime) -> Window | None:
    """The first window that opens after ``now`` (strictly); None if no window ever will."""
    later = (
        next((w for w in _not_ended(spec, now) if _utc(w.start) > _utc(now)), None)
        for spec in specs
    )
    return min((w for w in later if w is not None), key=_order, default=None)


def fits(window: Window, now: datetime, seconds: float) -> bool:
    """Whether work of ``seconds`` started at ``now`` ends by the window's end
    (``now + seconds <= end``: ending exactly at the end fits). It does not ask whether the
    window is open at ``now``: that is ``window.contains(now)``."""
    try:
        return _utc(now) + timedelta(seconds=seconds) <= _utc(window.end)
    except (OverflowError, ValueError):  # inf, nan, or beyond year 9999: nothing fits that
        return False


def parse_spec(text: str, now: datetime) -> Window:
    """The ad-hoc window of ``--window SPEC``: ``now+2h``, ``START/END`` or ``START+4h``.

    Durations take the config's grammar with a unit (``90m``, ``1h30m``, ``45s``; a bare
    number is refused because ``START+0200`` would read as an offset or as seconds).

    Raises:
        ValueError: one line naming the accepted forms; also for a window that has ended.
    """
    spec = text.strip()
    try:
        if spec.lower().startswith("now+"):
            start = now
            end = (_utc(now) + timedelta(seconds=_spec_duration(spec[4:]))).astimezone(now.tzinfo)
        elif "/" in spec:
            first, _, second = spec.partition("/")
            start, end = _iso(first), _iso(second)
        else:
            head, plus, tail = spec.rpartition("+")
            if not plus or not re.search(r"[hms]", tail):
                raise ValueError("no end and no duration")
            start = _iso(head)
            end = _utc(start) + timedelta(seconds=_spec_duration(tail))
            end = end.astimezone(start.tzinfo)
    except ValueError as exc:
        raise ValueError(f"bad --window '{text}' ({exc}): expected {_FORMS}") from None
    if _utc(end) <= _utc(start):
        raise ValueError(f"bad --window '{text}': its end is not after its start")
    if _utc(end) <= _utc(now):
        raise ValueError(
            f"--window '{text}' ended at {end.isoformat()}: give a window that is "
            "still to come or open"
        )
    return Window(start, end, f"ad hoc --window {spec}")


def zone_name(moment: datetime) -> str | None:
    """The IANA name of ``moment``'s zone (``UTC`` for offset 0), None for a bare offset."""
    zone = moment.tzinfo
    if isinstance(zone, zoneinfo.ZoneInfo):
        return zone.key
    return "UTC" if moment.utcoffset() == timedelta(0) else None


# ------------------------------------------------------------- the arithmetic
def _not_ended(spec: Mapping[str, Any], now: datetime) -> Iterator[Window]:
    """The spec's windows with ``end > now``, in order of start (endless for weekly)."""
    if "weekly" not in spec:
        window = _dated(spec)
        if _utc(window.end) > _utc(now):
            yield window
        return
    day, at, zone, seconds, source = _weekly(spec)
    length = timedelta(seconds=seconds)
    # Start early enough that a window opened before now and still open is seen.
    first = (_utc(now) - length).astimezone(zone).date() - timedelta(days=1)
    first += timedelta(days=(day - first.weekday()) % 7)
    for week in itertools.count():
        start = _local_start(first + timedelta(weeks=week), at, zone)
        end = (_utc(start) + length).astimezone(zone)
        if _utc(end) > _utc(now):
            yield Window(start, end, source)


def _open_at(spec: Mapping[str, Any], now: datetime) -> Iterator[Window]:
    for window in _not_ended(spec, now):
        if _utc(window.start) > _utc(now):
            return
        yield window


def _weekly(spec: Mapping[str, Any]) -> tuple[int, time, tzinfo, float, str]:
    """(weekday, local start time, zone, elapsed seconds, source) of a weekly spec."""
    match = _WEEKLY.fullmatch(str(spec["weekly"]).strip())
    if match is None:
        raise ValueError(f"weekly '{spec['weekly']}' is not like 'Sat 01:00'")
    name = str(spec.get("timezone") or DEFAULT_ZONE)
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone '{name}'") from None
    seconds = parse_duration(spec.get("duration"))
    if seconds <= 0:
        raise ValueError(f"weekly '{spec['weekly']}' has no duration")
    given = spec.get("duration")
    length = given.strip() if isinstance(given, str) else format_duration(seconds)
    source = f"weekly {match.group(0)} {name}, {length}"
    at = time(int(match.group(2)), int(match.group(3)))
    return WEEKDAYS.index(match.group(1)), at, zone, seconds, source


def _dated(spec: Mapping[str, Any]) -> Window:
    start, end = _iso(str(spec["start"])), _iso(str(spec["end"]))
    if _utc(end) <= _utc(start):
        raise ValueError(f"dated window {spec['start']} to {spec['end']} ends before it starts")
    return Window(start, end, f"{spec['start']} to {spec['end']}")


def _local_start(day: date, at: time, zone: tzinfo) -> datetime:
    """``day`` at wall time ``at`` in ``zone``: fold=0 when it happens twice, the end of the
    gap when it does not happen at all."""
    wall = datetime.combine(day, at, tzinfo=zone)  # fold=0: the first of two
    if _utc(wall).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return wall
    # In a gap: fold=0 reads the wall time with the offset from before the change, so it
    # lands after the gap, fold=1 with the one after, before it. The change lies between.
    before, after = _utc(wall.replace(fold=1)), _utc(wall)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(zone).utcoffset() == after.astimezone(zone).utcoffset():
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0).astimezone(zone)


def _spec_duration(text: str) -> float:
    if not re.search(r"[hms]\s*$", text.strip()):
        raise ValueError(f"'{text}' needs a unit, like 90m or 2h")
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("the duration must be longer than 0")
    return seconds


def _iso(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"'{text}' has no UTC offset (add one, like +02:00)")
    return moment


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: window times must be aware")
    return moment.astimezone(UTC)


def _order(window: Window) -> tuple[datetime, datetime]:
    return _utc(window.start), _utc(window.end)
