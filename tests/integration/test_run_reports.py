"""Reports of real runs against the simulator (real ansible-runner, real XML-RPC): a dry run,
a run that finishes and one that fails, each in Markdown, HTML and JSON through the real CLI;
``--report FILE`` on ``run`` and ``plan``, written whatever the outcome."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import dry_run_cloud, oned, site
from tests.support.dry_run_cloud import ACCEPT
from tests.support.report_checks import check_reports, reports_of

HOSTS = ["node01", "node02"]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """test_core_run's cloud: 3.2, two hosts, no VM, the fixture runbooks."""
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    yield tmp_path, site.make_site(tmp_path, sim, HOSTS)
    sim.stop()


@pytest.fixture
def vm_cloud(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """test_dry_run's cloud: two VMs with non-persistent disks (two inhibitors to accept)."""
    sim, config = dry_run_cloud.start(tmp_path)
    yield tmp_path, config
    sim.stop()


def cli(config: Path) -> object:
    return lambda *args: site.upgrader(config, *args)


def test_a_dry_run_report_says_what_will_happen_in_all_three_formats(vm_cloud):
    root, config = vm_cloud
    written = root / "dry.html"
    result = site.upgrader(
        config, "run", "3.6", "--stage", "--dry-run", *ACCEPT, "--report", str(written)
    )
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[2]
    assert f"report of {run_id}: {written}" in result.stderr
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    reports = reports_of(cli(config), run_id, root)
    check_reports(reports, kind="dry-run", status="succeeded")
    assert written.read_text() == reports.html  # --report wrote the same page
    doc, md = reports.doc, reports.md
    assert doc["hops"] == ["3.2 -> 3.4", "3.4 -> 3.6"]
    assert doc["point_of_no_return"] == "3.2-3.4/upgrade-frontend"
    assert [(f["key"], f["inhibitor"], f["accepted"]) for f in doc["findings"]] == [
        ("vms-shut-down-for-onedb", False, False),
        ("vm-nonpersistent-disk/0", True, True),
        ("vm-nonpersistent-disk/1", True, True),
    ]
    # the VMs the run shuts down, by name, and the verdict line the CLI printed
    names = [vm["name"] for vm in doc["vms"]["shut_down"]]
    assert len(names) == 2 and all(f"| {n} |" in md for n in names)
    assert doc["outcome"] == result.stdout.strip().splitlines()[-1]
    assert "| mark.yml | `3.2-3.4/upgrade-node` | node01,node02 | node01: 1, node02: 1 |" in md
    assert "| PASS | vms-settled | `3.2-3.4/preflight` |" in md


def test_a_finished_runs_report_has_its_timeline_and_the_cloud_it_left(cloud):
    root, config = cloud
    result = site.upgrader(
        config, "run", "3.6", "--stage", "--yes", "--report", str(root / "run.json")
    )
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    reports = reports_of(cli(config), run_id, root)
    check_reports(reports, kind="run", status="succeeded")
    doc = reports.doc
    assert json.loads((root / "run.json").read_text())["timeline"] == doc["timeline"]
    steps = [(e["name"], e["status"]) for e in doc["timeline"] if e["kind"] == "step"]
    assert steps == [
        (s, "succeeded")
        for s in (
            "3.2-3.4/prepare",
            "3.2-3.4/front-end",
            "3.2-3.4/hypervisors@1",
            "3.2-3.4/hypervisors@2",
            "3.4-3.6/second-hop",
        )
    ]
    assert all(e["seconds"] >= 1 for e in doc["timeline"] if e["kind"] == "step")
    assert [u["name"] for u in doc["undo"]] == ["release"]
    assert [h["name"] for h in doc["cloud_end"]["hosts"]] == HOSTS


def test_a_failed_runs_report_is_written_anyway_and_says_what_to_do_next(cloud):
    root, config = cloud
    rb = root / "runbooks" / "opennebula-3.2-to-3.4.yml"
    doc = yaml.safe_load(rb.read_text())
    doc["steps"][1]["playbook"] = "fail.yml"
    rb.write_text(yaml.safe_dump(doc, sort_keys=False))
    written = root / "failed.md"
    result = site.upgrader(config, "run", "3.6", "--stage", "--yes", "--report", str(written))
    assert result.returncode == 1
    run_id = written.read_text().split("`")[1]
    reports = reports_of(cli(config), run_id, root)
    check_reports(reports, kind="run", status="failed")
    assert written.read_text() == reports.md
    failed = [e for e in reports.doc["timeline"] if e["status"] == "failed"]
    assert [e["name"] for e in failed] == ["3.2-3.4/front-end"]
    assert "the fixture step failed on node01" in failed[0]["detail"]
    assert f"fix the cause, then `upgrader resume {run_id}`" in reports.md
    assert reports.doc["undo"][0]["status"] == "done"


def test_plan_report_and_bad_report_arguments(cloud):
    root, config = cloud
    planned = site.upgrader(config, "plan", "3.6", "--stage", "--report", str(root / "p.md"))
    assert planned.returncode == 0, planned.stderr
    text = (root / "p.md").read_text()
    assert text.startswith("# Plan report (plan only): staging, OpenNebula 3.2 -> 3.6")
    assert "plan only: no preflight gate was evaluated" in text and "`3.2-3.4/prepare`" in text

    for args in (
        ("run", "3.6", "--stage", "--yes", "--report", str(root / "r.txt")),
        ("plan", "--stage", "--report", str(root / "nowhere" / "p.md")),
        ("report", "staging-nosuchrun"),
        ("report", "x", "--format", "pdf"),
    ):
        bad = site.upgrader(config, *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert not list((root / "runs").glob("staging-*"))  # the bad --report ran nothing
