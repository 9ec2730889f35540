"""The gate wait policy, on an injected clock."""

from __future__ import annotations

from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS, GateResult
from upgrader.gates.wait import WaitPolicy, check_gate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def judge_sequence(*verdicts: str):
    seen = iter(verdicts)

    def judge(_obs) -> GateResult:
        v = next(seen)
        return GateResult("hosts-monitored", v, {"summary": f"saw {v}"}, "" if v == PASS else "h")

    return judge


def test_transient_states_are_waited_out_and_the_wait_is_reported():
    clock, lines = FakeClock(), []
    result = check_gate(
        "hosts-monitored",
        lambda: None,
        judge_sequence(INCONCLUSIVE, INCONCLUSIVE, PASS),
        WaitPolicy(interval=5, budget=60),
        clock=clock,
        sleep=clock.sleep,
        progress=lines.append,
    )
    assert result.verdict == PASS
    assert result.evidence["attempts"] == 3 and result.evidence["waited_s"] == 10
    assert lines == [
        "[gate/hosts-monitored] waiting (0/60 s): saw inconclusive",
        "[gate/hosts-monitored] waiting (5/60 s): saw inconclusive",
    ]


def test_a_failure_is_final_at_once():
    clock = FakeClock()
    result = check_gate(
        "x", lambda: None, judge_sequence(FAIL), WaitPolicy(), clock=clock, sleep=clock.sleep
    )
    assert result.verdict == FAIL and clock.sleeps == []


def test_inconclusive_after_the_budget_stops_and_asks():
    clock = FakeClock()
    result = check_gate(
        "x",
        lambda: None,
        judge_sequence(*[INCONCLUSIVE] * 10),
        WaitPolicy(interval=4, budget=10),
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.verdict == INCONCLUSIVE
    assert clock.now == 10 and result.evidence["attempts"] == 4
    assert result.hint


def test_an_observation_that_cannot_be_read_is_a_failure_that_says_so():
    from upgrader.errors import OneUnavailableError

    def observe():
        raise OneUnavailableError("cannot reach oned at http://x", hint="start oned")

    clock = FakeClock()
    result = check_gate(
        "hosts-monitored",
        observe,
        judge_sequence(PASS),
        WaitPolicy(),
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.verdict == FAIL and "cannot reach oned" in result.evidence["summary"]
    assert result.hint == "start oned"
