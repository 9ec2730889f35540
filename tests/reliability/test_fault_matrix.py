"""Faults in the middle of a run, one after the other in one 3.4 -> 3.6 staging run: each stops
the run failed-safe as tests/reliability/fault_matrix.py's table says (the step or gate, the
undo actions, exit 1, the line), the operator clears it and resumes, and the next one comes.
After the last resume the run finishes and nothing is lost (the crash trials' invariants).

In step order:
- oned stops while the first drain migrates (restarted 15 s later): "oned restarts mid-step";
- Puppet re-enabled on host 2 when host 1 is enabled again: the node stage's puppet-held gate;
- host 2 disappears while its packages are upgraded: "a host disappears mid-batch";
- the controller loses the lab network for 30 s while host 2's VMs move back;
- a fence agent broken (a bad package update) as Pacemaker leaves maintenance mode.
And in a storage move: host 2 disappears while the hosts switch to the NFS export. The hosts
that can be reached go back to the old datastore, nothing is left half-switched there, and the
resume, once the host is back, switches them all.
The other faults of the matrix have their own runs (tests/lab/test_lab_fault_*.py and
test_lab_storage_faults.py); every row is printed at the end of the test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab
from tests.lab.storage_runs import mounts
from tests.reliability import crash
from tests.reliability.fault_matrix import MATRIX, check

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

LAB, SUBNET = side_lab("m", 210)
STORAGE_LAB, STORAGE_SUBNET = side_lab("n", 220)
H = "3.4-3.6"


def fault(lab: dict[str, Any], name: str, *more: str) -> None:
    done = crash.cli("lab", "fault", name, "--name", lab["name"], "--cloud", "staging", *more)
    assert done.returncode == 0, done.stderr


def network(lab: dict[str, Any], state: str) -> None:
    """The machine's link into the lab (hosts.bridge_up): the controller's only way there."""
    subprocess.run(["ip", "link", "set", f"{lab['name']}-m", state], check=True)


def frozen_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        found.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return found


def attempt(
    lab: dict[str, Any],
    argv: list[str],
    event: tuple[str, str],
    inject: Callable[[], None],
    *,
    freeze: bool,
) -> tuple[int, str, list[dict[str, Any]]]:
    """Start ``upgrader ARGV``; when the journal shows ``event`` (type, step), call ``inject``
    (with the run stopped by SIGSTOP if ``freeze``, so no gate round slips in first)."""
    journals_before = len(crash.journals(lab))
    proc = subprocess.Popen(
        [sys.executable, "-m", "upgrader", *argv, "--config", str(lab["config"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    errors: list[BaseException] = []
    seen_at = len(crash.events(lab)) if journals_before else 0

    def watch() -> None:
        kind, step = event
        while proc.poll() is None:
            evs = crash.events(lab)[seen_at:]
            if any(e["type"] == kind and e.get("step") == step for e in evs):
                pids = frozen_tree(proc.pid) if freeze else []
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    inject()
                except BaseException as exc:  # handed to the test
                    errors.append(exc)
                finally:
                    for pid in reversed(pids):
                        os.kill(pid, signal.SIGCONT)
                return
            time.sleep(0.05)
        errors.append(AssertionError(f"the run ended before {kind} {step}"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _, stderr = proc.communicate(timeout=crash.RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    watcher.join(timeout=120)
    if errors:
        raise AssertionError(f"{errors[0]} (exit {proc.returncode}: {stderr.strip()[-600:]})")
    return proc.returncode, stderr, crash.events(lab)[seen_at:]


def test_faults_mid_run_stop_it_failed_safe_and_each_resume_goes_on(
    tmp_path: Path, tally_row: Any
) -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    kind = crash.Kind("upgrade 3.4->3.6", "3.4.1", "3.6")
    lab = crash.lab_up(LAB, SUBNET, kind, vms=2)
    try:
        first, second = crash.hosts_of(lab, "staging")
        before = crash.snapshot(lab, kind)

        def oned_restarts() -> None:
            fault(lab, "oned-down", "--host", first)
            time.sleep(15)
            fault(lab, "oned-down", "--host", first, "--clear")

        def network_lost() -> None:
            network(lab, "down")
            try:
                time.sleep(30)
            finally:
                network(lab, "up")

        chain = [
            ("oned-down", ("step_started", f"{H}/drain@1"), oned_restarts, False,
             ("oned-down", "--host", first)),
            ("puppet-enabled", ("step_finished", f"{H}/enable@1"),
             lambda: fault(lab, "puppet-enabled", "--host", second), True,
             ("puppet-enabled", "--host", second)),
            ("host-unreachable", ("step_started", f"{H}/upgrade-node@2"),
             lambda: fault(lab, "host-unreachable", "--host", second), False,
             ("host-unreachable", "--host", second)),
            ("network-lost", ("step_started", f"{H}/move-back@2"), network_lost, False, None),
            ("stonith-agent-broken", ("step_started", f"{H}/release-pacemaker-now"),
             lambda: fault(lab, "stonith-agent-broken", "--host", first), False,
             ("stonith-agent-broken", "--host", first)),
        ]  # fmt: skip
        rows = []
        argv = ["run", kind.target, "--stage", "--yes"]
        for name, event, inject, freeze, clear in chain:
            started = time.monotonic()
            code, stderr, events = attempt(lab, argv, event, inject, freeze=freeze)
            row = check(name, code, stderr, events)
            rows.append(row)
            tally_row("fault_matrix", **row)
            print(f"\n[matrix] {name}: {time.monotonic() - started:.0f} s: {row}")
            if clear:
                fault(lab, *clear, "--clear")
            argv = ["resume", "--stage", "--yes"]
        done = crash.cli(*argv, "--config", str(lab["config"]))
        assert done.returncode == 0, done.stderr
        trial = crash.Trial(0, kind.name, killed=True)
        crash.check(lab, kind, trial, before, {})
        assert [r["check"] for r in rows] == ["pass"] * len(chain), rows
        assert not trial.failures, trial.failures
        assert set(MATRIX) >= {r["fault"] for r in rows}
    finally:
        subprocess.run(["ip", "link", "set", f"{LAB}-m", "up"], check=False)
        crash.cli("lab", "down", "--name", LAB)


def test_a_host_lost_during_the_storage_switch_leaves_nothing_half_switched(
    tmp_path: Path, tally_row: Any
) -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    kind = crash.Kind("storage ocfs2->nfs", "3.2.1", "nfs", storage=True)
    lab = crash.lab_up(STORAGE_LAB, STORAGE_SUBNET, kind, vms=2)
    try:
        first, second = crash.hosts_of(lab, "staging")
        before = crash.snapshot(lab, kind)
        old_mounts = mounts(lab)
        argv = ["run", kind.target, "--stage", "--yes"]
        code, stderr, events = attempt(
            lab, argv, ("step_started", "ocfs2-nfs/switch"),
            lambda: fault(lab, "host-unreachable", "--host", second), freeze=False,
        )  # fmt: skip
        row = check("host-unreachable in the storage switch", code, stderr, events)
        tally_row("fault_matrix", **row)
        print(f"\n[matrix] storage switch: {row}")
        now = mounts(lab)
        fault(lab, "host-unreachable", "--host", second, "--clear")
        # the host that could be reached is back on the old datastore
        assert now[first] == old_mounts[first], now
        assert row["check"] == "pass", row
        done = crash.cli("resume", "--stage", "--yes", "--config", str(lab["config"]))
        assert done.returncode == 0, done.stderr
        after = mounts(lab)
        assert all(m != old_mounts[h] for h, m in after.items()) and len(set(after.values())) == 1
        trial = crash.Trial(0, kind.name, killed=True)
        crash.check(lab, kind, trial, before, {})
        assert not trial.failures, trial.failures
    finally:
        crash.cli("lab", "down", "--name", STORAGE_LAB)
