"""The pure verdict functions of the health-gate catalogue, by stable gate name.

A gate reads the world (through ``OneClient`` or on the hosts) into an observation, a
frozen dataclass of plain data, and hands it with the gate's parameters to its verdict
function: ``VERDICTS[name](observation, **spec.params) -> GateResult``. Nothing here does
I/O or reads a clock, so every verdict is tested from recorded observations
(tests/cases/gates/*.yaml). The functions live in ``verdicts_cloud`` (oned, hosts, VMs,
duplicate domains) and ``verdicts_hosts`` (datastores, Pacemaker, fencing, libvirtd, Puppet).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upgrader.executor import GateResult
from upgrader.gates.verdicts_base import parse_size, result
from upgrader.gates.verdicts_cloud import (
    DomainMap,
    HostPool,
    HostSeen,
    HypervisorDomains,
    OnedAnswer,
    OnedVersionSeen,
    VmIdentity,
    VmPool,
    VmSeen,
    VmSnapshots,
    hosts_monitored,
    no_duplicate_vms,
    oned_reachable,
    oned_version,
    vms_settled,
    vms_unchanged,
)
from upgrader.gates.verdicts_hosts import (
    AgentCheck,
    DatastoreMount,
    DatastoreObservation,
    FailedAction,
    FencingObservation,
    LibvirtdObservation,
    LibvirtdStatus,
    OnedDatastore,
    PacemakerNode,
    PacemakerObservation,
    PacemakerResource,
    PuppetAgent,
    PuppetObservation,
    datastores_healthy,
    fencing_ready,
    libvirtd_alive,
    pacemaker_healthy,
    parse_syntax_error,
    puppet_held,
    puppet_released,
)

Verdict = Callable[..., GateResult]

VERDICTS: Mapping[str, Verdict] = {
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
