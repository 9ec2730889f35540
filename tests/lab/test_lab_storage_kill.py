"""The storage move killed during the delta copy, controller and copy alike (SIGKILL), then
resumed: it completes, and no file verified before the kill is copied again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.lab.conftest import upgrader
from tests.lab.fault_runs import Run, is_event, running_where
from tests.lab.storage_runs import checksum, manifest, mounts, storage_lab
from tests.lab.test_lab import hosts_of
from upgrader.lab import hosts as hs

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]


def test_a_run_killed_during_the_delta_resumes_without_recopying_verified_files(
    tmp_path: Path,
) -> None:
    with storage_lab(3) as lab:
        old, export = lab["old"], lab["export"]
        front = hosts_of(lab, "staging")[0]
        vms_before = running_where(lab)
        old_mounts = mounts(lab)
        changed: list[str] = []

        def vms_write() -> None:  # 24 files of 4 MiB the delta has to copy
            for vm_dir in sorted(p for p in (old / "0").iterdir() if p.is_dir()):
                for i in range(6):
                    target = vm_dir / f"snap.{i}"
                    target.write_bytes(os.urandom(4 << 20))
                    changed.append(str(target.relative_to(old)))

        run = Run(lab["config"], lab["dir"] / "runs", tmp_path, "nfs")
        run.when(is_event("step_finished", "ocfs2-nfs/presync"), vms_write)
        killed = threading.Event()

        def kill_in_the_delta() -> None:
            while run.proc.poll() is None:
                entries = manifest(lab)
                if any(e.get("phase") == "delta" for e in entries.values()):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                    hs.enter(
                        lab["dir"], front, "pkill", "-9", "-f", "upgrader_datastore", check=False
                    )
                    killed.set()
                    return
                time.sleep(0.05)

        waiter = threading.Thread(
            target=lambda: (
                wait_for_event(run, "step_started", "ocfs2-nfs/delta-sync"),
                kill_in_the_delta(),
            )
        )
        waiter.start()
        run.proc.communicate(timeout=900)
        waiter.join(timeout=60)
        run.watcher.join(timeout=30)
        assert run.error is None, run.error
        assert killed.is_set(), "the run ended before the delta copied anything"
        at_kill = manifest(lab)
        verified = {
            p
            for p, e in at_kill.items()
            if e.get("phase") == "delta" and e.get("state") in ("copied", "verified")
        }
        copies = {p: e.get("copies") for p, e in at_kill.items()}
        print(f"at the kill: {len(verified)} of {len(changed)} delta files verified")
        assert mounts(lab) == old_mounts  # nothing switched yet

        resumed = upgrader(
            "resume", "--stage", "--yes", "--config", str(lab["config"]), check=False
        )
        assert resumed.returncode == 0, resumed.stderr
        after = manifest(lab)
        for rel in verified:  # copied and recorded before the kill: not copied again
            assert after[rel]["copies"] == copies[rel], rel
        for rel in changed:
            assert after[rel]["state"] == "verified", rel
            assert after[rel]["copies"] == 1, (rel, after[rel]["copies"])
            assert checksum(export / rel) == after[rel]["checksum"] == checksum(old / rel)
        assert all(m != old_mounts[h] for h, m in mounts(lab).items())
        assert running_where(lab) == vms_before
        journal = sorted((lab["dir"] / "runs").glob("staging-*/journal.jsonl"))[-1]
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        assert events[-1]["type"] == "run_finished"


def wait_for_event(run: Run, kind: str, step: str) -> None:
    matches = is_event(kind, step)
    while run.proc.poll() is None and not any(matches(e) for e in run.events()):
        time.sleep(0.1)
