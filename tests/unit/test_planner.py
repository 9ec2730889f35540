"""The planner from case files (tests/cases/planner/*.yaml), plus its fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from upgrader.errors import UsageError
from upgrader.plan.model import CloudFacts, DiskFact, HostFact, VmFact
from upgrader.plan.planner import build_plan
from upgrader.plan.runbook import load_runbook

CASES = sorted((Path(__file__).parents[1] / "cases" / "planner").glob("*.yaml"))
SITE = Path(__file__).parents[1] / "fixtures" / "site"


def runbooks():
    out = {}
    for hop in (("3.2", "3.4"), ("3.4", "3.6")):
        path = SITE / "runbooks" / f"opennebula-{hop[0]}-to-{hop[1]}.yml"
        out[hop] = load_runbook(path, playbooks_dir=SITE / "playbooks")
    return out


def facts_of(data) -> CloudFacts:
    hosts = tuple(HostFact(**h) for h in data["hosts"])
    vms = tuple(
        VmFact(**{**v, "disks": tuple(DiskFact(**d) for d in v.get("disks", []))})
        for v in data["vms"]
    )
    return CloudFacts("staging", data["version"], hosts, vms, "inv")


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_planner_case(case):
    data = yaml.safe_load(case.read_text())
    expect = data["expect"]
    args = (facts_of(data["facts"]), str(data["target"]), runbooks())
    kwargs = {
        "playbook_digests": {"mark.yml": "x"},
        "batch_size": data.get("batch_size"),
        "accepted": data.get("accepted", []),
    }
    if "error" in expect:
        with pytest.raises(UsageError) as info:
            build_plan(*args, **kwargs)
        assert expect["error"] in str(info.value)
        return
    plan = build_plan(*args, **kwargs)
    if "steps" in expect:
        assert [s.id for s in plan.steps] == expect["steps"]
    for step_id, limit in expect.get("limits", {}).items():
        assert next(s.limit for s in plan.steps if s.id == step_id) == limit
    if "point_of_no_return" in expect:
        assert plan.point_of_no_return == expect["point_of_no_return"]
    assert [f.key for f in plan.findings] == expect["findings"]
    assert [f.key for f in plan.inhibitors] == expect["inhibitors"]
    if "estimate" in expect:
        assert plan.estimate == expect["estimate"]


def _plan(facts, digests, environment="staging", inventory="inv"):
    f = CloudFacts(environment, facts.version, facts.hosts, facts.vms, inventory)
    return build_plan(f, "3.6", runbooks(), playbook_digests=digests)


def test_the_same_plan_has_the_same_fingerprint_across_environments_and_inventories():
    facts = facts_of(
        {"version": "3.2", "hosts": [{"id": 0, "name": "n", "state": "MONITORED"}], "vms": []}
    )
    staging = _plan(facts, {"mark.yml": "a"})
    production = _plan(facts, {"mark.yml": "a"}, "production", "other-inventory")
    assert staging.fingerprint == production.fingerprint
    assert staging.resume_fingerprint != production.resume_fingerprint
    assert _plan(facts, {"mark.yml": "b"}).fingerprint != staging.fingerprint


def test_the_plan_is_json_ready():
    import json

    facts = facts_of({"version": "3.2", "hosts": [], "vms": []})
    data = _plan(facts, {"mark.yml": "a"}).to_dict()
    assert json.loads(json.dumps(data, default=str))["target_version"] == "3.6"


def test_consecutive_host_steps_run_batch_by_batch(tmp_path):
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "node.yml").write_text("- hosts: all\n  tasks: []\n")
    path = tmp_path / "opennebula-3.4-to-3.6.yml"
    host_step = {"target": "hypervisors", "serial": 1}
    steps = [
        {"id": "prepare", "action": "record-vms"},
        {"id": "drain", "action": "disable-host", **host_step},
        {"id": "upgrade", "playbook": "node.yml", **host_step},
        {"id": "enable", "action": "enable-host", **host_step},
        {"id": "recheck", "action": "disable-host", **host_step, "sequence_start": True},
    ]
    path.write_text(
        yaml.safe_dump(
            {
                "name": "hop",
                "kind": "upgrade",
                "from_version": "3.4",
                "to_version": "3.6",
                "steps": [
                    {"title": s["id"], "estimate": 10, "idempotent": True, **s} for s in steps
                ],
            }
        )
    )
    runbook = load_runbook(path, playbooks_dir=tmp_path / "pb")
    hosts = tuple(HostFact(i, f"node0{i}", "MONITORED") for i in (1, 2))
    plan = build_plan(
        CloudFacts("staging", "3.4", hosts, (), "inv"),
        "3.6",
        {("3.4", "3.6"): runbook},
        playbook_digests={"node.yml": "x"},
    )
    assert [s.id for s in plan.steps] == [
        "3.4-3.6/prepare",
        "3.4-3.6/drain@1",
        "3.4-3.6/upgrade@1",
        "3.4-3.6/enable@1",
        "3.4-3.6/drain@2",
        "3.4-3.6/upgrade@2",
        "3.4-3.6/enable@2",
        "3.4-3.6/recheck@1",
        "3.4-3.6/recheck@2",
    ]
    assert [s.limit for s in plan.steps[1:4]] == ["node01"] * 3
