"""Health gates: read-only checks with a verdict, evidence and a remediation hint.

``build_gates`` binds every gate of the catalogue to one cloud: what it reads (oned through
``OneClient``; the hosts through one gather play, ``HostObserver``), its pure verdict
(``verdicts``) and its wait policy (``runner``). The executor evaluates the gates a step
names; ``upgrader gates`` evaluates the standing ones. Gates without an observer read only
oned, and the host gates are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from upgrader.errors import OneApiError
from upgrader.gates import observe, verdicts
from upgrader.gates.gather import (
    AGENTS,
    FRONTENDS,
    HYPERVISORS,
    NFS_SERVERS,
    Gathered,
    HostObserver,
)
from upgrader.gates.model import INCONCLUSIVE, Gate, GateResult
from upgrader.gates.verdicts import HostPool, OnedAnswer, VmIdentity, VmPool, VmSnapshots
from upgrader.gates.wait import WaitPolicy, check_gate
from upgrader.opennebula import OneClient, VmState
from upgrader.plan.planner import PlannedStep
from upgrader.plan.runbook import GateSpec

Progress = Callable[[str], None]
POLICY_PARAMS = ("interval", "timeout")
# Free space a datastore needs when the runbook does not say (``upgrader gates``).
DEFAULT_MIN_FREE = "5%"


def _policy(spec: GateSpec) -> WaitPolicy:
    return WaitPolicy(
        interval=float(spec.params.get("interval", 5)),
        budget=float(spec.params.get("timeout", 300)),
    )


def _params(spec: GateSpec, **defaults: Any) -> dict[str, Any]:
    return {**defaults, **{k: v for k, v in spec.params.items() if k not in POLICY_PARAMS}}


def _gate(
    name: str,
    observe_once: Callable[[bool], Any],
    judge: Callable[..., GateResult],
    progress: Progress,
    **defaults: Any,
) -> Gate:
    """A gate that observes (the round's gather first, afresh when it looks again) and judges."""

    def check(spec: GateSpec, step: PlannedStep) -> GateResult:
        params = _params(spec, **defaults)
        looks = 0

        def look() -> Any:
            nonlocal looks
            looks += 1
            return observe_once(looks > 1)

        return check_gate(
            name, look, lambda obs: judge(obs, **params), _policy(spec), progress=progress
        )

    return check


def oned_answer(client: OneClient) -> OnedAnswer:
    """Whether oned answers ``one.hostpool.info``."""
    try:
        return OnedAnswer(client.endpoint, True, host_count=len(client.host_pool()))
    except OneApiError as exc:
        return OnedAnswer(client.endpoint, False, error=str(exc))


def vm_identities(client: OneClient) -> tuple[VmIdentity, ...]:
    """Every VM but the DONE ones, as ``vms-unchanged`` compares them."""
    return tuple(VmIdentity.from_vm(vm) for vm in client.vm_pool() if vm.state is not VmState.DONE)


class VmsUnchanged:
    """``vms-unchanged``: the executor takes ``snapshot`` before the step (and journals it),
    then calls the gate after the step with that snapshot as ``before``."""

    def __init__(self, client: OneClient) -> None:
        self.client = client

    def snapshot(self, spec: GateSpec, step: PlannedStep) -> list[dict[str, Any]]:
        return [vm.__dict__.copy() for vm in vm_identities(self.client)]

    def __call__(
        self, spec: GateSpec, step: PlannedStep, before: list[dict[str, Any]] | None = None
    ) -> GateResult:
        if before is None:
            return GateResult(
                "vms-unchanged",
                INCONCLUSIVE,
                {"summary": f"no snapshot of the VMs was taken before step {step.id}"},
                "name vms-unchanged among the step's gates_after, so the snapshot is "
                "taken before the step starts",
            )
        params = {k: v for k, v in spec.params.items() if k == "same_hosts"}
        then = tuple(VmIdentity(**vm) for vm in before)
        try:
            now = vm_identities(self.client)
        except OneApiError as exc:
            return GateResult(
                "vms-unchanged",
                INCONCLUSIVE,
                {"summary": f"could not list the VMs: {exc}"},
                "check oned-reachable",
            )
        return verdicts.vms_unchanged(VmSnapshots(then, now), **params)


class GateSet(Mapping[str, Gate]):
    """The gates of one cloud; ``new_round`` lets the next gate gather from the hosts again."""

    def __init__(self, gates: Mapping[str, Gate], observer: HostObserver | None) -> None:
        self._gates = dict(gates)
        self.observer = observer

    def __getitem__(self, name: str) -> Gate:
        return self._gates[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gates)

    def __len__(self) -> int:
        return len(self._gates)

    def new_round(self, names: Iterable[str] = ()) -> None:
        """The next gates (``names``, when known) look at the hosts again, in one gather."""
        if self.observer is not None:
            self.observer.new_round(
                frozenset().union(*(HOST_PARTS.get(name, frozenset()) for name in names))
            )


def build_gates(
    client: OneClient,
    progress: Progress = lambda line: None,
    observer: HostObserver | None = None,
    run_id: str = "",
) -> GateSet:
    """Every gate the runbooks may name, bound to one cloud (and its hosts, with an observer);
    ``run_id`` is the run the Puppet hold must name."""
    gates: dict[str, Gate] = {
        "oned-reachable": _gate(
            "oned-reachable", lambda fresh: oned_answer(client), verdicts.oned_reachable, progress
        ),
        "hosts-monitored": _gate(
            "hosts-monitored",
            lambda fresh: HostPool.from_hosts(client.host_pool()),
            verdicts.hosts_monitored,
            progress,
        ),
        "vms-settled": _gate(
            "vms-settled",
            lambda fresh: VmPool.from_vms(client.vm_pool()),
            verdicts.vms_settled,
            progress,
        ),
        "vms-unchanged": VmsUnchanged(client),
    }
    if observer is None:
        gates["oned-version"] = _gate(
            "oned-version",
            lambda fresh: observe.version_observation(client, None),
            verdicts.oned_version,
            progress,
            require_onedb=False,
        )
        return GateSet(gates, None)

    def hosts(fresh: bool, *parts: str) -> Gathered:
        return observer.gather(frozenset(parts), fresh=fresh)

    gates.update(
        {
            "oned-version": _gate(
                "oned-version",
                lambda fresh: observe.version_observation(client, hosts(fresh, FRONTENDS)),
                verdicts.oned_version,
                progress,
            ),
            "no-duplicate-vms": _gate(
                "no-duplicate-vms",
                lambda fresh: observe.domain_map(client, hosts(fresh, HYPERVISORS).hypervisors),
                verdicts.no_duplicate_vms,
                progress,
            ),
            "datastores-healthy": _gate(
                "datastores-healthy",
                lambda fresh: observe.datastore_observation(
                    client, hosts(fresh, HYPERVISORS, NFS_SERVERS)
                ),
                verdicts.datastores_healthy,
                progress,
                min_free=DEFAULT_MIN_FREE,
            ),
            "pacemaker-healthy": _gate(
                "pacemaker-healthy",
                lambda fresh: observe.pacemaker_observation(hosts(fresh, FRONTENDS)),
                verdicts.pacemaker_healthy,
                progress,
            ),
            "fencing-ready": _gate(
                "fencing-ready",
                lambda fresh: observe.fencing_observation(hosts(fresh, FRONTENDS, AGENTS)),
                verdicts.fencing_ready,
                progress,
            ),
            "libvirtd-alive": _gate(
                "libvirtd-alive",
                lambda fresh: observe.libvirtd_observation(hosts(fresh, HYPERVISORS).hypervisors),
                verdicts.libvirtd_alive,
                progress,
            ),
            "puppet-held": _gate(
                "puppet-held",
                lambda fresh: observe.puppet_observation(hosts(fresh, HYPERVISORS).hypervisors),
                verdicts.puppet_held,
                progress,
                run_id=run_id,
            ),
            "puppet-released": _gate(
                "puppet-released",
                lambda fresh: observe.puppet_observation(hosts(fresh, HYPERVISORS).hypervisors),
                verdicts.puppet_released,
                progress,
                run_id=run_id,
            ),
        }
    )
    return GateSet(gates, observer)


# What each host-reading gate needs of the gather play (the groups it visits).
HOST_PARTS: Mapping[str, frozenset[str]] = {
    "oned-version": frozenset({FRONTENDS}),
    "no-duplicate-vms": frozenset({HYPERVISORS}),
    "datastores-healthy": frozenset({HYPERVISORS, NFS_SERVERS}),
    "pacemaker-healthy": frozenset({FRONTENDS}),
    "fencing-ready": frozenset({FRONTENDS, AGENTS}),
    "libvirtd-alive": frozenset({HYPERVISORS}),
    "puppet-held": frozenset({HYPERVISORS}),
    "puppet-released": frozenset({HYPERVISORS}),
}

# Gates that hold at any time (``upgrader gates``); the others only inside a run.
STANDING = (
    "oned-reachable",
    "oned-version",
    "hosts-monitored",
    "vms-settled",
    "no-duplicate-vms",
    "datastores-healthy",
    "pacemaker-healthy",
    "fencing-ready",
    "libvirtd-alive",
)
