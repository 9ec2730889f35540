"""Health gates: read-only checks with a verdict, evidence and a remediation hint.

The whole catalogue, one line a gate (``CATALOGUE`` below is the same table in code). Each gate
reads oned through ``OneClient`` and/or the hosts through one gather play (``Observer``; its
parts are what ``HOST_PARTS`` says), builds an observation (``observe``) and hands it to its
pure verdict (``verdicts``); ``wait`` looks again while the verdict is inconclusive.

    gate                reads                              standing  params it sets
    targets-supported   every host, raw commands only      yes
    oned-reachable      oned                               yes
    oned-version        oned; frontends (if observed)      yes       require_onedb=False if not
    hosts-monitored     oned                               yes
    vms-settled         oned                               yes
    vms-unchanged       oned (a snapshot before the step)  no
    no-duplicate-vms    oned; hypervisors                  yes
    datastores-healthy  oned; hypervisors, nfs_servers     yes       min_free=5%
    pacemaker-healthy   frontends                          yes
    fencing-ready       frontends, agents                  yes
    libvirtd-alive      hypervisors                        yes
    puppet-held         hypervisors                        no        run_id=the run's
    puppet-released     hypervisors                        no        run_id=the run's

Standing gates hold at any time (``upgrader gates`` evaluates them, ``STANDING``); the others
only inside a run. A step's own params override those set here. ``build_gates`` binds the
catalogue to one cloud; without an observer the gates that read the hosts are absent, but
for ``oned-version``, which then reads oned only. The executor evaluates the gates a step
names, a round at a time (``GateSet.new_round``).

``targets-supported`` reads the hosts with a play of its own (``targets``) that needs no Python
there. It is first in the catalogue (so ``upgrader gates`` evaluates it first) and first in every
runbook's preflight: a host without a usable Python then stops the run with one line naming it,
before the gather play meets that host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from upgrader.errors import OneApiError, UpgraderError
from upgrader.gates import observe, verdicts
from upgrader.gates.model import (
    AGENTS,
    FRONTENDS,
    HYPERVISORS,
    INCONCLUSIVE,
    NFS_SERVERS,
    Gate,
    GateResult,
    Gathered,
    Observer,
    Snapshot,
)
from upgrader.gates.targets import TargetReader
from upgrader.gates.verdicts import HostPool, OnedAnswer, VmIdentity, VmPool, VmSnapshots
from upgrader.gates.wait import WaitPolicy, check_gate
from upgrader.opennebula import OneClient, VmState
from upgrader.plan.model import PlannedStep
from upgrader.plan.runbook_model import GateSpec

Progress = Callable[[str], None]
POLICY_PARAMS = ("interval", "timeout")
# Free space a datastore needs when the runbook does not say (``upgrader gates``).
DEFAULT_MIN_FREE = "5%"


@dataclass(frozen=True)
class Cloud:
    """What the gates are bound to: oned, the hosts (if observed), the run, the progress."""

    client: OneClient
    observer: Observer | None
    run_id: str
    progress: Progress

    def hosts(self, parts: frozenset[str], fresh: bool) -> Gathered | None:
        """The round's gather of ``parts`` (None without an observer or parts to read)."""
        if self.observer is None or not parts:
            return None
        return self.observer.gather(parts, fresh=fresh)


Factory = Callable[["Entry", Cloud], Gate]


@dataclass(frozen=True)
class Entry:
    """One gate of the catalogue: what it reads of the hosts (the gather play's parts; none:
    oned only), whether it stands at any time, and how it is built for a cloud."""

    name: str
    parts: frozenset[str]
    standing: bool
    make: Factory
    unobserved: bool = False  # built without an observer too (it then reads oned only)
    own_play: bool = False  # reads the hosts with a play of its own (the observer's targets)

    def available(self, cloud: Cloud) -> bool:
        if self.own_play:
            return isinstance(cloud.observer, TargetReader)
        return cloud.observer is not None or not self.parts or self.unobserved


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


Observe = Callable[[OneClient, Gathered | None], Any]


def _observed(
    read: Observe,
    judge: verdicts.VerdictFn,
    params: Callable[[Cloud], Mapping[str, Any]] = lambda cloud: {},
) -> Factory:
    """Gates that ``read`` oned and the hosts the entry names, and ``judge`` what they read."""

    def make(entry: Entry, cloud: Cloud) -> Gate:
        def observe_once(fresh: bool) -> Any:
            return read(cloud.client, cloud.hosts(entry.parts, fresh))

        return _gate(entry.name, observe_once, judge, cloud.progress, **params(cloud))

    return make


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
    """``vms-unchanged`` (a ``ComparingGate``): the executor takes ``snapshot`` before the step
    (and journals it), then calls the gate after the step with that snapshot as ``before``."""

    def __init__(self, client: OneClient) -> None:
        self.client = client

    def snapshot(self, spec: GateSpec, step: PlannedStep) -> Snapshot:
        return [vm.__dict__.copy() for vm in vm_identities(self.client)]

    def __call__(
        self, spec: GateSpec, step: PlannedStep, before: Snapshot | None = None
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


# What each gate reads, from oned (the client) and the gather play (None: not observed).


def _read_oned(client: OneClient, _: Gathered | None) -> OnedAnswer:
    return oned_answer(client)


def _read_hosts(client: OneClient, _: Gathered | None) -> HostPool:
    return HostPool.from_hosts(client.host_pool())


def _read_vms(client: OneClient, _: Gathered | None) -> VmPool:
    return VmPool.from_vms(client.vm_pool())


def _read_domains(client: OneClient, seen: Gathered | None) -> verdicts.DomainMap:
    return observe.domain_map(client, _observed_hosts(seen).hypervisors)


def _read_datastores(client: OneClient, seen: Gathered | None) -> verdicts.DatastoreObservation:
    return observe.datastore_observation(client, _observed_hosts(seen))


def _read_pacemaker(_: OneClient, seen: Gathered | None) -> verdicts.PacemakerObservation:
    return observe.pacemaker_observation(_observed_hosts(seen))


def _read_fencing(_: OneClient, seen: Gathered | None) -> verdicts.FencingObservation:
    return observe.fencing_observation(_observed_hosts(seen))


def _read_libvirtd(_: OneClient, seen: Gathered | None) -> verdicts.LibvirtdObservation:
    return observe.libvirtd_observation(_observed_hosts(seen).hypervisors)


def _read_puppet(_: OneClient, seen: Gathered | None) -> verdicts.PuppetObservation:
    return observe.puppet_observation(_observed_hosts(seen).hypervisors)


def _observed_hosts(seen: Gathered | None) -> Gathered:
    if seen is None:  # not met: Entry.available leaves host gates out without an observer
        raise UpgraderError("this gate reads the hosts, and nothing was given to read them with")
    return seen


def _onedb_unless_observed(cloud: Cloud) -> Mapping[str, Any]:
    return {} if cloud.observer is not None else {"require_onedb": False}


def _run_id(cloud: Cloud) -> Mapping[str, Any]:
    return {"run_id": cloud.run_id}


def _vms_unchanged(entry: Entry, cloud: Cloud) -> Gate:
    return VmsUnchanged(cloud.client)


def _targets_supported(entry: Entry, cloud: Cloud) -> Gate:
    reader = cloud.observer
    if not isinstance(reader, TargetReader):  # not met: Entry.available leaves the gate out
        raise UpgraderError("targets-supported needs an observer that runs the target check")
    return _gate(
        entry.name, lambda fresh: reader.targets(), verdicts.targets_supported, cloud.progress
    )


_NONE: frozenset[str] = frozenset()

CATALOGUE: tuple[Entry, ...] = (
    Entry("targets-supported", _NONE, True, _targets_supported, own_play=True),
    Entry("oned-reachable", _NONE, True, _observed(_read_oned, verdicts.oned_reachable)),
    Entry(
        "oned-version",
        frozenset({FRONTENDS}),
        True,
        _observed(observe.version_observation, verdicts.oned_version, _onedb_unless_observed),
        unobserved=True,
    ),
    Entry("hosts-monitored", _NONE, True, _observed(_read_hosts, verdicts.hosts_monitored)),
    Entry("vms-settled", _NONE, True, _observed(_read_vms, verdicts.vms_settled)),
    Entry("vms-unchanged", _NONE, False, _vms_unchanged),
    Entry(
        "no-duplicate-vms",
        frozenset({HYPERVISORS}),
        True,
        _observed(_read_domains, verdicts.no_duplicate_vms),
    ),
    Entry(
        "datastores-healthy",
        frozenset({HYPERVISORS, NFS_SERVERS}),
        True,
        _observed(
            _read_datastores,
            verdicts.datastores_healthy,
            lambda cloud: {"min_free": DEFAULT_MIN_FREE},
        ),
    ),
    Entry(
        "pacemaker-healthy",
        frozenset({FRONTENDS}),
        True,
        _observed(_read_pacemaker, verdicts.pacemaker_healthy),
    ),
    Entry(
        "fencing-ready",
        frozenset({FRONTENDS, AGENTS}),
        True,
        _observed(_read_fencing, verdicts.fencing_ready),
    ),
    Entry(
        "libvirtd-alive",
        frozenset({HYPERVISORS}),
        True,
        _observed(_read_libvirtd, verdicts.libvirtd_alive),
    ),
    Entry(
        "puppet-held",
        frozenset({HYPERVISORS}),
        False,
        _observed(_read_puppet, verdicts.puppet_held, _run_id),
    ),
    Entry(
        "puppet-released",
        frozenset({HYPERVISORS}),
        False,
        _observed(_read_puppet, verdicts.puppet_released, _run_id),
    ),
)

# What each host-reading gate needs of the gather play (the groups it visits).
HOST_PARTS: Mapping[str, frozenset[str]] = {e.name: e.parts for e in CATALOGUE if e.parts}

# Gates that hold at any time (``upgrader gates``); the others only inside a run.
STANDING: tuple[str, ...] = tuple(e.name for e in CATALOGUE if e.standing)


class GateSet(Mapping[str, Gate]):
    """The gates of one cloud (``Gates``); ``new_round`` lets the next gate gather again."""

    def __init__(self, gates: Mapping[str, Gate], observer: Observer | None) -> None:
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
    observer: Observer | None = None,
    run_id: str = "",
) -> GateSet:
    """Every gate the runbooks may name, bound to one cloud (and its hosts, with an observer);
    ``run_id`` is the run the Puppet hold must name."""
    cloud = Cloud(client, observer, run_id, progress)
    gates = {e.name: e.make(e, cloud) for e in CATALOGUE if e.available(cloud)}
    return GateSet(gates, observer)
