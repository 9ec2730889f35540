"""Evaluate a gate with its wait policy: observe, judge, and wait out transient states.

A gate whose verdict is ``inconclusive`` (hosts still MONITORING, a VM still in BOOT) is
observed again every ``interval`` seconds until it passes or fails, or until its time
budget is spent; while it waits it says what it is still waiting for. Inconclusive after
the budget stops the run and asks the operator. Time is injected, so tests never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from upgrader.errors import UpgraderError
from upgrader.gates.model import FAIL, INCONCLUSIVE, GateResult

Obs = TypeVar("Obs")


@dataclass(frozen=True)
class WaitPolicy:
    """How often to look again and for how long, in seconds."""

    interval: float = 5.0
    budget: float = 300.0


def check_gate(
    name: str,
    observe: Callable[[], Obs],
    judge: Callable[[Obs], GateResult],
    policy: WaitPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] = lambda line: None,
    unreadable: tuple[type[Exception], ...] = (UpgraderError,),
) -> GateResult:
    """Observe and judge until the verdict is pass or fail, or the budget is spent.

    An observation that raises one of ``unreadable`` is a failure that says what it could
    not read (a gate never lets an error escape without a verdict).
    """
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        try:
            observation = observe()
        except unreadable as exc:
            return _with(
                GateResult(
                    name,
                    FAIL,
                    {"summary": f"could not observe: {exc}"},
                    _hint(exc) or "check the source it reads",
                ),
                attempts,
                clock() - started,
            )
        result = judge(observation)
        waited = clock() - started
        if result.verdict != INCONCLUSIVE:
            return _with(result, attempts, waited)
        if waited >= policy.budget:
            hint = (
                f"still inconclusive after {policy.budget:.0f} s: look at what it waits for, "
                "then `upgrader resume` (the gate is evaluated again)"
            )
            return _with(
                GateResult(name, INCONCLUSIVE, result.evidence, result.hint or hint),
                attempts,
                waited,
            )
        progress(
            f"[gate/{name}] waiting ({waited:.0f}/{policy.budget:.0f} s): "
            f"{result.evidence.get('summary', '')}"
        )
        sleep(min(policy.interval, max(0.0, policy.budget - waited)) or policy.interval)


def _hint(exc: Exception) -> str | None:
    return exc.hint if isinstance(exc, UpgraderError) else None


def _with(result: GateResult, attempts: int, waited: float) -> GateResult:
    evidence = {**result.evidence, "attempts": attempts, "waited_s": round(waited, 3)}
    return GateResult(result.gate, result.verdict, evidence, result.hint)
