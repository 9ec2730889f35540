"""How long each step of a plan will take: the runbook's figure, or what earlier runs measured.

The runbook gives every step an estimate (with per-host and per-VM parts, see
``planner._estimate``). Once a step has run, its journal holds what it really took on what it
touched (``STEP_STARTED.extent``, ``STEP_FINISHED.duration``). The next plan of that step uses
the measurement instead, scaled to what the step touches now: a staging rehearsal drained a
host of three VMs in 40 s, so production's host of twelve is given 160 s. Measurements of the
environment the site rehearses on are preferred; of several, the slowest recent one counts,
because a window is planned on the pessimistic side.

``measured`` reads the journals (I/O); ``refine`` is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from upgrader.errors import JournalError
from upgrader.journal.store import EventType, read_events
from upgrader.plan.model import Plan, PlannedStep

RECENT = 3  # measurements of a step that count (the newest)


@dataclass(frozen=True)
class Sample:
    """One measured run of a step: how long, on how much, where and when."""

    duration: float
    hosts: int
    vms: int
    environment: str
    run_id: str


@dataclass(frozen=True)
class Estimate:
    """A step's expected duration and where the figure comes from."""

    seconds: float
    source: str  # "runbook" or "measured in <run-id> (<environment>), scaled ..."


def step_key(step_id: str) -> str:
    """``3.4-3.6/drain@2`` -> ``3.4-3.6/drain``: the step, whatever its batch."""
    return step_id.partition("@")[0]


def measured(runs_dir: Path, *, exclude: str | None = None) -> dict[str, list[Sample]]:
    """Every successful step duration of the real runs in ``runs_dir``, oldest run first.

    Dry runs measured nothing; a journal that cannot be read is passed over (``status``
    reports it); ``exclude`` is the run being planned, if any."""
    out: dict[str, list[Sample]] = {}
    for journal in sorted(runs_dir.glob("*/journal.jsonl")):
        run_id = journal.parent.name
        if run_id == exclude:
            continue
        try:
            events = read_events(journal)
        except JournalError:
            continue
        if not events or events[0].type != EventType.RUN_STARTED or events[0].get("dry_run"):
            continue
        environment = str(events[0].get("environment", ""))
        extents: dict[str, Mapping[str, int]] = {}
        for e in events:
            if e.type == EventType.STEP_STARTED:
                extents[str(e.get("step"))] = e.get("extent") or {}
            elif e.type == EventType.STEP_FINISHED and e.get("duration") is not None:
                step = str(e.get("step"))
                extent = extents.get(step, {})
                out.setdefault(step_key(step), []).append(
                    Sample(
                        float(e.get("duration")),
                        int(extent.get("hosts", 0)),
                        int(extent.get("vms", 0)),
                        environment,
                        run_id,
                    )
                )
    return out


def _scaled(sample: Sample, step: PlannedStep) -> float:
    """``sample`` scaled to what ``step`` touches: by the VMs when either run had any (the
    work of a drain grows with them; the +1 keeps an empty host's fixed cost), else by the
    hosts."""
    now = step.extent or {}
    if sample.vms or now.get("vms", 0):
        ratio = (now.get("vms", 0) + 1) / (sample.vms + 1)
    elif sample.hosts and now.get("hosts", 0):
        ratio = now["hosts"] / sample.hosts
    else:
        ratio = 1.0
    return sample.duration * ratio


def refine(
    plan: Plan, samples: Mapping[str, Sequence[Sample]], rehearsal_env: str | None = None
) -> dict[str, Estimate]:
    """Each step's estimate: the slowest of its newest measurements (of the rehearsal
    environment when it has any), scaled to this plan; the runbook's where nothing was
    measured."""
    out: dict[str, Estimate] = {}
    for step in plan.steps:
        found = list(samples.get(step_key(step.id), ()))
        preferred = [s for s in found if rehearsal_env and s.environment == rehearsal_env]
        recent = (preferred or found)[-RECENT:]
        if not recent:
            out[step.id] = Estimate(step.estimate, "runbook")
            continue
        worst = max(recent, key=lambda s: _scaled(s, step))
        seconds = round(_scaled(worst, step), 1)
        out[step.id] = Estimate(
            seconds,
            f"measured {worst.duration:.0f} s in {worst.run_id} "
            f"({worst.hosts} hosts, {worst.vms} VMs), scaled",
        )
    return out


def unit_of(plan: Plan, step_id: str) -> tuple[PlannedStep, ...]:
    """The steps that must run in the same window as ``step_id`` when it is the first of
    them: one batch of a host sequence (drain, upgrade, enable a host), a
    ``sequence_start``..``sequence_end`` run of steps, or the step alone. Empty when the step
    is inside such a unit (it was judged with the unit's first step)."""
    steps = list(plan.steps)
    i = next(n for n, s in enumerate(steps) if s.id == step_id)
    for start, end in units(plan):
        if start == i:
            return tuple(steps[start:end])
        if start < i < end:
            return ()
    return (steps[i],)


def units(plan: Plan) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of the plan's multi-step units (see ``unit_of``)."""
    steps = list(plan.steps)
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        if step.sequence_start and not step.hosts:
            end = next((n for n in range(i, len(steps)) if steps[n].sequence_end), len(steps) - 1)
            out.append((i, end + 1))
            i = end + 1
        elif "@" in step.id:
            batch = step.id.rpartition("@")[2]
            end = i + 1
            while (
                end < len(steps)
                and steps[end].hop == step.hop
                and steps[end].id.rpartition("@")[2] == batch
                and "@" in steps[end].id
                and not steps[end].sequence_start
            ):
                end += 1
            out.append((i, end))
            i = end
        else:
            i += 1
    return out
