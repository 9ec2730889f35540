"""A round of gates gathers from the hosts once, and only the groups its gates read; a gate
that looks again gathers afresh only what it reads (the gather play is a run's main cost)."""

from __future__ import annotations

from pathlib import Path

from upgrader.gates.catalogue import HOST_PARTS, GateSet
from upgrader.gates.gather import (
    AGENTS,
    FRONTENDS,
    HYPERVISORS,
    NFS_SERVERS,
    Gathered,
    HostObserver,
)


class CountingObserver(HostObserver):
    """The real round logic; the play replaced by a record of what was asked of it."""

    def __init__(self) -> None:
        super().__init__("inventory.yml", Path("playbooks"))
        self.asked: list[frozenset[str]] = []

    def _run(self, parts: frozenset[str]) -> Gathered:
        self.asked.append(parts)
        n = len(self.asked)
        answer = {"pass": n, "agents": AGENTS in parts}
        return Gathered(
            hypervisors={"h1": answer} if HYPERVISORS in parts else {},
            frontends={"f1": answer} if FRONTENDS in parts else {},
            nfs_servers={"nfs": answer} if NFS_SERVERS in parts else {},
        )


def round_of(observer: CountingObserver, *gates: str) -> None:
    GateSet({}, observer).new_round(gates)


def test_a_round_gathers_once_for_all_its_gates_and_only_their_groups() -> None:
    obs = CountingObserver()
    round_of(obs, "no-duplicate-vms", "libvirtd-alive", "vms-settled")
    first = obs.gather(HOST_PARTS["no-duplicate-vms"])
    again = obs.gather(HOST_PARTS["libvirtd-alive"])
    assert obs.asked == [frozenset({HYPERVISORS})]
    assert first is again and first.frontends == {} and first.nfs_servers == {}


def test_a_gate_outside_the_announced_round_gathers_what_is_missing_only() -> None:
    obs = CountingObserver()
    round_of(obs, "pacemaker-healthy")
    obs.gather(HOST_PARTS["pacemaker-healthy"])
    seen = obs.gather(HOST_PARTS["datastores-healthy"])
    assert obs.asked == [frozenset({FRONTENDS}), frozenset({HYPERVISORS, NFS_SERVERS})]
    assert seen.frontends["f1"]["pass"] == 1 and seen.hypervisors["h1"]["pass"] == 2


def test_a_waiting_gate_looks_again_at_its_groups_and_keeps_the_others() -> None:
    obs = CountingObserver()
    round_of(obs, "no-duplicate-vms", "pacemaker-healthy")
    obs.gather(HOST_PARTS["no-duplicate-vms"])
    seen = obs.gather(HOST_PARTS["pacemaker-healthy"], fresh=True)
    assert obs.asked == [frozenset({HYPERVISORS, FRONTENDS}), frozenset({FRONTENDS})]
    assert seen.hypervisors["h1"]["pass"] == 1 and seen.frontends["f1"]["pass"] == 2


def test_the_agents_are_checked_only_for_fencing_ready_and_never_taken_from_a_later_look() -> None:
    obs = CountingObserver()
    round_of(obs, "pacemaker-healthy", "fencing-ready")
    assert obs.gather(HOST_PARTS["fencing-ready"]).frontends["f1"]["agents"] is True
    obs.gather(HOST_PARTS["pacemaker-healthy"], fresh=True)  # front ends again, no agents
    seen = obs.gather(HOST_PARTS["fencing-ready"])
    assert obs.asked == [
        frozenset({FRONTENDS, AGENTS}),
        frozenset({FRONTENDS}),
        frozenset({FRONTENDS, AGENTS}),
    ]
    assert seen.frontends["f1"]["agents"] is True


def test_a_new_round_looks_again() -> None:
    obs = CountingObserver()
    round_of(obs, "libvirtd-alive")
    obs.gather(HOST_PARTS["libvirtd-alive"])
    round_of(obs, "libvirtd-alive")
    obs.gather(HOST_PARTS["libvirtd-alive"])
    assert len(obs.asked) == 2
