"""What every verdict function shares: building a ``GateResult`` and naming things in it.

A verdict is cut into named checks: small pure functions, each returning a ``CheckOutcome`` (the
lines that fail the gate, the lines it still waits for, its part of the evidence);
``judged`` turns what a verdict's checks found into its ``GateResult``: fail if any check found a
problem, else inconclusive if any waits, else pass.

Pure: no I/O, no clock. Evidence is JSON-ready (str, int, bool, None, lists and dicts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS, GateResult, Verdict

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "CheckOutcome",
    "evidence",
    "judged",
    "listed",
    "listing",
    "parse_size",
    "result",
]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def result(
    gate: str, verdict: Verdict | str, summary: str, hint: str = "", **details: Any
) -> GateResult:
    """A ``GateResult`` whose evidence is ``{"summary": ..., **details}``.

    A pass carries no hint; a fail or an inconclusive verdict must carry one.
    """
    try:
        verdict = Verdict(verdict)
    except ValueError:
        raise ValueError(f"unknown verdict {verdict!r}") from None
    if verdict is not PASS and not hint:
        raise ValueError(f"gate {gate}: a {verdict} verdict needs a remediation hint")
    evidence = {"summary": summary, **details}
    return GateResult(gate, verdict, evidence, "" if verdict is PASS else hint)


@dataclass(frozen=True)
class CheckOutcome:
    """What one named check of a verdict found."""

    details: Mapping[str, Any] = field(default_factory=dict)  # its part of the evidence
    problems: tuple[str, ...] = ()  # summary lines that fail the gate
    waiting: tuple[str, ...] = ()  # summary lines the gate still waits for (inconclusive)

    @property
    def verdict(self) -> Verdict:
        """The check's own verdict: fail on a problem, inconclusive while waiting, or pass."""
        if self.problems:
            return FAIL
        return INCONCLUSIVE if self.waiting else PASS


def evidence(*found: CheckOutcome) -> dict[str, Any]:
    """The checks' details in one mapping, in the order given (reports keep that order)."""
    return {key: value for f in found for key, value in f.details.items()}


def judged(
    gate: str,
    found: Sequence[CheckOutcome],
    details: Mapping[str, Any],
    *,
    passed: str,
    fail_hint: str,
    wait_hint: str,
    fail_prefix: str = "",
) -> GateResult:
    """The verdict of ``found`` (in the order their lines go into the summary): fail with
    every problem, else inconclusive with every line waited for, else pass (``passed``)."""
    problems = [line for f in found for line in f.problems]
    if problems:
        return result(gate, FAIL, fail_prefix + "; ".join(problems), fail_hint, **details)
    waiting = [line for f in found for line in f.waiting]
    if waiting:
        return result(gate, INCONCLUSIVE, "; ".join(waiting), wait_hint, **details)
    return result(gate, PASS, passed, **details)


def listed(label: str, items: Iterable[str]) -> tuple[str, ...]:
    """``("label: a, b",)`` for a summary when there are ``items``, else ``()``."""
    seq = list(items)
    return (f"{label}: {listing(seq)}",) if seq else ()


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
