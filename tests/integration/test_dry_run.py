"""`upgrader run 3.6 --dry-run` against the simulator and local playbooks: it changes nothing
(no action, no undo, no playbook outside check mode), evaluates only the preflight gates,
lists the VMs the run would shut down and move, and exits 0, 5 or 1 as the real run would
start, be refused by an inhibitor, or stop at its preflight."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import dry_run_cloud, oned, site
from tests.support.dry_run_cloud import ACCEPT
from upgrader.journal.store import read_events
from upgrader.run.lock import RunLock


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path, oned.Simulator]]:
    """A 3.2 cloud of two hosts with two VMs (non-persistent disks: two inhibitors)."""
    sim, config = dry_run_cloud.start(tmp_path)
    yield tmp_path, config, sim
    sim.stop()


def cloud_state(sim: oned.Simulator) -> tuple[Any, ...]:
    """What an action would change: every VM's state, LCM state and host; the hosts' states
    (MONITORING, a monitoring cycle under way, counted as MONITORED: it comes and goes)."""
    vms = sim.call("one.vmpool.info", -2, -1, -1, -1)
    hosts = sim.call("one.hostpool.info")
    host_states = ["2" if state == "1" else state for state in _fields(hosts, "STATE")]
    return vms.count("<VM>"), _fields(vms, "STATE", "LCM_STATE", "HOSTNAME"), host_states


def _fields(xml: str, *names: str) -> list[str]:
    import re

    return [m for name in names for m in re.findall(rf"<{name}>([^<]*)</{name}>", xml)]


def events_of(root: Path, run_id: str) -> list[Any]:
    return read_events(root / "runs" / run_id / "journal.jsonl")


def run_id_of(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("dry run staging-"), stdout
    return first.split()[2]


def stale_lock(root: Path) -> Path:
    """The staging lock of a run whose process is gone; returns the lock file."""
    code = (
        "import sys; from pathlib import Path; from upgrader.run.lock import RunLock; "
        "RunLock.acquire(Path(sys.argv[1]), 'staging', 'staging-gone', expiry_seconds=3600)"
    )
    subprocess.run([sys.executable, "-c", code, str(root / "runs" / "locks")], check=True)
    return root / "runs" / "locks" / "staging.lock"


def test_a_dry_run_changes_nothing_runs_no_action_and_judges_only_the_preflight(cloud):
    root, config, sim = cloud
    lock = stale_lock(root)
    held = lock.read_text()
    before = cloud_state(sim)
    result = site.upgrader(config, "run", "3.6", "--stage", "--dry-run", *ACCEPT)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(
        "dry run: nothing was changed; `upgrader run 3.6 --stage --accept "
        "vm-nonpersistent-disk/0 --accept vm-nonpersistent-disk/1 --take-over` does it "
        "(a stale lock of run staging-gone is in the way: pid "
    ), last
    assert lock.read_text() == held  # neither taken over nor released: the real run decides

    # Nothing changed: no playbook ran outside check mode, no action, no undo.
    assert cloud_state(sim) == before
    assert site.markers(root) == [] and not (root / "markers.state").exists()
    run_id = run_id_of(result.stdout)
    run_dir = root / "runs" / run_id
    assert not [p.name for p in run_dir.glob("*.json")]  # vms.json, hosts.json, drained-*
    events = events_of(root, run_id)
    kinds = [str(e.type) for e in events]
    assert not {"step_started", "step_finished", "undo_registered", "undo_started"} & set(kinds)
    plan = events[0].get("plan")
    assert events[0].get("dry_run") is True
    assert [e.get("step") for e in events if e.type == "step_skipped"] == [
        s["id"] for s in plan["steps"]
    ]

    # Only the first step's gates_before ran; the rest is one skipped line.
    verdicts = [
        (e.get("step"), e.get("phase"), e.get("gate"), e.get("verdict"))
        for e in events
        if e.type == "gate_verdict"
    ]
    assert verdicts == [
        ("3.2-3.4/preflight", "before", gate, "pass")
        for gate in ("oned-reachable", "hosts-monitored", "vms-settled")
    ]
    skipped = [e for e in events if e.type == "gates_skipped"]
    assert len(skipped) == 1 and skipped[0].get("count") == 6  # 2 per-host steps
    assert skipped[0].get("gates") == ["oned-version", "puppet-held", "vms-settled"]

    # Each distinct playbook step ran once in check mode; the node steps once over both hosts.
    checks = sorted((e for e in events if e.type == "dry_run_check"), key=lambda e: e.get("check"))
    assert [(c.get("label"), c.get("limit")) for c in checks] == [
        ("3.2-3.4/hold", None),
        ("3.2-3.4/upgrade-frontend", None),
        ("3.2-3.4/upgrade-node", "node01,node02"),
        ("3.4-3.6/second-hop", None),
    ]
    assert all(c.get("predicted") for c in checks)
    assert checks[2].get("changes") == {"node01": 1, "node02": 1}
    assert any("node node01 done" in t["diff"] for t in checks[2].get("tasks"))
    assert "3.2-3.4/upgrade-node               mark.yml" in result.stdout
    assert events[-1].type == "run_finished" and events[-1].get("verdict") == "ready"

    # A dry run is nothing to resume or abort, and `resume` alone does not pick it.
    for args in (("resume", run_id, "--stage", "--yes"), ("abort", run_id, "--stage")):
        refused = site.upgrader(config, *args)
        assert refused.returncode == 2 and "is a dry run" in refused.stderr, args
    alone = site.upgrader(config, "resume", "--stage", "--yes")
    assert alone.returncode == 2 and "no run of staging" in alone.stderr


def test_a_dry_run_refuses_while_a_live_run_holds_the_lock(cloud):
    root, config, _ = cloud
    with RunLock.acquire(root / "runs" / "locks", "staging", "staging-live", expiry_seconds=60):
        result = site.upgrader(config, "run", "3.6", "--stage", "--dry-run", *ACCEPT)
    assert result.returncode == 4
    assert result.stderr.startswith("error: environment 'staging' is locked by run staging-live")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not list((root / "runs").glob("staging-*"))


def test_an_inhibitor_exits_5_after_the_plan_and_the_vms_to_shut_down_are_shown(cloud):
    root, config, sim = cloud
    before = cloud_state(sim)
    result = site.upgrader(config, "run", "3.6", "--stage", "--dry-run")
    assert result.returncode == 5, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    # The plan: every step with its hosts and estimate, the total, the point of no return.
    assert "plan for staging: OpenNebula 3.2 -> 3.6, 11 steps, about 64 min" in out
    rows = [r.split() for r in out.splitlines()]
    assert ["3.2-3.4/upgrade-node@2", "180", "s", "[node02]"] in rows
    assert "point of no return: 3.2-3.4/upgrade-frontend" in out
    # Each VM to be shut down with its owner, host and non-persistent disk, and the drains.
    for vm_id, line in ((0, "   0  "), (1, "   1  ")):
        row = next(r for r in out.splitlines() if r.startswith(f"  {line}"))
        assert "oneadmin" in row and ("node01" in row or "node02" in row), row
        assert "disk 0" in row, row
        assert f"INHIBITOR: vm-nonpersistent-disk/{vm_id}:" in out
    assert "3.2-3.4/drain@1          node01:" in out and "-> node02" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "dry run: nothing was changed; inhibitor vm-nonpersistent-disk/0 "
        "(and 1 more) stops `upgrader run 3.6 --stage`:"
    )
    assert "--accept vm-nonpersistent-disk/0" in last
    assert cloud_state(sim) == before
    events = events_of(root, run_id_of(out))
    shut = next(e for e in events if e.type == "dry_run_vms").get("shut_down")
    assert [(v["id"], v["owner"], bool(v["nonpersistent_disks"])) for v in shut] == [
        (0, "oneadmin", True),
        (1, "oneadmin", True),
    ]
    assert events[-1].type == "run_failed" and events[-1].get("exit_code") == 5


def test_a_failing_preflight_gate_exits_1_and_says_where_the_real_run_would_stop(cloud):
    root, config, sim = cloud
    sim.call("one.host.enable", 1, False)  # node02: hosts-monitored fails, drains have no room
    result = site.upgrader(config, "run", "3.6", "--stage", "--dry-run", *ACCEPT)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "FAIL hosts-monitored:" in out and "PASS oned-reachable:" in out
    assert "3.2-3.4/drain@1          node01:" in out and "-> nowhere: no host outside" in out
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith(
            "dry run: nothing was changed; `upgrader run 3.6 --stage --accept "
            "vm-nonpersistent-disk/0 --accept vm-nonpersistent-disk/1` would stop at its "
            "preflight: gate hosts-monitored fail:"
        )
    )
    # It still ran the checks and is journaled as a failed dry run, never as a rehearsal.
    events = events_of(root, run_id_of(out))
    assert len([e for e in events if e.type == "dry_run_check"]) == 4
    assert events[-1].type == "run_failed" and events[-1].get("verdict") == "preflight-failed"
