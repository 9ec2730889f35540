"""The fault matrix: every ``upgrader lab fault`` injected where it hurts most, and what must
follow. One table, read by every test that injects a fault during a run:

- tests/reliability/test_fault_matrix.py: oned restarting, Puppet re-enabled, a host gone and
  the controller's network lost for 30 s, each in the node stage, and a fence agent broken as
  Pacemaker is released (one 3.4 -> 3.6 run, resumed after each);
- tests/lab/test_lab_fault_*.py and test_lab_storage_faults.py: a migration that hangs, the
  package gone after the backup, libvirtd crashing, the NFS export full, a corrupt copy;
- tests/lab/test_lab_no_python.py: a host without a Python Ansible can use;
- tests/lab/test_lab_window.py: the run's window closing in the node stage (a pause).

``check(fault, code, stderr, events)`` compares what happened with the row and returns the
row as printed at the end of the test run (tests/support/tallies.py), with ``check`` "pass" or
what differed. A row's ``stops`` is the first failure the journal shows: ``step S`` or ``gate G
after|before step S``. ``undo`` lists the undo actions that ended, in order, "(failed)" after
one that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RELEASES = ("release-pacemaker", "release-puppet")


@dataclass(frozen=True)
class Expect:
    fault: str
    injected: str
    stops: str
    undo: tuple[str, ...]
    exit: int
    line: str  # a regular expression the last stderr line must match from its start
    row: str = ""  # the row's name when a fault has several rows (default: the fault)

    @property
    def name(self) -> str:
        return self.row or self.fault


H = "3.4-3.6"
MATRIX = {
    e.name: e
    for e in (
        Expect("slow-migration", "before the run (drain budget 20 s)", f"step {H}/drain@1",
               RELEASES, 1, rf"error: step {H}/drain@1: live migration of VM \d+ .* did not "
               r"finish within 20s; .* enabled again \(hint: "),
        Expect("package-missing", "after 3.2-3.4/backup", "step 3.2-3.4/upgrade-frontend",
               ("restore-frontend", "recreate-vms-rollback", *RELEASES), 1,
               r"error: step 3.2-3.4/upgrade-frontend: playbook frontend-upgrade.yml failed"),
        Expect("libvirtd-crash", f"after {H}/move-back@1, on host 2",
               f"gate no-duplicate-vms after step {H}/move-back@1", RELEASES, 1,
               rf"error: gate no-duplicate-vms fail after step {H}/move-back@1: VM \d+ .* runs "
               r"on .* \(hint: a VM running twice corrupts its disk"),
        Expect("no-python", "before the run, on host 2", "gate targets-supported before step "
               "3.2-3.4/preflight", (), 1, r"error: gate targets-supported fail before step "
               r"3.2-3.4/preflight: \S+: "),
        Expect("nfs-full", "before the storage run", "gate datastores-healthy before step "
               "ocfs2-nfs/preflight", (), 1, r"error: gate datastores-healthy fail before step "
               r"ocfs2-nfs/preflight: .*NFS export /srv/lab/nfs/export/staging 0\.0% free"),
        Expect("corrupt-copy", "after ocfs2-nfs/delta-sync", "step ocfs2-nfs/verify",
               ("resume-vms-undo", *RELEASES), 1,
               r"error: step ocfs2-nfs/verify: .* not switched"),
        Expect("oned-down", f"{H}/drain@1 started, oned back 15 s later",
               f"step {H}/drain@1", RELEASES, 1, rf"error: step {H}/drain@1: .*oned"),
        Expect("puppet-enabled", f"after {H}/enable@1, on host 2",
               f"gate puppet-held after step {H}/enable@1", RELEASES, 1,
               rf"error: gate puppet-held fail after step {H}/enable@1: "),
        Expect("host-unreachable", f"{H}/upgrade-node@2 started, host 2",
               f"step {H}/upgrade-node@2", ("release-pacemaker", "release-puppet (failed)"), 1,
               rf"error: step {H}/upgrade-node@2: playbook node-upgrade.yml failed"),
        # cut off, the controller cannot release what it holds until the network is back:
        # an undo fails (the hold stays: the safe side) or ends, by when it comes; the
        # resume goes on under the holds taken again
        Expect("network-lost", f"{H}/move-back@2 started, controller cut off 30 s",
               f"step {H}/move-back@2", tuple(f"{r} (failed)?" for r in RELEASES), 1,
               rf"error: step {H}/move-back@2: cannot reach oned at "),
        Expect("host-unreachable", "ocfs2-nfs/switch started, host 2", "step ocfs2-nfs/switch",
               ("switch-back (failed)", "resume-vms-undo (failed)", "release-pacemaker",
                "release-puppet (failed)"), 1,
               r"error: step ocfs2-nfs/switch: playbook storage-switch.yml failed",
               row="host-unreachable in the storage switch"),
        # not a lab fault: the window the run was given closes in the node stage (a pause,
        # not a failure: nothing is undone, the holds stay until the resume)
        Expect("window closes", "run 3.6 --window now+20m, 4 VMs on host 2",
               f"paused before step {H}/drain@2", (), 3,
               rf"error: paused before {H}/drain@2: the window closes at "),
        Expect("stonith-agent-broken", f"{H}/release-pacemaker-now started",
               f"gate fencing-ready after step {H}/release-pacemaker-now", RELEASES, 1,
               rf"error: gate fencing-ready fail after step {H}/release-pacemaker-now: "),
    )
}  # fmt: skip


def stopped_at(events: list[dict[str, Any]]) -> str:
    """The first failure the journal shows: a failed step or a failed gate verdict."""
    for e in events:
        if e["type"] == "run_paused":
            return f"paused before step {e['next_step']}"
        if e["type"] == "step_failed":
            return f"step {e['step']}"
        if e["type"] == "gate_verdict" and e.get("verdict") == "fail":
            return f"gate {e['gate']} {e.get('phase', 'after')} step {e['step']}"
    return "(nothing stopped the run)"


def undo_done(events: list[dict[str, Any]]) -> tuple[str, ...]:
    """The undo actions that ended, in order; one that failed says so."""
    ends = {"undo_done": "", "undo_failed": " (failed)"}
    return tuple(e["undo_id"] + ends[e["type"]] for e in events if e["type"] in ends)


def _same(seen: Any, want: Any) -> bool:
    """Equal; in an undo list, "NAME (failed)?" is NAME ended either way."""
    if not isinstance(want, tuple):
        return bool(seen == want)
    return len(seen) == len(want) and all(
        s in (w[: -len(" (failed)?")], w[:-1]) if w.endswith(" (failed)?") else s == w
        for s, w in zip(seen, want, strict=True)
    )


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


def check(row: str, code: int, stderr: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The row for the printed table, with ``check`` "pass" or what differs from MATRIX."""
    want = MATRIX[row]
    line = last_line(stderr)
    seen = {"stops": stopped_at(events), "undo": undo_done(events), "exit": code}
    wrong = [f"{k} {v!r}, expected {getattr(want, k)!r}" for k, v in seen.items()
             if not _same(v, getattr(want, k))]  # fmt: skip
    if not re.match(want.line, line):
        wrong.append(f"line {line!r} does not match {want.line!r}")
    return {
        "fault": want.fault,
        "injected": want.injected,
        "stops at": seen["stops"],
        "undo": ", ".join(seen["undo"]) or "-",
        "exit": code,
        "line": line[:60],
        "check": "pass" if not wrong else "; ".join(wrong),
    }
