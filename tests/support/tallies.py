"""Tables the test run prints at its end (issue 9: the fault matrix, the bad-input corpus and
the crash trials are printed with pass/fail per row, in the same run that checks them).

A test adds its row with ``record_property(TABLE, {column: value, ...})``. The row travels in
the test's report, so it reaches the xdist controller too; the controller prints one table per
TABLE name, rows sorted by their first column, with the test's outcome as the last column and a
tally line under it. Register a headline for a table in ``HEADLINES``.
"""

from __future__ import annotations

from typing import Any

import pytest

# table -> headline; {ok} and {total} are filled in.
HEADLINES = {
    "badinput": "bad input: {ok}/{total} malformed inputs gave the documented exit code, one line "
    "on stderr, no traceback, nothing changed",
    "fault_matrix": "fault matrix: {ok}/{total} faults ended as the table says",
    "crash_trial": "crash and resume: {ok}/{total} trials resumed with every invariant held",
}


def _rows(reporter: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    tables: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in reporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name in HEADLINES and isinstance(value, dict):
                    tables.setdefault(name, []).append((outcome, value))
    return tables


def _table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    columns = [*dict.fromkeys(key for _, row in rows for key in row), "result"]
    cells = [[str(row.get(c, "")) for c in columns[:-1]] + [outcome] for outcome, row in rows]
    cells.sort()
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    widths = [min(w, 70) for w in widths]

    def line(values: list[str]) -> str:
        padded = (v[:70].ljust(w) for v, w in zip(values, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    return [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(r) for r in cells
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, rows in sorted(_rows(terminalreporter).items()):
        terminalreporter.section(name.replace("_", " "))
        for text in _table(rows):
            terminalreporter.write_line(text)
        # a row may carry its own verdict (several rows checked in one test)
        ok = sum(o == "passed" and row.get("check", "pass") == "pass" for o, row in rows)
        terminalreporter.write_line(HEADLINES[name].format(ok=ok, total=len(rows)))


@pytest.fixture
def tally_row(record_property: Any) -> Any:
    """``tally_row(TABLE, **columns)``: add this test's row to a printed table."""

    def add(table: str, **columns: Any) -> None:
        if table not in HEADLINES:
            raise ValueError(f"unknown table {table!r}: add its headline to HEADLINES")
        record_property(table, columns)

    return add
