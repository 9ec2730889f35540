"""The core end to end: real ansible-runner on local playbooks, the simulator as the cloud."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import oned, site
from upgrader.journal.store import read_events

HOSTS = ["node01", "node02"]
ALL_STEPS = [
    "prepare node01",
    "prepare node02",
    "front-end node01",
    "hypervisor node01",
    "hypervisor node02",
    "second-hop node01",
    "second-hop node02",
    "release node01",
    "release node02",
]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path, oned.Simulator]]:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    yield tmp_path, site.make_site(tmp_path, sim, HOSTS), sim
    sim.stop()


def journal_of(root: Path, run_id: str):
    return read_events(root / "runs" / run_id / "journal.jsonl")


def test_a_multi_step_runbook_runs_to_the_end(cloud):
    root, config, _ = cloud
    result = site.upgrader(config, "run", "3.6", "--stage", "--yes", check=True)
    run_id = result.stdout.strip()
    assert sorted(site.markers(root)) == sorted(ALL_STEPS)
    events = journal_of(root, run_id)
    finished = [e for e in events if e.type == "step_finished"]
    assert [e.get("step") for e in finished] == [
        "3.2-3.4/prepare",
        "3.2-3.4/front-end",
        "3.2-3.4/hypervisors@1",
        "3.2-3.4/hypervisors@2",
        "3.4-3.6/second-hop",
    ]
    assert all(e.get("duration") > 0 for e in finished)
    assert [e.get("verdict") for e in events if e.type == "gate_verdict"] == ["pass"] * 3
    assert events[-1].type == "run_finished"
    assert "[step/3.2-3.4/hypervisors@1] node01: task Append a run marker" in result.stderr
    status = json.loads(site.upgrader(config, "status", run_id, "--json", check=True).stdout)
    assert status["status"] == "succeeded" and status["steps_done"] == 5


def test_dry_run_changes_nothing_and_says_what_would_change(cloud):
    root, config, sim = cloud
    before = sim.call("one.hostpool.info")
    result = site.upgrader(config, "run", "3.6", "--stage", "--dry-run", check=True)
    run_id = result.stdout.split()[2]  # "dry run <run id> (journal ...)"
    assert site.markers(root) == [] and not (root / "markers.state").exists()
    assert sim.call("one.hostpool.info").count("<HOST>") == before.count("<HOST>")
    changes = [
        c for e in journal_of(root, run_id) if e.type == "dry_run_check" for c in e.get("tasks")
    ]
    assert any("prepare node01 done" in json.dumps(c) for c in changes)
    assert not [e for e in journal_of(root, run_id) if e.type == "undo_registered"]


def test_a_failed_step_undoes_and_stops_with_the_hosts_named(cloud, tmp_path):
    root, config, _ = cloud
    rb = root / "runbooks" / "opennebula-3.2-to-3.4.yml"
    doc = yaml.safe_load(rb.read_text())
    doc["steps"][1]["playbook"] = "fail.yml"
    rb.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = site.upgrader(config, "run", "3.6", "--stage", "--yes")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 3.2-3.4/front-end: playbook fail.yml failed")
    assert "node01" in last and "upgrader resume" in last
    # what the failed task said, so the operator need not open the artifacts first
    assert ": node0" in last and "the fixture step failed on node0" in last
    assert "(+1 more failed tasks)" in last
    assert site.markers(root) == [
        "prepare node01",
        "prepare node02",
        "release node01",
        "release node02",
    ] or sorted(site.markers(root)) == sorted(
        ["prepare node01", "prepare node02", "release node01", "release node02"]
    )
    # The playbook changes, so the plan is not the one that started: resume refuses.
    doc["steps"][1]["playbook"] = "mark.yml"
    rb.write_text(yaml.safe_dump(doc, sort_keys=False))
    refused = site.upgrader(config, "resume", "--stage", "--yes")
    assert refused.returncode == 2 and "changed since the run started" in refused.stderr


def test_two_runs_at_once_one_proceeds_the_other_exits_4(cloud):
    _root, config, _ = cloud
    cmd = site.command(config, "run", "3.6", "--stage", "--yes")
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 4], results
    loser = next(r for r in results if r[0] == 4)
    winner = next(r for r in results if r[0] == 0)
    last = loser[2].strip().splitlines()[-1]
    assert last.startswith(f"error: environment 'staging' is locked by run {winner[1].strip()}")
    assert "Traceback" not in loser[2]


def _bad_config(root: Path, name: str, text: str) -> Path:
    bad = root / name
    bad.write_text(text)
    return bad


@pytest.mark.parametrize(
    "case,args,expect",
    [
        ("unknown target", ["plan", "3.8", "--stage"], "unknown target version '3.8'"),
        ("already there", ["plan", "3.2", "--stage"], "already runs OpenNebula 3.2"),
        ("downgrade", ["run", "3.2.1", "--stage", "--yes"], "already runs OpenNebula 3.2"),
    ],
)
def test_bad_targets_are_usage_errors(cloud, case, args, expect):
    _, config, _ = cloud
    result = site.upgrader(config, *args)
    assert result.returncode == 2, case
    assert expect in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_site_input_is_one_line_exit_2(cloud):
    root, config, _ = cloud
    cases = []
    cases.append((_bad_config(root, "bad1.yml", "environments: [\n"), "malformed YAML"))
    text = config.read_text().replace("runs_dir:", "runs_dirr:")
    cases.append((_bad_config(root, "bad2.yml", text), "did you mean 'runs_dir'"))
    cases.append((root / "missing.yml", "missing.yml"))
    for path, needle in cases:
        result = subprocess.run(
            [sys.executable, "-m", "upgrader", "plan", "3.6", "--stage", "--config", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, (needle, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    (root / "one_auth").chmod(0o644)
    result = site.upgrader(config, "plan", "3.6", "--stage")
    assert result.returncode == 2 and "are too open" in result.stderr
    (root / "one_auth").chmod(0o600)
    (root / "playbooks" / "mark.yml").unlink()
    result = site.upgrader(config, "plan", "3.6", "--stage")
    assert result.returncode == 2 and "playbook" in result.stderr and "not found" in result.stderr
    assert not (root / "runs").exists() or not list((root / "runs").glob("staging-*"))


def test_inhibitors_stop_the_run_with_exit_5_until_accepted(tmp_path):
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=1)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    try:
        config = site.make_site(tmp_path, sim, HOSTS)
        refused = site.upgrader(config, "run", "3.6", "--stage", "--yes")
        assert refused.returncode == 5 and "vm-nonpersistent-disk/0" in refused.stderr
        assert "--accept vm-nonpersistent-disk/0" in refused.stderr
        assert site.markers(tmp_path) == []
        ok = site.upgrader(
            config,
            "run",
            "3.6",
            "--stage",
            "--yes",
            "--accept",
            "vm-nonpersistent-disk/0",
            check=True,
        )
        events = journal_of(tmp_path, ok.stdout.strip())
        assert any(e.type == "finding_accepted" for e in events)
    finally:
        sim.stop()
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)


def test_gates_command_reads_only_and_says_what_it_saw(cloud):
    _, config, sim = cloud
    ok = site.upgrader(config, "gates", "--stage", check=True)
    assert f"[gate/oned-reachable] PASS: oned at {sim.url} answered with 2 hosts" in ok.stdout
    assert "[gate/oned-version] PASS: oned is 3.2, database at 3.2.1" in ok.stdout
    assert "[gate/fencing-ready] PASS: 2 agents ready on 1 hosts" in ok.stdout
    assert "[gate/pacemaker-healthy] PASS: 2 nodes online" in ok.stdout
    sim.stop()  # oned down
    failed = site.upgrader(config, "gates", "--stage", "--wait", "0")
    assert failed.returncode == 1 and "[gate/oned-reachable] FAIL" in failed.stdout


def test_abort_of_an_interrupted_run_runs_its_undo_and_refuses_resume(cloud):
    import signal
    import time

    root, config, _ = cloud
    proc = subprocess.Popen(
        site.command(config, "run", "3.6", "--stage", "--yes"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while "front-end node01" not in site.markers(root):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = next((root / "runs").glob("staging-*")).name
    result = site.upgrader(config, "abort", run_id, "--stage", check=True)
    assert "aborted" in result.stdout
    assert site.markers(root)[-2:] == ["release node01", "release node02"] or sorted(
        site.markers(root)[-2:]
    ) == ["release node01", "release node02"]
    refused = site.upgrader(config, "resume", run_id, "--stage", "--yes")
    assert refused.returncode == 2 and "aborted" in refused.stderr


def test_a_downgrade_is_refused_on_the_command_line(tmp_path):
    oned.seed(tmp_path / "sim", "3.6.0", hosts=1, vms=0)
    sim = oned.start(tmp_path / "sim", "3.6.0", speed=50)
    try:
        config = site.make_site(tmp_path, sim, ["node01"])
        result = site.upgrader(config, "run", "3.4", "--stage", "--yes")
        assert result.returncode == 2
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith("error: OpenNebula 3.6 -> 3.4 is a downgrade: upgrader only upgrades")
        )
        assert site.markers(tmp_path) == []
    finally:
        sim.stop()


def test_a_run_killed_after_its_last_step_resumes_without_running_any_step_again(cloud):
    root, config, _ = cloud
    run_id = site.upgrader(config, "run", "3.6", "--stage", "--yes", check=True).stdout.strip()
    journal = root / "runs" / run_id / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    cut = next(
        i
        for i, line in enumerate(lines)
        if '"type": "undo_started"' in line or '"type":"undo_started"' in line
    )
    journal.write_text("".join(lines[:cut]))  # as if killed just before the final undo
    before = Counter(site.markers(root))
    site.upgrader(config, "resume", run_id, "--stage", "--yes", check=True)
    after = Counter(site.markers(root))
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "release node01": 1,
        "release node02": 1,
    }
    assert journal_of(root, run_id)[-1].type == "run_finished"
