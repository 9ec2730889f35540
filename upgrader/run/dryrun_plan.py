"""The pure half of a dry run: which check-mode plays stand for which steps, what the run
would do to the VMs, and the line that ends the dry run. Values in, values out; no I/O.

A dry run cannot run the plan's steps, so it predicts them from the cloud as it is now:
every active VM of the 3.2 -> 3.4 hop is shut down (onedb refuses them) and re-created; a
host's VMs are live-migrated off it before its upgrade, each to the eligible host with the
most free memory (``actions.placement``, as ``drain-host`` chooses), and moved back after.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upgrader.actions import placement
from upgrader.gates.model import PASS
from upgrader.plan.model import CloudFacts, Finding, Plan, VmFact
from upgrader.plan.runbook_model import GateSpec

SHUTDOWN_ACTION = "shutdown-vms"
DRAIN_ACTION = "drain-host"
RECREATE_ACTION = "recreate-vms"


# ------------------------------------------------------------------ check-mode plays
@dataclass(frozen=True)
class CheckGroup:
    """One check-mode run of a playbook standing for every step of a hop that runs it with
    the same vars; ``limit`` is the union of their host batches (None: the playbook's own
    hosts, as a whole-cloud step runs it)."""

    index: int
    hop: str
    playbook: str
    vars: Mapping[str, Any]
    steps: tuple[str, ...]
    limit: str | None

    @property
    def label(self) -> str:
        """The hop and the runbook steps it stands for: ``3.2-3.4/upgrade-node``."""
        names = dict.fromkeys(s.split("/", 1)[-1].split("@", 1)[0] for s in self.steps)
        return f"{self.hop}/{'+'.join(names)}"


def check_groups(plan: Plan) -> tuple[CheckGroup, ...]:
    """The distinct playbook steps of ``plan``, in plan order: one per (hop, playbook, vars)."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for step in plan.steps:
        if step.kind != "playbook" or not step.playbook:
            continue
        key = (step.hop, step.playbook, json.dumps(dict(step.vars), sort_keys=True, default=str))
        groups.setdefault(key, []).append(step)
    out = []
    for n, ((hop, playbook, _), steps) in enumerate(groups.items(), 1):
        whole = any(s.limit is None for s in steps)
        hosts = sorted({h for s in steps for h in s.hosts})
        out.append(
            CheckGroup(
                n,
                hop,
                playbook,
                dict(steps[0].vars),
                tuple(s.id for s in steps),
                None if whole else ",".join(hosts),
            )
        )
    return tuple(out)


def skipped_gates(plan: Plan) -> tuple[int, tuple[str, ...]]:
    """How many gate evaluations a dry run leaves out (all but the first step's gates_before),
    and the names among them."""
    specs: list[GateSpec] = []
    for n, step in enumerate(plan.steps):
        specs += [*(step.gates_before if n else ()), *step.gates_after]
    return len(specs), tuple(sorted({s.name for s in specs}))


# ------------------------------------------------------------------------------ VMs
@dataclass(frozen=True)
class ShutDownVm:
    """A VM the 3.2 -> 3.4 hop brings to DONE and re-creates on its host."""

    id: int
    name: str
    owner: str
    host: str | None
    state: str
    nonpersistent_disks: tuple[str, ...]  # "disk 0 (ttylinux)": changes since boot are lost


@dataclass(frozen=True)
class Move:
    """One live migration of a drain: ``to`` None when no eligible host has room (``why``)."""

    id: int
    name: str
    owner: str
    source: str
    to: str | None
    why: str = ""


@dataclass(frozen=True)
class Drain:
    """The VMs one ``drain-host`` step live-migrates off its batch (and move-back returns)."""

    step: str
    hop: str
    hosts: tuple[str, ...]
    moves: tuple[Move, ...]


@dataclass(frozen=True)
class VmImpact:
    """What the plan does to the VMs: shut down for onedb, live-migrated per drain."""

    shut_down: tuple[ShutDownVm, ...]
    shut_down_hop: str | None
    drains: tuple[Drain, ...]
    ids_change: bool  # VMs re-created before a drain get new ids: the drains' ids are today's


def _nonpersistent(vm: VmFact) -> tuple[str, ...]:
    return tuple(
        f"disk {d.disk_id}" + (f" ({d.image})" if d.image else "")
        for d in vm.disks
        if not d.persistent
    )


def vm_impact(
    plan: Plan,
    facts: CloudFacts,
    capacity: Sequence[Any],
    needs: Mapping[int, placement.Need],
) -> VmImpact:
    """The VMs each VM-moving step of ``plan`` touches, predicted from ``facts``.

    ``capacity`` are the hosts as oned reports them (``opennebula.Host``: state and
    HOST_SHARE), ``needs`` each VM's MEMORY and CPU. Each drain starts from the VMs where they
    are now: the move-back of the batch before returns them first.
    """
    shutdown = next((s for s in plan.steps if s.action == SHUTDOWN_ACTION), None)
    shut_down = tuple(
        ShutDownVm(vm.id, vm.name, vm.owner, vm.host, _state(vm), _nonpersistent(vm))
        for vm in sorted(facts.vms, key=lambda v: v.id)
        if shutdown is not None and vm.state != "DONE"
    )
    drains = []
    for step in plan.steps:
        if step.action != DRAIN_ACTION:
            continue
        reserved: dict[int, placement.Need] = {}
        moves = []
        on_batch = [vm for vm in facts.vms if vm.state == "ACTIVE" and vm.host in step.hosts]
        for vm in sorted(on_batch, key=lambda v: (v.host or "", v.id)):
            moves.append(_move(vm, step.hosts, capacity, needs, reserved))
        drains.append(Drain(step.id, step.hop, step.hosts, tuple(moves)))
    recreate = next((n for n, s in enumerate(plan.steps) if s.action == RECREATE_ACTION), None)
    ids_change = recreate is not None and any(
        n > recreate and s.action == DRAIN_ACTION for n, s in enumerate(plan.steps)
    )
    return VmImpact(
        shut_down, shutdown.hop if shutdown is not None else None, tuple(drains), ids_change
    )


def _state(vm: VmFact) -> str:
    return vm.lcm_state if vm.state == "ACTIVE" else vm.state


def _move(
    vm: VmFact,
    batch: Sequence[str],
    capacity: Sequence[Any],
    needs: Mapping[int, placement.Need],
    reserved: dict[int, placement.Need],
) -> Move:
    source = vm.host or "-"
    if vm.lcm_state != "RUNNING":
        why = f"{vm.lcm_state}: only a RUNNING VM can be live-migrated"
    else:
        need = needs.get(vm.id, placement.Need(0, 0))
        target = placement.place(capacity, batch, need, reserved)
        if target is not None:
            return Move(vm.id, vm.name, vm.owner, source, target.name)
        why = f"no host outside {', '.join(batch)} has room for it"
    return Move(vm.id, vm.name, vm.owner, source, None, why)


# ---------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class Verdict:
    """How the real run would fare: exit code (0 it could start, 5 an inhibitor stops it, 1 a
    preflight gate fails), a word for the journal and the line that ends the dry run."""

    exit_code: int
    word: str  # "ready" | "inhibited" | "preflight-failed"
    line: str
    hint: str = ""


def real_command(
    target: str,
    *,
    stage: bool = False,
    accept: Sequence[str] = (),
    without_rehearsal: str | None = None,
    take_over: bool = False,
) -> str:
    """The ``upgrader run`` command line the dry run stands for."""
    words = ["upgrader", "run", target, *(["--stage"] if stage else [])]
    for key in accept:
        words += ["--accept", key]
    if without_rehearsal:
        words += ["--without-rehearsal", without_rehearsal]
    if take_over:
        words.append("--take-over")
    return shlex.join(words)


def verdict(
    inhibitors: Sequence[Finding],
    preflight: Sequence[Any],
    command: str,
    lock_note: str | None = None,
) -> Verdict:
    """The dry run's verdict; ``preflight`` are the GateResults of the first step's gates.

    An inhibitor wins over a failing gate: the real run refuses before its first gate."""
    failed = [r for r in preflight if r.verdict != PASS]
    head = "dry run: nothing was changed; "
    if inhibitors:
        first = inhibitors[0]
        more = f" (and {len(inhibitors) - 1} more)" if len(inhibitors) > 1 else ""
        gates = f"; preflight gate {failed[0].gate} fails too" if failed else ""
        return Verdict(
            5,
            "inhibited",
            f"{head}inhibitor {first.key}{more} stops `{command}`: {first.remediation}{gates}",
            first.remediation,
        )
    if failed:
        gate = failed[0]
        summary = str(gate.evidence.get("summary", "")).strip()
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        hint = f" (hint: {gate.hint})" if gate.hint else ""
        return Verdict(
            1,
            "preflight-failed",
            f"{head}`{command}` would stop at its preflight: gate {gate.gate}{more} "
            f"{gate.verdict}" + (f": {summary}" if summary else "") + hint,
            gate.hint,
        )
    lock = f" ({lock_note})" if lock_note else ""
    return Verdict(0, "ready", f"{head}`{command}` does it{lock}")
