"""The pure verdict functions of the health-gate catalogue, by stable gate name.

A gate reads the world (through ``OneClient`` or on the hosts) into an observation, a
frozen dataclass of plain data, and hands it with the gate's parameters to its verdict
function: ``VERDICTS[name](observation, **spec.params) -> GateResult``. Nothing here does
I/O or reads a clock, so every verdict is tested from recorded observations
(tests/cases/gates/*.yaml).

This module is the facade: other code imports verdicts and observations only from here.
Each topic module holds its verdicts together with the observations they take:

- ``verdicts_oned``: oned-reachable, oned-version, hosts-monitored
- ``verdicts_vms``: vms-settled, vms-unchanged, no-duplicate-vms
- ``verdicts_storage``: datastores-healthy
- ``verdicts_cluster``: pacemaker-healthy, fencing-ready (and ``parse_syntax_error``)
- ``verdicts_agents``: libvirtd-alive, puppet-held, puppet-released
- ``verdicts_base``: what they all share (``result``, ``listing``, ``parse_size``)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upgrader.gates.model import GateResult, Verdict
from upgrader.gates.verdicts.agents import (
    LibvirtdObservation,
    LibvirtdStatus,
    PuppetAgent,
    PuppetObservation,
    libvirtd_alive,
    puppet_held,
    puppet_released,
)
from upgrader.gates.verdicts.base import parse_size, result
from upgrader.gates.verdicts.cluster import (
    AgentCheck,
    FailedAction,
    FencingObservation,
    PacemakerNode,
    PacemakerObservation,
    PacemakerResource,
    fencing_ready,
    pacemaker_healthy,
    parse_syntax_error,
)
from upgrader.gates.verdicts.oned import (
    HostPool,
    HostSeen,
    OnedAnswer,
    OnedVersionSeen,
    hosts_monitored,
    oned_reachable,
    oned_version,
)
from upgrader.gates.verdicts.storage import (
    DatastoreMount,
    DatastoreObservation,
    OnedDatastore,
    datastores_healthy,
)
from upgrader.gates.verdicts.vms import (
    DomainMap,
    HypervisorDomains,
    VmIdentity,
    VmPool,
    VmSeen,
    VmSnapshots,
    no_duplicate_vms,
    vms_settled,
    vms_unchanged,
)

VerdictFn = Callable[..., GateResult]
"""A verdict function: ``(observation, **params) -> GateResult``."""

VERDICTS: Mapping[str, VerdictFn] = {
    "oned-reachable": oned_reachable,
    "oned-version": oned_version,
    "hosts-monitored": hosts_monitored,
    "vms-settled": vms_settled,
    "vms-unchanged": vms_unchanged,
    "no-duplicate-vms": no_duplicate_vms,
    "datastores-healthy": datastores_healthy,
    "pacemaker-healthy": pacemaker_healthy,
    "fencing-ready": fencing_ready,
    "libvirtd-alive": libvirtd_alive,
    "puppet-held": puppet_held,
    "puppet-released": puppet_released,
}

# The observation type each verdict takes (for recorders and case files).
OBSERVATIONS: Mapping[str, type[Any]] = {
    "oned-reachable": OnedAnswer,
    "oned-version": OnedVersionSeen,
    "hosts-monitored": HostPool,
    "vms-settled": VmPool,
    "vms-unchanged": VmSnapshots,
    "no-duplicate-vms": DomainMap,
    "datastores-healthy": DatastoreObservation,
    "pacemaker-healthy": PacemakerObservation,
    "fencing-ready": FencingObservation,
    "libvirtd-alive": LibvirtdObservation,
    "puppet-held": PuppetObservation,
    "puppet-released": PuppetObservation,
}

__all__ = [
    "OBSERVATIONS",
    "VERDICTS",
    "AgentCheck",
    "DatastoreMount",
    "DatastoreObservation",
    "DomainMap",
    "FailedAction",
    "FencingObservation",
    "HostPool",
    "HostSeen",
    "HypervisorDomains",
    "LibvirtdObservation",
    "LibvirtdStatus",
    "OnedAnswer",
    "OnedDatastore",
    "OnedVersionSeen",
    "PacemakerNode",
    "PacemakerObservation",
    "PacemakerResource",
    "PuppetAgent",
    "PuppetObservation",
    "Verdict",
    "VerdictFn",
    "VmIdentity",
    "VmPool",
    "VmSeen",
    "VmSnapshots",
    "datastores_healthy",
    "fencing_ready",
    "hosts_monitored",
    "libvirtd_alive",
    "no_duplicate_vms",
    "oned_reachable",
    "oned_version",
    "pacemaker_healthy",
    "parse_size",
    "parse_syntax_error",
    "puppet_held",
    "puppet_released",
    "result",
    "vms_settled",
    "vms_unchanged",
]
