"""Verdicts on the agents every hypervisor runs: libvirtd-alive, puppet-held, puppet-released.

Pure: no I/O, no clock. A host that did not answer is unreadable (inconclusive), never
healthy; the Puppet gates read the reason in the agent's disable lock, which names the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import CheckOutcome, evidence, judged, listing

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


def _waited(parts: list[str], checked: object, nobody: str) -> tuple[str, ...]:
    """The lines a gate waits for: ``parts``, or ``nobody`` when no host was ``checked``."""
    return tuple(parts) or ((nobody,) if not checked else ())


def _could_not_read(unread: list[dict[str, str]]) -> list[str]:
    return [f"could not read {u['host']}: {u['error']}" for u in unread]


def _down_line(row: dict[str, str]) -> str:
    return row["host"] + (f" ({row['status']})" if row["status"] else "")


def libvirtd_alive(obs: LibvirtdObservation, *, hosts: Sequence[str] = ()) -> GateResult:
    """``libvirtd-alive``: libvirtd runs on every hypervisor (and on every one of ``hosts``)."""
    down, unchecked = _libvirtd_down(obs), _libvirtd_unchecked(obs, hosts)
    return judged(
        "libvirtd-alive",
        (down, unchecked),
        {"hosts": {h.host: h.running for h in obs.hosts}, **evidence(down, unchecked)},
        passed=f"libvirtd running on {len(obs.hosts)} hosts",
        fail_hint="start libvirtd on the named hosts (`service libvirtd start`) and read "
        "its log; VMs there keep running but oned cannot manage them",
        wait_hint="check ssh to the named hosts",
    )


def _libvirtd_down(obs: LibvirtdObservation) -> CheckOutcome:
    down = [{"host": h.host, "status": h.init_status} for h in obs.hosts if h.running is False]
    if not down:
        return CheckOutcome({"down": down})
    return CheckOutcome(
        {"down": down}, (f"libvirtd not running on {listing(map(_down_line, down))}",)
    )


def _libvirtd_unchecked(obs: LibvirtdObservation, hosts: Sequence[str]) -> CheckOutcome:
    unread = [
        {"host": h.host, "error": h.error or "no answer"} for h in obs.hosts if h.running is None
    ]
    seen = {h.host for h in obs.hosts}
    missing = [name for name in hosts if name not in seen]
    parts = _could_not_read(unread)
    parts += [f"no answer from {name}" for name in missing]
    return CheckOutcome(
        {"unreadable": unread, "missing": missing},
        waiting=_waited(parts, obs.hosts, "no hypervisor was checked"),
    )


# ------------------------------------------------------------------ puppet


@dataclass(frozen=True)
class PuppetAgent:
    """The Puppet agent on one host; ``disabled`` None when the host could not be read."""

    host: str
    disabled: bool | None
    # the hold's reason: disabled_message of Puppet 3.x's agent_disabled.lock, or of the note
    # the hold keeps next to Puppet 2.7's puppetdlock, which holds no message
    reason: str = ""
    run_in_progress: bool = False  # a run lock names a live process
    error: str = ""


@dataclass(frozen=True)
class PuppetObservation:
    agents: tuple[PuppetAgent, ...]


NOBODY = "no host was checked"


def _agent_state(a: PuppetAgent) -> str:
    if a.disabled is None:
        return "unknown"
    return f"disabled: {a.reason}" if a.disabled else "enabled"


def _puppet_details(obs: PuppetObservation) -> dict[str, object]:
    return {"agents": {a.host: _agent_state(a) for a in obs.agents}}


def _unread(obs: PuppetObservation) -> list[dict[str, str]]:
    return [
        {"host": a.host, "error": a.error or "no answer"} for a in obs.agents if a.disabled is None
    ]


def puppet_held(obs: PuppetObservation, *, run_id: str) -> GateResult:
    """``puppet-held``: the agent is disabled on every host with a reason naming ``run_id``."""
    held, busy = _not_held(obs, run_id), _puppet_busy(obs)
    return judged(
        "puppet-held",
        (held, busy),
        {**_puppet_details(obs), **evidence(held, busy), "run_id": run_id},
        passed=f"Puppet held for run {run_id} on {len(obs.agents)} hosts",
        fail_hint=f"run `puppet agent --disable 'upgrader run {run_id}'` on the enabled "
        "hosts; for hosts held by someone else, ask who and why before the "
        "window (their hold would be lifted with ours)",
        wait_hint="wait for the Puppet run to finish (its run lock, agent_catalog_run.lock "
        "or Puppet 2.7's puppetdlock, goes away); check ssh to unreadable hosts",
    )


def _not_held(obs: PuppetObservation, run_id: str) -> CheckOutcome:
    """Agents enabled, or disabled for another reason than this run."""
    enabled = [a.host for a in obs.agents if a.disabled is False]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and run_id not in a.reason
    ]
    problems = [f"agent enabled on {listing(enabled)}"] if enabled else []
    problems += [f"{o['host']} held for another reason: {o['reason'] or '(none)'}" for o in other]
    return CheckOutcome({"enabled": enabled, "held_for_other": other}, tuple(problems))


def _puppet_busy(obs: PuppetObservation) -> CheckOutcome:
    """Agents that could not be read, or still in a Puppet run."""
    unread = _unread(obs)
    running = [a.host for a in obs.agents if a.disabled and a.run_in_progress]
    parts = _could_not_read(unread)
    parts += [f"a Puppet run is still in progress on {h}" for h in running]
    return CheckOutcome(
        {"unreadable": unread, "run_in_progress": running},
        waiting=_waited(parts, obs.agents, NOBODY),
    )


def puppet_released(obs: PuppetObservation, *, run_id: str = "") -> GateResult:
    """``puppet-released``: the agent is enabled on every host."""
    held = _still_held(obs, run_id)
    unread = _unread(obs)
    parts = _could_not_read(unread)
    return judged(
        "puppet-released",
        (held, CheckOutcome(waiting=_waited(parts, obs.agents, NOBODY))),
        {**_puppet_details(obs), **held.details, "unreadable": unread},
        passed=f"Puppet enabled on {len(obs.agents)} hosts",
        fail_hint="run `puppet agent --enable` on the named hosts (for holds that are not "
        "upgrader's, ask their owner first)",
        wait_hint="check ssh to the named hosts",
    )


def _held_by(agent: PuppetAgent, run_id: str) -> bool:
    """Whether the agent is disabled with a reason naming ``run_id`` (an empty one: never)."""
    return bool(agent.disabled and run_id and run_id in agent.reason)


def _still_held(obs: PuppetObservation, run_id: str) -> CheckOutcome:
    """Agents still disabled: by this run (its reason names ``run_id``), or by another."""
    ours = [a.host for a in obs.agents if _held_by(a, run_id)]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and a.host not in ours
    ]
    problems = [f"still held by this run on {listing(ours)}"] if ours else []
    problems += [f"{o['host']} disabled: {o['reason'] or '(no reason)'}" for o in other]
    return CheckOutcome({"still_held": ours, "held_for_other": other}, tuple(problems))
