"""The storage runbook on a lab cloud with running VMs: OCFS2 (the lab's loop-mounted ext4)
to the NFS export, then back with the rollback runbook (`upgrader run nfs`, `run ocfs2`).

What an operator checks the morning after: every host mounts the export, fstab keeps the old
line commented with the run id, the CIB's Filesystem resource names the export, every VM runs
on its host from a file on the export, every checksum of the manifest matches the file (computed
here, independently), the old volume is as it was, sparse images are still sparse; and the way
back refuses to lose what VMs wrote on the export unless told, then switches every host back.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.lab.conftest import upgrader
from tests.lab.fault_runs import Run, cluster_holds, is_event, last_line, running_where
from tests.lab.storage_runs import (
    DATASTORE,
    allocated,
    checksum,
    cib_device,
    device_of_file,
    fstab,
    manifest,
    mounts,
    storage_lab,
    tree,
)
from tests.lab.test_lab import client, hosts_of

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]


def test_the_storage_runbook_moves_a_running_cloud_to_nfs_and_back(tmp_path: Path) -> None:
    with storage_lab(1) as lab:
        old, export = lab["old"], lab["export"]
        hosts = hosts_of(lab, "staging")
        vms_before = running_where(lab)
        assert len(vms_before) == 4 and all(lcm == "RUNNING" for lcm, _ in vms_before.values())
        holds = cluster_holds(lab)
        old_mounts, old_device = mounts(lab), cib_device(lab)
        vm_ids = {vm.name: vm.id for vm in client(lab, "staging").vm_pool()}
        written = threading.Event()
        old_tree: dict = {}

        def a_vm_writes() -> None:  # after the pre-sync, before the suspend
            disk = old / "0" / str(min(vm_ids.values())) / "disk.0"
            with disk.open("r+b") as fh:
                fh.seek(40 << 20)
                fh.write(b"written after the pre-sync" * 4096)
            (old / "0" / str(max(vm_ids.values())) / "checkpoint").write_bytes(b"mem" * 100000)
            old_tree.update(tree(old))
            written.set()

        run = Run(lab["config"], lab["dir"] / "runs", tmp_path, "nfs")
        run.when(is_event("step_finished", "ocfs2-nfs/presync"), a_vm_writes)
        code, stderr = run.finish()
        run.watcher.join(timeout=30)
        assert run.error is None, run.error
        assert code == 0, stderr
        events = run.events()
        assert written.is_set()
        started = [e for e in events if e["type"] == "step_started"]
        order = [e["step"] for e in started]
        assert order.index("ocfs2-nfs/presync") < order.index("ocfs2-nfs/suspend-vms")
        assert all(e["verdict"] == "pass" for e in events if e["type"] == "gate_verdict")
        run_id = events[0]["run_id"]

        # the delta copied what the VM wrote after the pre-sync, and only that
        delta = next(
            e
            for e in events
            if e["type"] == "step_finished" and e["step"] == "ocfs2-nfs/delta-sync"
        )
        print("delta-sync outcome:", json.dumps(delta["outcome"])[:600])
        text = json.dumps(delta["outcome"])
        assert "disk.0" in text and "checkpoint" in text

        # every host mounts the export; fstab keeps the old line, commented with the run id
        now = mounts(lab)
        assert all(now[h] != old_mounts[h] for h in hosts), now
        assert len(set(now.values())) == 1
        for host in hosts:
            lines = fstab(lab, host)
            assert any(
                line.startswith(f"#upgrader-storage {run_id}:")
                and "/srv/lab/staging/datastores" in line
                for line in lines
            ), lines
            assert any(
                line.split()[:2]
                == [str(export).replace(str(lab["dir"] / "share"), "/srv/lab"), DATASTORE]
                for line in lines
                if not line.startswith("#")
            ), lines
        assert cib_device(lab) != old_device
        assert cib_device(lab).endswith("/nfs/export/staging"), cib_device(lab)

        # every VM runs again on its host, from its disk on the export
        assert running_where(lab) == vms_before
        for name, vid in vm_ids.items():
            host = vms_before[name][1]
            seen = device_of_file(lab, host, f"{DATASTORE}/0/{vid}/disk.0")
            assert seen == (export / "0" / str(vid) / "disk.0").stat().st_dev, name

        # the manifest's checksums match the files on the export, recomputed here
        entries = manifest(lab)
        files = {
            p: e
            for p, e in entries.items()
            if e.get("type") == "file" and e.get("state") == "verified"
        }
        assert {p for p, v in old_tree.items() if v[0] == 0o100000} == set(files)
        for rel, entry in files.items():
            assert checksum(export / rel) == entry["checksum"], rel
            assert checksum(old / rel) == entry["checksum"], rel
        # the old volume is as it was when the VMs were suspended: never written by the move
        assert tree(old) == old_tree
        # sparse images stay sparse: within 2 %, file by file and in total
        total_old = sum(allocated(old / p) for p in files)
        total_new = sum(allocated(export / p) for p in files)
        assert abs(total_new - total_old) <= 0.02 * total_old, (total_old, total_new)
        for rel in files:
            assert allocated(export / rel) <= allocated(old / rel) * 1.02 + 4096, rel
        assert cluster_holds(lab) == holds

        # the way back: a file the VMs changed on the export stops it before the switch
        vid = min(vm_ids.values())
        with (export / "0" / str(vid) / "disk.0").open("r+b") as fh:
            fh.write(b"written on NFS")
        refused = upgrader(
            "run", "ocfs2", "--stage", "--yes", "--config", str(lab["config"]), check=False
        )
        assert refused.returncode == 1, refused.stderr
        line = last_line(refused.stderr)
        assert f"0/{vid}/disk.0 (modified)" in line and "storage-writes-lost" in line, line
        assert mounts(lab) == now  # not switched
        assert running_where(lab) == vms_before  # and the VMs resumed

        back = upgrader(
            "run",
            "ocfs2",
            "--stage",
            "--yes",
            "--accept",
            "storage-writes-lost",
            "--config",
            str(lab["config"]),
            check=False,
        )
        assert back.returncode == 0, back.stderr
        assert mounts(lab) == old_mounts
        for host in hosts:
            lines = fstab(lab, host)
            assert f"/srv/lab/staging/datastores {DATASTORE} none bind 0 0" in lines, lines
            assert not any("export/staging" in line for line in lines), lines
        assert cib_device(lab) == old_device
        assert running_where(lab) == vms_before
        for name, vid in vm_ids.items():
            seen = device_of_file(lab, vms_before[name][1], f"{DATASTORE}/0/{vid}/disk.0")
            assert seen == old.stat().st_dev, name
        assert tree(old) == old_tree
        assert cluster_holds(lab) == holds
