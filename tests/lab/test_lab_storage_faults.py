"""Faults of the storage move on a lab cloud: the NFS export full (the run stops in preflight
with the numbers, nothing changed) and a copy corrupted on the export after the delta (the
verification names the file, nothing is switched, the VMs run again on the old volume)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import upgrader
from tests.lab.fault_runs import (
    Run,
    cluster_holds,
    finish_then_clear,
    is_event,
    last_line,
    running_where,
    undo_outcomes,
)
from tests.lab.storage_runs import cib_device, fstab, mounts, storage_lab, tree
from tests.lab.test_lab import hosts_of
from tests.reliability import fault_matrix

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]


def test_a_full_export_stops_in_preflight_and_a_corrupt_copy_before_the_switch(
    tmp_path: Path,
    tally_row: Any,
) -> None:
    with storage_lab(2) as lab:
        hosts = hosts_of(lab, "staging")
        vms_before = running_where(lab)
        holds = cluster_holds(lab)
        before = (mounts(lab), {h: fstab(lab, h) for h in hosts}, cib_device(lab))
        old_tree = tree(lab["old"])

        # nfs-full: refused before anything changed, with both numbers
        for sub in ("full", "corrupt"):
            (tmp_path / sub).mkdir()
        upgrader("lab", "fault", "nfs-full", "--name", lab["name"], "--cloud", "staging")
        try:
            full = Run(lab["config"], lab["dir"] / "runs", tmp_path / "full", "nfs")
            code, stderr = full.finish()
        finally:
            upgrader(
                "lab", "fault", "nfs-full", "--name", lab["name"], "--cloud", "staging", "--clear"
            )
        matrix_row = fault_matrix.check("nfs-full", code, stderr, full.events())
        tally_row("fault_matrix", **matrix_row)
        assert matrix_row["check"] == "pass", matrix_row
        assert code == 1, stderr
        line = last_line(stderr)
        # the preflight gate reads the export's room before any step starts
        assert line.startswith(
            "error: gate datastores-healthy fail before step ocfs2-nfs/preflight: "
        ), line
        assert "NFS export /srv/lab/nfs/export/staging 0.0% free (0 of " in line, line
        assert [e for e in full.events() if e["type"] == "step_started"] == []
        assert running_where(lab) == vms_before
        assert (mounts(lab), {h: fstab(lab, h) for h in hosts}, cib_device(lab)) == before

        # corrupt-copy after the delta: the verification names the file; nothing switched
        injected = threading.Event()
        run = Run(lab["config"], lab["dir"] / "runs", tmp_path / "corrupt", "nfs")

        def corrupt() -> None:
            with run.frozen():  # before the verification reads anything
                upgrader(
                    "lab", "fault", "corrupt-copy", "--name", lab["name"], "--cloud", "staging"
                )
                injected.set()

        run.when(is_event("step_finished", "ocfs2-nfs/delta-sync"), corrupt)
        code, stderr = finish_then_clear(run, injected, lab, "corrupt-copy")
        events = run.events()
        matrix_row = fault_matrix.check("corrupt-copy", code, stderr, events)
        tally_row("fault_matrix", **matrix_row)
        assert matrix_row["check"] == "pass", matrix_row
        assert injected.is_set()
        assert code == 1, stderr
        line = last_line(stderr)
        largest = max(
            (p for p in lab["old"].rglob("*") if p.is_file() and not p.is_symlink()),
            key=lambda p: p.stat().st_size,
        )
        rel = str(largest.relative_to(lab["old"]))
        assert "ocfs2-nfs/verify" in line and rel in line and "not switched" in line, line
        started = [e["step"] for e in events if e["type"] == "step_started"]
        assert "ocfs2-nfs/switch" not in started
        assert [u for u, kind in undo_outcomes(events) if kind == "undo_done"] == [
            "resume-vms-undo",
            "release-pacemaker",
            "release-puppet",
        ]
        assert running_where(lab) == vms_before
        assert (mounts(lab), {h: fstab(lab, h) for h in hosts}, cib_device(lab)) == before
        assert tree(lab["old"]) == old_tree
        assert cluster_holds(lab) == holds
