"""What a gate is and what it says: the types every gate, verdict and caller shares.

Pure: no I/O, no Ansible, no client, so ``import upgrader.gates.verdicts`` loads none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from upgrader.plan.planner import PlannedStep
    from upgrader.plan.runbook import GateSpec


class Verdict(StrEnum):
    """A gate's verdict; a ``str``, so journals and JSON carry the plain word."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict with what it saw and what to do about a failure."""

    gate: str
    verdict: Verdict
    evidence: Mapping[str, Any]
    hint: str = ""


class Gate(Protocol):
    """A read-only check: ``check(spec, step) -> GateResult`` (it may wait, within its budget)."""

    def __call__(self, spec: GateSpec, step: PlannedStep) -> GateResult: ...
