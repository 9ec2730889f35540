"""Pure: durations, instants and slugs, each read and written one way for the whole product.

A duration is written as the config reads it (``45s``, ``12m5s``, ``1h30m``), so what a pause
line or ``upgrader windows`` prints can be given back to ``--window now+...`` or a runbook var.
An instant is ISO 8601 to the minute with its UTC offset, the form ``--window START/END`` reads.
"""

from __future__ import annotations

import re
from datetime import datetime

# The config's duration grammar: hours, minutes, seconds, each optional, in that order.
DURATION = re.compile(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?")
DURATION_EXAMPLES = "90s, 5m or 1h30m"


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or text like ``4h``, ``90m``, ``1h30m``, ``45s``.

    Raises:
        ValueError: anything else, or a negative or infinite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):
            raise ValueError(f"{value!r} is not a duration of 0 or more")
        return float(value)
    text = str(value).strip()
    match = DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"'{value}' is not a duration like {DURATION_EXAMPLES}")
    hours, minutes, secs = (float(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def format_duration(seconds: float) -> str:
    """``45s``, ``12m5s``, ``1h12m``, ``3d14h21m``: rounded down, zero units left out, and
    seconds only below an hour (what a person reads in "closes in 1h12m")."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (0 if total >= 3600 else secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def format_instant(moment: datetime) -> str:
    """``2026-11-28T22:00+00:00``: ISO 8601 to the minute, with the moment's own offset."""
    return moment.isoformat(timespec="minutes")


def slug(text: str) -> str:
    """A file-name-safe form of a name: anything but letters, digits, ``.``, ``_`` and ``-``
    becomes ``_`` (a run of them one ``_``), so no name reaches outside its directory."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
