"""What every verdict function shares: building a ``GateResult`` and naming things in it.

Pure: no I/O, no clock. Evidence is JSON-ready (str, int, bool, None, lists and dicts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS, GateResult

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "listing", "parse_size", "result"]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def result(gate: str, verdict: str, summary: str, hint: str = "", **details: Any) -> GateResult:
    """A ``GateResult`` whose evidence is ``{"summary": ..., **details}``.

    A pass carries no hint; a fail or an inconclusive verdict must carry one.
    """
    if verdict not in (PASS, FAIL, INCONCLUSIVE):
        raise ValueError(f"unknown verdict {verdict!r}")
    if verdict != PASS and not hint:
        raise ValueError(f"gate {gate}: a {verdict} verdict needs a remediation hint")
    evidence = {"summary": summary, **details}
    return GateResult(gate, verdict, evidence, "" if verdict == PASS else hint)


def listing(items: Iterable[str], limit: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 3 more`` for a one-line summary."""
    seq = list(items)
    if len(seq) <= limit:
        return ", ".join(seq)
    return f"{', '.join(seq[:limit])} and {len(seq) - limit} more"


def parse_size(value: int | str) -> int:
    """``1048576``, ``"512M"``, ``"20G"``, ``"1.5T"`` -> bytes (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {value!r} (bytes, or a number with K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
