"""Verdicts on the agents running on every host: libvirtd-alive, puppet-held, puppet-released.

Each function takes an observation (a frozen dataclass of plain data, defined here next to
the verdict that consumes it) plus the gate's parameters, and returns a ``GateResult``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import FAIL, INCONCLUSIVE, PASS, listing, result

# ------------------------------------------------------------------ libvirtd


@dataclass(frozen=True)
class LibvirtdStatus:
    """libvirtd on one hypervisor; ``running`` None when the host could not be read."""

    host: str
    running: bool | None
    init_status: str = ""  # e.g. "libvirtd is not running" or `service libvirtd status`
    error: str = ""


@dataclass(frozen=True)
class LibvirtdObservation:
    hosts: tuple[LibvirtdStatus, ...]


def libvirtd_alive(obs: LibvirtdObservation, *, hosts: Sequence[str] = ()) -> GateResult:
    """``libvirtd-alive``: libvirtd runs on every hypervisor (and on every one of ``hosts``)."""
    gate = "libvirtd-alive"
    down = [{"host": h.host, "status": h.init_status} for h in obs.hosts if h.running is False]
    unread = [
        {"host": h.host, "error": h.error or "no answer"} for h in obs.hosts if h.running is None
    ]
    seen = {h.host for h in obs.hosts}
    missing = [name for name in hosts if name not in seen]
    details = {
        "hosts": {h.host: h.running for h in obs.hosts},
        "down": down,
        "unreadable": unread,
        "missing": missing,
    }
    if down:
        who = listing(f"{d['host']}" + (f" ({d['status']})" if d["status"] else "") for d in down)
        return result(
            gate,
            FAIL,
            f"libvirtd not running on {who}",
            "start libvirtd on the named hosts (`service libvirtd start`) and read "
            "its log; VMs there keep running but oned cannot manage them",
            **details,
        )
    if unread or missing or not obs.hosts:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        parts += [f"no answer from {name}" for name in missing]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no hypervisor was checked",
            "check ssh to the named hosts",
            **details,
        )
    return result(gate, PASS, f"libvirtd running on {len(obs.hosts)} hosts", **details)


# ------------------------------------------------------------------ puppet


@dataclass(frozen=True)
class PuppetAgent:
    """The Puppet agent on one host; ``disabled`` None when the host could not be read."""

    host: str
    disabled: bool | None
    reason: str = ""  # disabled_message of agent_disabled.lock
    run_in_progress: bool = False  # agent_catalog_run.lock present
    error: str = ""


@dataclass(frozen=True)
class PuppetObservation:
    agents: tuple[PuppetAgent, ...]


def _puppet_details(obs: PuppetObservation) -> dict[str, object]:
    return {
        "agents": {
            a.host: (
                "unknown"
                if a.disabled is None
                else f"disabled: {a.reason}"
                if a.disabled
                else "enabled"
            )
            for a in obs.agents
        }
    }


def puppet_held(obs: PuppetObservation, *, run_id: str) -> GateResult:
    """``puppet-held``: the agent is disabled on every host with a reason naming ``run_id``."""
    gate = "puppet-held"
    enabled = [a.host for a in obs.agents if a.disabled is False]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and run_id not in a.reason
    ]
    unread = [
        {"host": a.host, "error": a.error or "no answer"} for a in obs.agents if a.disabled is None
    ]
    running = [a.host for a in obs.agents if a.disabled and a.run_in_progress]
    details = {
        **_puppet_details(obs),
        "enabled": enabled,
        "held_for_other": other,
        "unreadable": unread,
        "run_in_progress": running,
        "run_id": run_id,
    }
    if enabled or other:
        parts = [f"agent enabled on {listing(enabled)}"] if enabled else []
        parts += [f"{o['host']} held for another reason: {o['reason'] or '(none)'}" for o in other]
        return result(
            gate,
            FAIL,
            "; ".join(parts),
            f"run `puppet agent --disable 'upgrader run {run_id}'` on the enabled "
            "hosts; for hosts held by someone else, ask who and why before the "
            "window (their hold would be lifted with ours)",
            **details,
        )
    if unread or running or not obs.agents:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        parts += [f"a Puppet run is still in progress on {h}" for h in running]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no host was checked",
            "wait for the Puppet run to finish (agent_catalog_run.lock goes away); "
            "check ssh to unreadable hosts",
            **details,
        )
    return result(gate, PASS, f"Puppet held for run {run_id} on {len(obs.agents)} hosts", **details)


def puppet_released(obs: PuppetObservation, *, run_id: str = "") -> GateResult:
    """``puppet-released``: the agent is enabled on every host."""
    gate = "puppet-released"
    ours = [a.host for a in obs.agents if a.disabled and run_id and run_id in a.reason]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and a.host not in ours
    ]
    unread = [
        {"host": a.host, "error": a.error or "no answer"} for a in obs.agents if a.disabled is None
    ]
    details = {
        **_puppet_details(obs),
        "still_held": ours,
        "held_for_other": other,
        "unreadable": unread,
    }
    if ours or other:
        parts = [f"still held by this run on {listing(ours)}"] if ours else []
        parts += [f"{o['host']} disabled: {o['reason'] or '(no reason)'}" for o in other]
        return result(
            gate,
            FAIL,
            "; ".join(parts),
            "run `puppet agent --enable` on the named hosts (for holds that are not "
            "upgrader's, ask their owner first)",
            **details,
        )
    if unread or not obs.agents:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no host was checked",
            "check ssh to the named hosts",
            **details,
        )
    return result(gate, PASS, f"Puppet enabled on {len(obs.agents)} hosts", **details)
