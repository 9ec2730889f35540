"""What a gate is and what it says: the types every gate, verdict and caller shares.

Pure: no I/O, no Ansible, no client, so ``import upgrader.gates.verdicts`` loads none of them.

- ``Verdict``, ``GateResult``: what a gate says.
- ``Gate``: a check a step names; ``ComparingGate``: one that compares before and after a step
  (the executor takes its ``snapshot`` before the step and hands it back as ``before``).
- ``Gates``: the gates of one cloud, with ``new_round`` (the next gates look at the hosts again).
- ``Gathered``, ``Observer``: what the gather play found on the hosts, and who runs it
  (``gather.HostObserver``; tests and benchmarks hand in their own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from upgrader.compat import StrEnum

if TYPE_CHECKING:
    from upgrader.plan.model import PlannedStep
    from upgrader.plan.runbook_model import GateSpec


class Verdict(StrEnum):
    """A gate's verdict; a ``str``, so journals and JSON carry the plain word."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict with what it saw and what to do about a failure."""

    gate: str
    verdict: Verdict
    evidence: Mapping[str, Any]
    hint: str = ""


class Gate(Protocol):
    """A read-only check: ``check(spec, step) -> GateResult`` (it may wait, within its budget)."""

    def __call__(self, spec: GateSpec, step: PlannedStep) -> GateResult: ...


Snapshot = list[dict[str, Any]]  # JSON-ready: the executor journals it


@runtime_checkable
class ComparingGate(Protocol):
    """A gate that compares before and after a step (``vms-unchanged``): the executor takes
    ``snapshot`` before the step (and journals it), then calls the gate with it as ``before``.
    Called without ``before`` it is inconclusive and says why."""

    def snapshot(self, spec: GateSpec, step: PlannedStep) -> Snapshot: ...

    def __call__(
        self, spec: GateSpec, step: PlannedStep, before: Snapshot | None = None
    ) -> GateResult: ...


class Gates(Protocol):
    """The gates of one cloud by name (a read-only mapping) that look at the hosts in rounds."""

    def __getitem__(self, name: str) -> Gate: ...

    def __iter__(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, name: object) -> bool: ...

    def get(self, name: str) -> Gate | None: ...

    def new_round(self, names: Iterable[str] = ()) -> None:
        """The next gates (``names``, when known) look at the hosts again, in one gather."""


# ------------------------------------------------------------------ the hosts' side

HostData = Mapping[str, Any] | None  # what a host reported; None: it did not answer

# The parts of the gather play: each group's play runs only when a gate of the round needs
# it; the agents' checks (the slowest question to the front ends) only for fencing-ready.
HYPERVISORS, FRONTENDS, NFS_SERVERS, AGENTS = "hypervisors", "frontends", "nfs_servers", "agents"
GROUPS = (HYPERVISORS, FRONTENDS, NFS_SERVERS)
ALL_PARTS = frozenset({*GROUPS, AGENTS})


@dataclass(frozen=True)
class Gathered:
    """One pass of the gather play: per group, host -> what it reported (None: no answer)."""

    hypervisors: Mapping[str, HostData]
    frontends: Mapping[str, HostData] = field(default_factory=dict)
    nfs_servers: Mapping[str, HostData] = field(default_factory=dict)

    def group(self, name: str) -> Mapping[str, HostData]:
        """The answers of one of ``GROUPS``."""
        return {
            HYPERVISORS: self.hypervisors,
            FRONTENDS: self.frontends,
            NFS_SERVERS: self.nfs_servers,
        }[name]

    def updated(self, fresh: Gathered, groups: Iterable[str]) -> Gathered:
        """These answers, with ``groups`` taken from ``fresh`` instead."""
        taken = frozenset(groups)

        def pick(name: str) -> Mapping[str, HostData]:
            return (fresh if name in taken else self).group(name)

        return Gathered(pick(HYPERVISORS), pick(FRONTENDS), pick(NFS_SERVERS))


class Observer(Protocol):
    """Looks at the hosts (the gather play) once a round, for every gate of the round."""

    def new_round(self, parts: frozenset[str] = frozenset()) -> None:
        """Forget the last gather; the round's first gather covers ``parts`` too."""

    def gather(self, parts: frozenset[str] = ALL_PARTS, *, fresh: bool = False) -> Gathered:
        """This round's answers for ``parts`` (looked at again for all of them if ``fresh``)."""
