"""From the cloud's facts and the runbooks to a checked plan, and back from a journal.

``prepare_plan`` asks the pure planner for the plan, stamps its fingerprints (the plan's
identity across environments, and this environment's resume fingerprint) and checks it
against the gates this site knows and the rehearsal rule; ``plan_from_dict`` rebuilds the
plan a run journaled at its start."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from upgrader.config.workspace import Workspace
from upgrader.errors import UsageError
from upgrader.gates.catalogue import build_gates
from upgrader.opennebula import OneClient
from upgrader.plan import rehearsal
from upgrader.plan.facts import gather_facts
from upgrader.plan.model import CloudFacts, Plan, PlannedStep
from upgrader.plan.planner import _digest, build_plan
from upgrader.plan.runbook_model import GateSpec, Runbook
from upgrader.plan.targets import playbook_digests, runbooks_for, storage_hop, target_of
from upgrader.plan.versions import hop_path
from upgrader.run.context import observer


def fingerprints(
    ws: Workspace,
    hops: Sequence[tuple[str, str]],
    target: str,
    runbooks: Mapping[tuple[str, str], Runbook],
) -> tuple[str, str]:
    """(plan identity across environments, resume fingerprint of this environment)."""
    identity = _digest(
        target_of(hops, target),
        [(hop, runbooks[hop].digest) for hop in hops],
        sorted(playbook_digests(ws.site, runbooks).items()),
    )
    inventory = (
        hashlib.sha256(ws.env.inventory.read_bytes()).hexdigest()
        if ws.env.inventory.is_file()
        else ""
    )
    return identity, _digest(identity, ws.env.name, inventory)


def prepare_plan(
    ws: Workspace,
    client: OneClient,
    target: str,
    accepted: Sequence[str] = (),
    without_rehearsal: str | None = None,
    *,
    facts: CloudFacts | None = None,
) -> tuple[Plan, dict[tuple[str, str], Runbook]]:
    """Facts -> plan, checked against the gates this site knows and the rehearsal rule.

    ``facts`` gathered by the caller (a dry run shows the VMs of the very same look)."""
    if facts is None:
        facts = gather_facts(client, ws.env.name, ws.env.inventory)
    move = storage_hop(ws.site, target)
    hops = (move,) if move else hop_path(facts.version, target)
    runbooks = runbooks_for(ws.site, hops)
    plan = build_plan(
        facts,
        target,
        runbooks,
        playbook_digests=playbook_digests(ws.site, runbooks),
        batch_size=ws.env.batch_size,
        accepted=accepted,
        hops=hops if move else None,
    )
    identity, resume = fingerprints(ws, hops, target, runbooks)
    plan = Plan(
        **{
            **{f.name: getattr(plan, f.name) for f in fields(plan)},
            "fingerprint": identity,
            "resume_fingerprint": resume,
        }
    )
    plan = rehearsal.check(
        plan, ws.site.runs_dir, ws.env.requires_rehearsal_on, waived=without_rehearsal
    )
    known = build_gates(client, observer=observer(ws))
    for step in plan.steps:
        for gate in (*step.gates_before, *step.gates_after):
            if gate.name not in known:
                raise UsageError(
                    f"step {step.id} names gate '{gate.name}', which upgrader does "
                    f"not have (known: {', '.join(sorted(known))})"
                )
    return plan, runbooks


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Rebuild the plan journaled at run start."""
    steps = []
    for raw in data["steps"]:
        s = dict(raw)
        for key in ("gates_before", "gates_after"):
            s[key] = tuple(GateSpec(g["name"], g.get("params", {})) for g in s[key])
        s["hosts"] = tuple(s["hosts"])
        steps.append(PlannedStep(**s))
    values = {f.name: data[f.name] for f in fields(Plan) if f.name in data}
    values["steps"] = tuple(steps)
    values["hops"] = tuple(tuple(h) for h in data["hops"])
    values["findings"] = ()
    return Plan(**values)
