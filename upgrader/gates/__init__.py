"""Health gates: read-only checks with a verdict, evidence and a remediation hint.

Issue 5 fills the catalogue; the core needs the registry and the oned gates to run plans.
"""

from __future__ import annotations

from collections.abc import Mapping

from upgrader.errors import OneApiError
from upgrader.executor import FAIL, PASS, Gate, GateResult
from upgrader.opennebula import OneClient
from upgrader.planner import PlannedStep
from upgrader.runbook import GateSpec


def oned_reachable(client: OneClient) -> Gate:
    """``oned-reachable``: oned answers a read-only call."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        try:
            hosts = client.host_pool()
        except OneApiError as exc:
            return GateResult("oned-reachable", FAIL, {"summary": str(exc)},
                              "start oned on the front end (Pacemaker resource oned) and check "
                              "the endpoint in upgrader.yml")
        return GateResult("oned-reachable", PASS,
                          {"summary": f"oned answered with {len(hosts)} hosts",
                           "endpoint": client.endpoint})
    return check


def oned_version(client: OneClient) -> Gate:
    """``oned-version``: the version by probing equals the gate's ``expect`` parameter."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        expect = str(spec.params.get("expect", ""))
        try:
            seen = str(client.detect_version())
        except OneApiError as exc:
            return GateResult("oned-version", FAIL, {"summary": str(exc)}, "")
        verdict = PASS if not expect or seen == expect else FAIL
        return GateResult("oned-version", verdict,
                          {"summary": f"oned is {seen}, expected {expect or 'any'}",
                           "seen": seen, "expected": expect},
                          "" if verdict == PASS else "the database or package is not the one "
                          "this step expects: see the previous step's output")
    return check


def build_gates(client: OneClient) -> Mapping[str, Gate]:
    """Every gate the runbooks may name, bound to one cloud."""
    return {"oned-reachable": oned_reachable(client), "oned-version": oned_version(client)}
