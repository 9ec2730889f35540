"""Health gates: read-only checks with a verdict, evidence and a remediation hint.

Issue 5 fills the catalogue; the core needs the registry and the oned gates to run plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upgrader.errors import OneApiError
from upgrader.executor import FAIL, PASS, Gate, GateResult
from upgrader.gates import verdicts
from upgrader.gates.hosts import (
    HostObserver,
    domain_map,
    libvirtd_observation,
    puppet_observation,
)
from upgrader.gates.runner import WaitPolicy, check_gate
from upgrader.gates.verdicts import HostPool, VmPool
from upgrader.opennebula import OneClient
from upgrader.planner import PlannedStep
from upgrader.runbook import GateSpec


def oned_reachable(client: OneClient) -> Gate:
    """``oned-reachable``: oned answers a read-only call."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        try:
            hosts = client.host_pool()
        except OneApiError as exc:
            return GateResult(
                "oned-reachable",
                FAIL,
                {"summary": str(exc)},
                "start oned on the front end (Pacemaker resource oned) and check "
                "the endpoint in upgrader.yml",
            )
        return GateResult(
            "oned-reachable",
            PASS,
            {"summary": f"oned answered with {len(hosts)} hosts", "endpoint": client.endpoint},
        )

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
        return GateResult(
            "oned-version",
            verdict,
            {
                "summary": f"oned is {seen}, expected {expect or 'any'}",
                "seen": seen,
                "expected": expect,
            },
            ""
            if verdict == PASS
            else "the database or package is not the one "
            "this step expects: see the previous step's output",
        )

    return check


def _policy(spec: GateSpec) -> WaitPolicy:
    return WaitPolicy(
        interval=float(spec.params.get("interval", 5)),
        budget=float(spec.params.get("timeout", 300)),
    )


def hosts_monitored(client: OneClient, progress: Callable[[str], None]) -> Gate:
    """``hosts-monitored``: every host MONITORED; monitoring states are waited out."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        params = {k: v for k, v in spec.params.items() if k in ("allow_disabled", "expect_hosts")}
        return check_gate(
            "hosts-monitored",
            lambda: HostPool.from_hosts(client.host_pool()),
            lambda obs: verdicts.hosts_monitored(obs, **params),
            _policy(spec),
            progress=progress,
        )

    return check


def vms_settled(client: OneClient, progress: Callable[[str], None]) -> Gate:
    """``vms-settled``: no VM in a transient state; transient states are waited out."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        return check_gate(
            "vms-settled",
            lambda: VmPool.from_vms(client.vm_pool()),
            verdicts.vms_settled,
            _policy(spec),
            progress=progress,
        )

    return check


def _host_gate(
    name: str,
    observe: Callable[[], Any],
    judge: Callable[..., GateResult],
    progress: Callable[[str], None],
) -> Gate:
    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        params = {k: v for k, v in spec.params.items() if k not in ("interval", "timeout")}
        return check_gate(
            name, observe, lambda obs: judge(obs, **params), _policy(spec), progress=progress
        )

    return check


def build_gates(
    client: OneClient,
    progress: Callable[[str], None] = lambda line: None,
    observer: HostObserver | None = None,
) -> Mapping[str, Gate]:
    """Every gate the runbooks may name, bound to one cloud (and its hosts, with an observer)."""
    gates: dict[str, Gate] = {
        "oned-reachable": oned_reachable(client),
        "oned-version": oned_version(client),
        "hosts-monitored": hosts_monitored(client, progress),
        "vms-settled": vms_settled(client, progress),
    }
    if observer is not None:
        gather = observer.gather
        gates["libvirtd-alive"] = _host_gate(
            "libvirtd-alive",
            lambda: libvirtd_observation(gather()),
            verdicts.libvirtd_alive,
            progress,
        )
        gates["no-duplicate-vms"] = _host_gate(
            "no-duplicate-vms",
            lambda: domain_map(client, gather()),
            verdicts.no_duplicate_vms,
            progress,
        )
        gates["puppet-held"] = _host_gate(
            "puppet-held", lambda: puppet_observation(gather()), verdicts.puppet_held, progress
        )
        gates["puppet-released"] = _host_gate(
            "puppet-released",
            lambda: puppet_observation(gather()),
            verdicts.puppet_released,
            progress,
        )
    return gates


# Gates that hold at any time (``upgrader gates``); the others only inside a run.
STANDING = (
    "oned-reachable",
    "oned-version",
    "hosts-monitored",
    "vms-settled",
    "libvirtd-alive",
    "no-duplicate-vms",
)
