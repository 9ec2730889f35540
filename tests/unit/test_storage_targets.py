"""``upgrader plan/run nfs``: a storage name as the target picks the storage runbook, which
works on any OpenNebula version, and the plan says storage, not versions."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from upgrader.errors import UsageError
from upgrader.plan.model import CloudFacts, HostFact, VmFact
from upgrader.plan.planner import build_plan
from upgrader.plan.runbook import load_runbook
from upgrader.plan.targets import storage_hop, target_of

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> SimpleNamespace:
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for name in ("storage-ocfs2-to-nfs.yml", "opennebula-3.2-to-3.4.yml"):
        shutil.copy(REPO / "runbooks" / name, runbooks / name)
    return SimpleNamespace(runbooks_dir=runbooks, playbooks_dir=REPO / "playbooks")


def facts(version: str = "3.4") -> CloudFacts:
    hosts = (HostFact(1, "node01", "MONITORED"), HostFact(2, "node02", "MONITORED"))
    vms = (
        VmFact(7, "web", "oneadmin", "ACTIVE", "RUNNING", "node01"),
        VmFact(8, "db", "oneadmin", "ACTIVE", "RUNNING", "node02"),
        VmFact(9, "old", "oneadmin", "STOPPED", "LCM_INIT", None),
    )
    return CloudFacts("staging", version, hosts, vms, "inv")


@pytest.mark.parametrize("target", ["nfs", "NFS", " nfs "])
def test_a_storage_name_picks_the_storage_runbook(site: SimpleNamespace, target: str) -> None:
    assert storage_hop(site, target) == ("ocfs2", "nfs")


@pytest.mark.parametrize("target", ["3.6", "3.4.1", "v3.6"])
def test_a_version_is_not_a_storage(site: SimpleNamespace, target: str) -> None:
    assert storage_hop(site, target) is None


def test_an_unknown_storage_is_refused_naming_the_known_ones(site: SimpleNamespace) -> None:
    with pytest.raises(UsageError, match=r"unknown target 'ceph'.*3\.2, 3\.4, 3\.6.*nfs"):
        storage_hop(site, "ceph")


def test_two_runbooks_to_the_same_storage_are_refused(site: SimpleNamespace) -> None:
    shutil.copy(
        site.runbooks_dir / "storage-ocfs2-to-nfs.yml",
        site.runbooks_dir / "storage-gfs2-to-nfs.yml",
    )
    with pytest.raises(UsageError, match="more than one runbook moves storage to 'nfs'"):
        storage_hop(site, "nfs")


@pytest.mark.parametrize("version", ["3.2", "3.4", "3.6"])
def test_the_storage_plan_runs_on_any_version_and_suspends_for_the_switch(
    site: SimpleNamespace, version: str
) -> None:
    hop = ("ocfs2", "nfs")
    runbook = load_runbook(
        site.runbooks_dir / "storage-ocfs2-to-nfs.yml", playbooks_dir=site.playbooks_dir
    )
    plan = build_plan(facts(version), "nfs", {hop: runbook}, playbook_digests={}, hops=[hop])
    assert (plan.current_version, plan.target_version, plan.hops) == ("ocfs2", "nfs", (hop,))
    ids = [s.id for s in plan.steps]
    assert ids.index("ocfs2-nfs/presync") < ids.index("ocfs2-nfs/suspend-vms")
    assert ids.index("ocfs2-nfs/suspend-vms") < ids.index("ocfs2-nfs/delta-sync")
    assert ids.index("ocfs2-nfs/verify") < ids.index("ocfs2-nfs/switch")
    assert ids.index("ocfs2-nfs/switch") < ids.index("ocfs2-nfs/resume-vms")
    switch = plan.steps[ids.index("ocfs2-nfs/switch")]
    assert switch.undo == "switch-back"
    assert [(g.name, dict(g.params)) for g in switch.gates_after] == [
        ("datastores-healthy", {"storage": "new"})
    ]
    finding = next(f for f in plan.findings if f.key == "vms-suspended-for-switch")
    assert finding.message.startswith("2 VMs will be suspended") and not finding.inhibitor
    assert target_of(plan.hops, "nfs") == "nfs"


def test_the_storage_plan_and_an_upgrade_plan_have_different_fingerprints(
    site: SimpleNamespace,
) -> None:
    storage = load_runbook(
        site.runbooks_dir / "storage-ocfs2-to-nfs.yml", playbooks_dir=site.playbooks_dir
    )
    upgrade = load_runbook(
        site.runbooks_dir / "opennebula-3.2-to-3.4.yml", playbooks_dir=site.playbooks_dir
    )
    a = build_plan(
        facts("3.2"),
        "nfs",
        {("ocfs2", "nfs"): storage},
        playbook_digests={},
        hops=[("ocfs2", "nfs")],
    )
    b = build_plan(facts("3.2"), "3.4", {("3.2", "3.4"): upgrade}, playbook_digests={})
    assert a.fingerprint != b.fingerprint
    assert b.target_version == "3.4" and b.current_version == "3.2"
