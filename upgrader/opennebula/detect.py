"""Tell OpenNebula 3.2, 3.4 and 3.6 apart: by the methods oned has, cross-checked with XML markers.

Pure functions; ``OneClient.detect_version`` asks oned and hands the answers in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from upgrader.errors import OneResponseError
from upgrader.opennebula.enums import OneVersion
from upgrader.opennebula.models import Host, Vm

_ALL = frozenset(OneVersion)
_FROM_3_4 = frozenset({OneVersion.V3_4, OneVersion.V3_6})
_ONLY_3_2 = frozenset({OneVersion.V3_2})
_ONLY_3_6 = frozenset({OneVersion.V3_6})
_MAX_IDS_SHOWN = 5
_HINT = "is the endpoint a stock OpenNebula 3.2/3.4/3.6 oned? check `oned -v` on the front-end"


@dataclass(frozen=True, slots=True)
class VersionMarker:
    """An XML fact that only some versions produce, and the objects that show it."""

    versions: frozenset[OneVersion]
    evidence: str


@dataclass(frozen=True, slots=True)
class MethodProbe:
    """Which version-specific methods oned answered (a -506 fault means absent)."""

    system_version: bool
    datastorepool_info: bool
    vmpool_accounting: bool

    def describe(self) -> str:
        """E.g. ``one.datastorepool.info present, one.vmpool.accounting absent``."""
        return (
            f"one.datastorepool.info {_presence(self.datastorepool_info)}, "
            f"one.vmpool.accounting {_presence(self.vmpool_accounting)}"
        )


def _presence(present: bool) -> str:
    return "present" if present else "absent"


def version_from_probe(probe: MethodProbe) -> OneVersion:
    """The version the method set belongs to; OneResponseError if it fits none of 3.2-3.6."""
    if probe.system_version:
        raise OneResponseError(
            "oned has one.system.version, so it is OpenNebula 3.8 or newer, not 3.2/3.4/3.6",
            hint=_HINT,
        )
    if probe.vmpool_accounting and not probe.datastorepool_info:
        raise OneResponseError(
            f"no OpenNebula 3.x has this method set ({probe.describe()})", hint=_HINT
        )
    if probe.vmpool_accounting:
        return OneVersion.V3_6
    return OneVersion.V3_4 if probe.datastorepool_info else OneVersion.V3_2


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(ident) for ident in ids[:_MAX_IDS_SHOWN])
    more = len(ids) - _MAX_IDS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def xml_markers(hosts: Iterable[Host], vms: Iterable[Vm]) -> tuple[VersionMarker, ...]:
    """The version markers in host and VM documents (opennebula-3x.md section 8)."""
    hosts, vms = tuple(hosts), tuple(vms)
    candidates = (
        (
            [host.id for host in hosts if host.tm_mad is not None],
            _ONLY_3_2,
            "host {ids} with <TM_MAD> (3.2 only)",
        ),
        (
            [host.id for host in hosts if host.cluster_id is not None],
            _FROM_3_4,
            "host {ids} with <CLUSTER_ID> (3.4+)",
        ),
        (
            [vm.id for vm in vms if vm.resched is not None],
            _ONLY_3_6,
            "VM {ids} with <RESCHED> (3.6 only)",
        ),
        (
            [vm.id for vm in vms if any(record.ds_id is not None for record in vm.history)],
            _ONLY_3_6,
            "VM {ids} with a history <DS_ID> (3.6 only)",
        ),
    )
    return tuple(
        VersionMarker(versions, what.format(ids=_ids(ids)))
        for ids, versions, what in candidates
        if ids
    )


def reconcile(probe: MethodProbe, markers: Iterable[VersionMarker]) -> OneVersion:
    """The probed version if every XML marker allows it; else OneResponseError naming both."""
    probed = version_from_probe(probe)
    markers = tuple(markers)
    against = [marker for marker in markers if probed not in marker.versions]
    if not against:
        return probed
    allowed = _ALL.intersection(*(marker.versions for marker in markers))
    xml_says = ", ".join(sorted(allowed)) if allowed else "no single version"
    raise OneResponseError(
        f"version probes disagree: the methods say OpenNebula {probed} ({probe.describe()}) "
        f"but the XML says {xml_says} ({'; '.join(marker.evidence for marker in against)})",
        hint="a half-finished upgrade (new oned on an old database, or the reverse)? "
        "compare `onedb version` with `oned -v` on the front-end",
    )
