"""The timeline chart's geometry: rows, bars, marks and ticks in SVG user units (pure).

The HTML template only draws what this computes, so the arithmetic is tested in Python and
the page needs no script. A run's chart has one row per step (a bar per attempt, its gates
as marks on it) and rows for the undo actions and pauses; a dry run's or plan's chart has a
bar per step at its expected time. The maintenance window, when there is one, is a band.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from upgrader.reports.data import Report, hms, parse_ts

WIDTH = 1000
LABEL = 300  # the left column with the row names
ROW = 22
TOP = 28  # room for the tick labels
RIGHT = 40  # room for the last tick label


def chart(report: Report) -> dict[str, Any] | None:
    """The chart of ``report`` (None when nothing has a time: a plan with no window or start)."""
    rows = _planned_rows(report) if report.kind != "run" else _run_rows(report)
    moments = [m for row in rows for item in row["items"] for m in (item["t0"], item["t1"])]
    window = report.window or {}
    band = [parse_ts(window.get("start")), parse_ts(window.get("end"))]
    moments += [m for m in band if m is not None]
    moments = [m for m in moments if m is not None]
    if not rows or not moments:
        return None
    t0, t1 = min(moments), max(moments)
    span = max((t1 - t0).total_seconds(), 1.0)
    scale = (WIDTH - LABEL - RIGHT) / span

    def x(moment: datetime) -> float:
        return round(LABEL + (moment - t0).total_seconds() * scale, 1)

    out_rows = []
    for n, row in enumerate(rows):
        y = TOP + n * ROW
        items = []
        for item in row["items"]:
            left = x(item["t0"])
            right = x(item["t1"] or t1)
            items.append(
                {
                    **item,
                    "x": left,
                    "w": round(max(right - left, 2.0), 1),
                    "y": y + 3,
                    "h": ROW - 6,
                    "t0": None,
                    "t1": None,
                }
            )
        out_rows.append({"label": row["label"], "y": y, "ty": y + ROW - 7, "items": items})
    height = TOP + len(rows) * ROW + 10
    ticks = [
        {"x": x(t0 + timedelta(seconds=span * i / 4)), "label": hms(span * i / 4)} for i in range(5)
    ]
    win = None
    if band[0] is not None and band[1] is not None:
        win = {"x": x(band[0]), "w": round(x(band[1]) - x(band[0]), 1), "h": height - TOP}
    return {
        "width": WIDTH,
        "height": height,
        "rows": out_rows,
        "ticks": ticks,
        "window": win,
        "label_x": LABEL - 6,
        "top": TOP,
        "origin": t0.isoformat(),
    }


def _item(
    kind: str, cls: str, t0: datetime | None, t1: datetime | None, title: str
) -> dict[str, Any]:
    return {"kind": kind, "cls": cls, "t0": t0, "t1": t1, "title": title}


def _run_rows(report: Report) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}

    def row(label: str) -> dict[str, Any]:
        return rows.setdefault(label, {"label": label, "items": []})

    for entry in report.timeline:
        start, end = parse_ts(entry.start), parse_ts(entry.end)
        title = f"{entry.name}: {entry.status}, {hms(entry.seconds)}" + (
            f" ({entry.detail})" if entry.detail else ""
        )
        if entry.kind == "step":
            bar = _item("bar", f"bar step {entry.status}", start, end, title)
            row(entry.step or entry.name)["items"].append(bar)
        elif entry.kind == "gate":
            mark = _item("mark", f"mark gate {entry.status}", end, end, title)
            row(entry.step or "gates")["items"].append(mark)
        elif entry.kind == "undo":
            row(f"undo {entry.name}")["items"].append(
                _item("bar", f"bar undo {entry.status}", start, end, title)
            )
        elif entry.kind == "pause":
            row("paused")["items"].append(_item("bar", "bar pause", start, end, title))
    return list(rows.values())


def _planned_rows(report: Report) -> list[dict[str, Any]]:
    out = []
    for step in report.steps:
        start, end = parse_ts(step.expected_start), parse_ts(step.expected_end)
        if start is None:
            continue
        fits = "" if step.in_window is not False else " outside"
        title = f"{step.id}: about {hms(step.estimate)}" + (
            ", ends outside the window" if fits else ""
        )
        out.append(
            {
                "label": step.id,
                "items": [_item("bar", f"bar step planned{fits}", start, end, title)],
            }
        )
    return out
