"""The pure half of a dry run: one check per distinct playbook step, the drains' predicted
targets (each move takes room the next one no longer has) and the verdict's precedence."""

from __future__ import annotations

from types import SimpleNamespace

from upgrader.actions.placement import Need
from upgrader.gates.model import GateResult
from upgrader.opennebula.enums import HostState
from upgrader.plan.model import CloudFacts, Finding, HostFact, Plan, PlannedStep, VmFact
from upgrader.plan.runbook_model import GateSpec
from upgrader.run.dryrun_plan import check_groups, skipped_gates, verdict, vm_impact


def step(
    sid: str,
    kind: str = "playbook",
    *,
    playbook: str | None = "p.yml",
    action: str | None = None,
    hosts: tuple[str, ...] = (),
    vars_: dict | None = None,
    before: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
) -> PlannedStep:
    hop, name = sid.split("/")
    return PlannedStep(
        sid,
        hop,
        name.split("@")[0],
        name,
        kind,
        playbook,
        action,
        "all",
        hosts,
        ",".join(hosts) or None,
        60.0,
        True,
        None,
        False,
        tuple(GateSpec(g, {}) for g in before),
        tuple(GateSpec(g, {}) for g in after),
        vars=vars_ or {},
    )


def plan_of(*steps: PlannedStep) -> Plan:
    return Plan(
        "production",
        "3.2",
        "3.6",
        (("3.2", "3.4"), ("3.4", "3.6")),
        steps,
        (),
        None,
        0.0,
        "f" * 64,
        "r" * 64,
    )


def test_a_playbook_is_checked_once_per_hop_and_vars_and_once_over_all_its_hosts():
    plan = plan_of(
        step("3.2-3.4/hold", before=("oned-reachable",), after=("puppet-held",)),
        step("3.2-3.4/node@1", hosts=("h1",), vars_={"v": 1}, after=("hosts-monitored",)),
        step("3.2-3.4/drain@1", "action", playbook=None, action="drain-host", hosts=("h1",)),
        step("3.2-3.4/node@2", hosts=("h2",), vars_={"v": 1}, after=("hosts-monitored",)),
        step("3.2-3.4/release", vars_={"hold": False}),
        step("3.4-3.6/hold", before=("oned-version",)),
    )
    groups = check_groups(plan)
    assert [(g.label, g.steps, g.limit) for g in groups] == [
        ("3.2-3.4/hold", ("3.2-3.4/hold",), None),
        ("3.2-3.4/node", ("3.2-3.4/node@1", "3.2-3.4/node@2"), "h1,h2"),
        ("3.2-3.4/release", ("3.2-3.4/release",), None),
        ("3.4-3.6/hold", ("3.4-3.6/hold",), None),
    ]
    assert skipped_gates(plan) == (4, ("hosts-monitored", "oned-version", "puppet-held"))


def host(hid: int, name: str, free_mb: int, state: HostState = HostState.MONITORED):
    share = SimpleNamespace(
        max_mem=free_mb * 1024, mem_usage=0, max_cpu=400, cpu_usage=0, running_vms=0
    )
    return SimpleNamespace(id=hid, name=name, state=state, share=share)


def test_a_drain_spreads_its_vms_by_the_room_left_and_names_the_one_that_fits_nowhere():
    vms = tuple(VmFact(i, f"vm{i}", "alice", "ACTIVE", "RUNNING", "h1") for i in range(3))
    facts = CloudFacts("production", "3.2", (HostFact(0, "h1", "MONITORED"),), vms)
    capacity = [
        host(0, "h1", 4096),
        host(1, "h2", 2048),
        host(2, "h3", 1024),
        host(3, "h4", 8192, HostState.DISABLED),
    ]
    plan = plan_of(
        step("3.2-3.4/drain@1", "action", playbook=None, action="drain-host", hosts=("h1",))
    )
    impact = vm_impact(plan, facts, capacity, {i: Need.of(1024, 1) for i in range(3)})
    moves = [(m.name, m.to) for m in impact.drains[0].moves]
    assert moves == [("vm0", "h2"), ("vm1", "h2"), ("vm2", "h3")]
    again = vm_impact(plan, facts, capacity, {i: Need.of(1500, 1) for i in range(3)})
    assert [m.to for m in again.drains[0].moves] == ["h2", None, None]
    assert "no host outside h1 has room" in again.drains[0].moves[1].why
    assert impact.shut_down == () and not impact.ids_change


def test_an_inhibitor_decides_before_a_failing_preflight_gate():
    gate = GateResult("hosts-monitored", "fail", {"summary": "h2 DISABLED"}, "enable h2")
    finding = Finding("no-rehearsal", "error", True, "not rehearsed", "rehearse it first")
    assert verdict([finding], [gate], "upgrader run 3.6").exit_code == 5
    failed = verdict([], [gate], "upgrader run 3.6")
    assert failed.exit_code == 1 and failed.line.endswith(
        "`upgrader run 3.6` would stop at its preflight: gate hosts-monitored fail: "
        "h2 DISABLED (hint: enable h2)"
    )
    ok = verdict([], [GateResult("oned-reachable", "pass", {})], "upgrader run 3.6")
    assert (ok.exit_code, ok.line) == (
        0,
        "dry run: nothing was changed; `upgrader run 3.6` does it",
    )
