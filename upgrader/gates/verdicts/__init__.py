"""The pure verdict functions of the health-gate catalogue, by stable gate name.

A gate reads the world (through ``OneClient`` or on the hosts) into an observation, a
frozen dataclass of plain data, and hands it with the gate's parameters to its verdict
function: ``VERDICTS[name](observation, **spec.params) -> GateResult``. Nothing here does
I/O or reads a clock, so every verdict is tested from recorded observations
(tests/cases/gates/*.yaml).

The verdicts that judge many things at once are cut into named checks, small pure functions
each returning a ``CheckOutcome`` (``CHECKS[name]``; case files in tests/cases/gates/checks/).

This module is the facade: other code imports verdicts and observations only from here.
Each topic module holds its verdicts together with the observations they take:

- ``oned``: oned-reachable, oned-version, hosts-monitored
- ``vms``: vms-settled, vms-unchanged
- ``domains``: no-duplicate-vms
- ``storage``: datastores-healthy
- ``cluster``: pacemaker-healthy, fencing-ready (and ``parse_syntax_error``)
- ``agents``: libvirtd-alive, puppet-held, puppet-released
- ``targets``: targets-supported (and ``parse_answer``, the hosts' raw answer); ``interpreters``:
  which Python a play uses on a host, as Ansible's discovery picks it
- ``base``: what they all share (``result``, ``CheckOutcome``, ``judged``, ``listing``,
  ``parse_size``)
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
from upgrader.gates.verdicts.base import CheckOutcome, parse_size, result
from upgrader.gates.verdicts.cluster import (
    PACEMAKER_HEALTHY_CHECKS,
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
from upgrader.gates.verdicts.domains import (
    NO_DUPLICATE_VMS_CHECKS,
    DomainMap,
    HypervisorDomains,
    no_duplicate_vms,
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
    DATASTORES_HEALTHY_CHECKS,
    DatastoreMount,
    DatastoreObservation,
    OnedDatastore,
    datastores_healthy,
)
from upgrader.gates.verdicts.targets import (
    TargetHost,
    TargetsObservation,
    parse_answer,
    targets_supported,
)
from upgrader.gates.verdicts.vms import (
    VMS_UNCHANGED_CHECKS,
    VmIdentity,
    VmPool,
    VmSeen,
    VmSnapshots,
    vms_settled,
    vms_unchanged,
)

VerdictFn = Callable[..., GateResult]
"""A verdict function: ``(observation, **params) -> GateResult``."""

VERDICTS: Mapping[str, VerdictFn] = {
    "targets-supported": targets_supported,
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
    "targets-supported": TargetsObservation,
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

CheckFn = Callable[..., CheckOutcome]
"""A named check: ``(what it looks at, **params) -> CheckOutcome``."""

# The named checks of each verdict cut into them, by gate and by check name.
CHECKS: Mapping[str, Mapping[str, CheckFn]] = {
    gate: {check.__name__: check for check in checks}
    for gate, checks in (
        ("vms-unchanged", VMS_UNCHANGED_CHECKS),
        ("no-duplicate-vms", NO_DUPLICATE_VMS_CHECKS),
        ("datastores-healthy", DATASTORES_HEALTHY_CHECKS),
        ("pacemaker-healthy", PACEMAKER_HEALTHY_CHECKS),
    )
}

__all__ = [
    "CHECKS",
    "OBSERVATIONS",
    "VERDICTS",
    "AgentCheck",
    "CheckFn",
    "CheckOutcome",
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
    "TargetHost",
    "TargetsObservation",
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
    "parse_answer",
    "parse_size",
    "parse_syntax_error",
    "puppet_held",
    "puppet_released",
    "result",
    "targets_supported",
    "vms_settled",
    "vms_unchanged",
]
