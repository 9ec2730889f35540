"""The versions upgrader knows and the hops between them: 3.2 -> 3.4 -> 3.6.

Pure: detection itself lives in the OpenNebula client (``OneClient.detect_version``).
"""

from __future__ import annotations

from upgrader.errors import UsageError

SERIES = ("3.2", "3.4", "3.6")
RELEASES = {"3.2": "3.2.1", "3.4": "3.4.1", "3.6": "3.6.0"}  # the packages each hop installs


def series_of(text: str) -> str:
    """``3.6``, ``3.6.0`` or ``v3.6`` -> ``3.6``; anything else is refused."""
    cleaned = text.strip().lstrip("vV")
    parts = cleaned.split(".")
    series = ".".join(parts[:2])
    if (
        len(parts) < 2
        or series not in SERIES
        or (len(parts) == 3 and cleaned not in RELEASES.values())
        or len(parts) > 3
    ):
        raise UsageError(
            f"unknown target version '{text}': upgrader knows "
            f"{', '.join(SERIES)} (releases {', '.join(RELEASES.values())})"
        )
    return series


def hop_path(current: str, target: str) -> tuple[tuple[str, str], ...]:
    """The hops from ``current`` to ``target``: refuses downgrades and 'already there'."""
    cur, tgt = series_of(current), series_of(target)
    if cur == tgt:
        raise UsageError(
            f"the cloud already runs OpenNebula {cur}: nothing to upgrade",
            hint="upgrader plan shows the cloud's state",
        )
    if SERIES.index(tgt) < SERIES.index(cur):
        raise UsageError(
            f"OpenNebula {cur} -> {tgt} is a downgrade: upgrader only upgrades",
            hint="to go back, restore the backup taken before the upgrade",
        )
    i, j = SERIES.index(cur), SERIES.index(tgt)
    return tuple((SERIES[k], SERIES[k + 1]) for k in range(i, j))
