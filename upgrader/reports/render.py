"""Render a ``Report`` as Markdown, a self-contained HTML page, or JSON.

Jinja2 with ``StrictUndefined`` (a template naming a field the model lacks fails in the tests,
not on the night). HTML is autoescaped: VM and host names, gate evidence and error text come
from the cloud and may hold markup. Markdown is not HTML-escaped (it is read as text), but
table cells lose their pipes and newlines so a name cannot break the table, and a ``<`` in
a cell is backslash-escaped so a Markdown renderer shows it rather than parsing a tag.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2

from upgrader.reports import chart
from upgrader.reports.data import Report, hms, parse_ts

FORMATS = ("md", "html", "json")
SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}


def _cell(value: Any) -> str:
    """A value for a Markdown table cell: one line, no column separator, and ``<`` escaped
    the CommonMark way (``\\<``), so a VM named like a tag stays text when rendered."""
    text = "" if value is None else str(value)
    return " ".join(text.replace("|", "\\|").replace("<", "\\<").split())


def _size(n: int | None) -> str:
    if n is None:
        return "not recorded"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _when(ts: str | None) -> str:
    """A timestamp to the second, as people read it: ``2026-11-24 09:49:15 UTC``."""
    moment = parse_ts(ts)
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _details(value: Any) -> str:
    """Gate evidence details as ``key=value`` pairs (nested values as compact JSON)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    return ", ".join(
        f"{k}={v if isinstance(v, str | int | float) else json.dumps(v, default=str)}"
        for k, v in value.items()
    )


def environment(autoescape: bool) -> jinja2.Environment:
    """The templates' environment: autoescape on for HTML, off for Markdown."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("upgrader.reports", "templates"),
        autoescape=autoescape,  # noqa: S701 - off only for Markdown, which is not HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(hms=hms, cell=_cell, size=_size, when=_when, details=_details)
    return env


def render(report: Report, fmt: str) -> str:
    """``report`` in ``fmt`` (md, html or json)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=1, default=str) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    name = "run" if report.kind == "run" else "dryrun"
    env = environment(autoescape=fmt == "html")
    template = env.get_template(f"{name}.{fmt}.j2")
    return template.render(r=report, chart=chart.chart(report) if fmt == "html" else None)


def format_of(path: str) -> str | None:
    """The format a report file's suffix asks for (None: a suffix no format has)."""
    lowered = path.lower()
    return next((fmt for suffix, fmt in SUFFIXES.items() if lowered.endswith(suffix)), None)
