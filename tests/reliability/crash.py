"""Crash and resume on the built-in lab: one trial kills ``upgrader run`` with SIGKILL at a
random moment of a full run, resumes it with ``upgrader resume``, then checks what an operator
would check the morning after. Used by tests/reliability/test_crash_resume.py (CI: 5 trials)
and benchmarks/crash_resume.py (50).

A trial has a fresh lab of its own (``lab up`` takes seconds), so trials never depend on one
another. The runbook cycles through the three a site runs: the 3.2 -> 3.4 upgrade (its VMs
are shut down and re-created: the riskiest moment to die), 3.4 -> 3.6 (drains by live
migration), and the storage move from OCFS2 to NFS (copy, switch, VMs suspended).

The moment: a step of the plan picked at random (or the preflight before any step), then a
random 0-4 s after that step started, so kills land inside steps, between a step and its gate,
and inside gate rounds, whatever the lab's speed. In a storage trial the VMs write files after
the pre-sync, so the delta has work; every other storage trial dies inside the delta copy,
0-1 s after it recorded its first file.

Invariants after the resumed run finished:
- every VM of before exists and runs (by name);
- no domain runs on two hosts (``virsh list`` on every host);
- storage: every verified manifest entry's checksum matches the file on the export, computed
  here; every file the VMs wrote after the pre-sync is verified there; no file verified before
  the kill was copied again; the old datastore is unchanged (since the VMs' writes);
- every journal of the lab replays cleanly, and the run ends ``succeeded``;
- no Ansible or copy process is left, on the controller or on any lab host;
- Pacemaker's maintenance-mode and every host's Puppet hold are as they were before the run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.fault_runs import cluster_holds, running_where
from tests.lab.storage_runs import add_images, checksum, manifest, tree
from tests.lab.test_lab import hosts_of
from upgrader.ansible_adapter.runner import leftover_processes
from upgrader.journal.store import read_events, replay
from upgrader.lab import hosts as hs
from upgrader.lab.lab import load_spec

LAB_ROOT = Path("/var/lib/upgrader-lab")
DELTA = "ocfs2-nfs/delta-sync (a copied file)"
RUN_TIMEOUT = 1200


@dataclass(frozen=True)
class Kind:
    """One runbook a trial runs: the lab's starting version and ``upgrader run``'s target."""

    name: str
    version: str
    target: str
    storage: bool = False


KINDS = (
    Kind("upgrade 3.2->3.4", "3.2.1", "3.4"),
    Kind("storage ocfs2->nfs", "3.2.1", "nfs", storage=True),
    Kind("upgrade 3.4->3.6", "3.4.1", "3.6"),
)


@dataclass
class Trial:
    """What one trial did and found; ``failures`` empty when every invariant held."""

    number: int
    kind: str
    victim: str = ""
    killed_after: float = 0.0
    killed: bool = False
    resumes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.killed and not self.failures

    def row(self) -> dict[str, Any]:
        return {
            "trial": f"{self.number:02d}",
            "runbook": self.kind,
            "killed in": self.victim if self.killed else "(not killed)",
            "after s": f"{self.killed_after:.1f}",
            "resumes": self.resumes,
            "invariants": "held" if not self.failures else "; ".join(self.failures),
        }


def cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def lab_up(name: str, subnet: str, kind: Kind, vms: int) -> dict[str, Any]:
    cli("lab", "down", "--name", name)
    done = cli(
        "lab", "up", "--name", name, "--subnet", f"{subnet}.0/24", "--hosts-staging", "2",
        "--hosts-production", "1", "--vms", str(vms), "--version", kind.version,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"lab up {name}: {done.stderr.strip()}")
    directory = LAB_ROOT / name
    lab = {"name": name, "spec": load_spec(name), "dir": directory,
           "config": directory / "upgrader.yml"}  # fmt: skip
    lab["old"] = directory / "share" / "staging" / "datastores"
    lab["export"] = directory / "share" / "nfs" / "export" / "staging"
    if kind.storage:
        add_images(lab["old"])
    return lab


def planned_steps(lab: dict[str, Any], kind: Kind) -> list[str]:
    done = cli("plan", kind.target, "--stage", "--json", "--config", str(lab["config"]))
    if done.returncode != 0:
        raise RuntimeError(f"plan {kind.target}: {done.stderr.strip()}")
    plan = json.loads(done.stdout)
    return [s["id"] if isinstance(s, dict) else str(s) for s in plan["steps"]]


def journals(lab: dict[str, Any]) -> list[Path]:
    return sorted((lab["dir"] / "runs").glob("staging-*/journal.jsonl"))


def events(lab: dict[str, Any]) -> list[dict[str, Any]]:
    found = journals(lab)
    if not found:
        return []
    lines = found[-1].read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def domains(lab: dict[str, Any]) -> dict[str, list[str]]:
    """domain -> the hosts whose libvirt runs it."""
    where: dict[str, list[str]] = {}
    for host in hosts_of(lab, "staging"):
        out = hs.enter(lab["dir"], host, "virsh", "list", "--name", check=False).stdout
        for name in out.split():
            where.setdefault(name, []).append(host)
    return where


def leftovers(lab: dict[str, Any], markers: list[str]) -> list[str]:
    """Ansible or copy processes still alive: the controller's (by the marker upgrader puts in
    their environment) and every lab host's (by command line)."""
    found = [f"controller pid {pid} ({m})" for m in markers for pid in leftover_processes(m)]
    for host in [h.name for h in lab["spec"].hosts]:
        out = hs.enter(
            lab["dir"], host, "pgrep", "-af", "AnsiballZ|ansible|upgrader_datastore|onedb",
            check=False,
        ).stdout  # fmt: skip
        found += [f"{host}: {line}" for line in out.splitlines() if "pgrep" not in line]
    return found


def snapshot(lab: dict[str, Any], kind: Kind) -> dict[str, Any]:
    state = {"vms": running_where(lab), "holds": cluster_holds(lab)}
    if kind.storage:
        state["old"] = tree(lab["old"])
    return state


def vms_write(lab: dict[str, Any], proc: subprocess.Popen[str], before: dict[str, Any],
              changed: list[str]) -> None:  # fmt: skip
    """Once the pre-sync finished, write 4 MiB files in each VM's directory of the old
    datastore, as running VMs do; the old tree of reference is then the one after them."""
    while proc.poll() is None:
        if any(e["type"] == "step_finished" and e.get("step") == "ocfs2-nfs/presync"
               for e in events(lab)):  # fmt: skip
            for vm_dir in sorted(p for p in (lab["old"] / "0").iterdir() if p.is_dir()):
                for i in range(3):
                    target = vm_dir / f"snap.{i}"
                    target.write_bytes(os.urandom(4 << 20))
                    changed.append(str(target.relative_to(lab["old"])))
            before["old"] = tree(lab["old"])
            return
        time.sleep(0.05)


def in_the_delta(lab: dict[str, Any]) -> bool:
    try:
        return any(e.get("phase") == "delta" for e in manifest(lab).values())
    except Exception:  # no manifest yet
        return False


def kill_at(proc: subprocess.Popen[str], lab: dict[str, Any], victim: str, after: float) -> bool:
    """SIGKILL the run's process group ``after`` s once ``victim`` started (at once: the
    preflight; DELTA: once the delta copy recorded its first file); False when the run ended
    first."""
    step = "ocfs2-nfs/delta-sync" if victim == DELTA else victim
    while step and proc.poll() is None:
        if any(e["type"] == "step_started" and e.get("step") == step for e in events(lab)):
            break
        time.sleep(0.05)
    while victim == DELTA and proc.poll() is None and not in_the_delta(lab):
        time.sleep(0.05)
    deadline = time.monotonic() + after
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def verified_copies(lab: dict[str, Any]) -> dict[str, int]:
    try:
        entries = manifest(lab)
    except Exception:  # no manifest yet: nothing was copied
        return {}
    return {p: e.get("copies", 0) for p, e in entries.items() if e.get("state") == "verified"}


def run_trial(number: int, name: str, subnet: str, workdir: Path, *, seed: int,
              vms: int = 2, log: Any = print) -> Trial:  # fmt: skip
    rng = random.Random(seed * 1000 + number)
    kind = KINDS[number % len(KINDS)]
    trial = Trial(number, kind.name)
    started = time.monotonic()
    lab = lab_up(name, subnet, kind, vms)
    try:
        steps = planned_steps(lab, kind)
        before = snapshot(lab, kind)
        # every other storage trial dies inside the delta copy, the moment a crash costs most
        in_delta = kind.storage and number % (2 * len(KINDS)) == 1
        trial.victim = DELTA if in_delta else rng.choice(["(preflight)", *steps])
        trial.killed_after = rng.uniform(0.0, 1.0 if in_delta else 4.0)
        workdir.mkdir(parents=True, exist_ok=True)
        with (workdir / f"trial-{number:02d}.stderr").open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "upgrader", "run", kind.target, "--stage", "--yes",
                 "--config", str(lab["config"])],
                stdout=subprocess.DEVNULL, stderr=err, text=True, start_new_session=True,
            )  # fmt: skip
            changed: list[str] = []
            if kind.storage:  # the VMs write after the pre-sync: the delta has work
                writer = threading.Thread(target=vms_write, args=(lab, proc, before, changed))
                writer.start()
            victim = "" if trial.victim == "(preflight)" else trial.victim
            trial.killed = kill_at(proc, lab, victim, trial.killed_after)
            if kind.storage:
                writer.join(timeout=120)
        log(f"[crash] trial {number}: {kind.name}, "
            f"{'killed' if trial.killed else 'NOT killed'} {trial.killed_after:.1f} s "
            f"into {trial.victim}")  # fmt: skip
        at_kill = verified_copies(lab) if kind.storage else {}
        if changed:
            done = sum(rel in at_kill for rel in changed)
            trial.notes.append(f"{done} of {len(changed)} files the VMs wrote verified at the kill")
        finish(lab, kind, trial)
        check(lab, kind, trial, before, at_kill, changed)
    except Exception as exc:  # a trial that breaks is a failed trial, with its reason
        trial.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        trial.seconds = time.monotonic() - started
        cli("lab", "down", "--name", name)
    return trial


def finish(lab: dict[str, Any], kind: Kind, trial: Trial) -> None:
    """Resume until the run is done, as an operator would: ``resume --stage --yes``; ``run``
    again when the kill came before the run had a journal."""
    for _ in range(3):
        if not journals(lab):
            done = cli("run", kind.target, "--stage", "--yes", "--config", str(lab["config"]))
        else:
            trial.resumes += 1
            done = cli("resume", "--stage", "--yes", "--config", str(lab["config"]))
        if done.returncode == 0:
            return
        trial.notes.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        if "already finished" in done.stderr or "succeeded" in done.stderr:
            return
        raise AssertionError(f"resume exited {done.returncode}: {trial.notes[-1]}")


def check(lab: dict[str, Any], kind: Kind, trial: Trial, before: dict[str, Any],
          at_kill: dict[str, int], changed: Sequence[str] = ()) -> None:  # fmt: skip
    fail = trial.failures.append
    now = running_where(lab)
    for vm in before["vms"]:
        if vm not in now:
            fail(f"VM {vm} is gone")
        elif now[vm][0] != "RUNNING":
            fail(f"VM {vm} is {now[vm][0]}")
    for domain, hosts in sorted(domains(lab).items()):
        if len(hosts) > 1:
            fail(f"domain {domain} runs on {', '.join(hosts)}")
    markers: list[str] = []
    for path in journals(lab):
        evs = read_events(path)
        state = replay(evs)
        markers += [e.get("marker") for e in evs if e.get("marker")]
        if path == journals(lab)[-1] and state.status.value != "succeeded":
            fail(f"the run is {state.status.value}")
    if kind.storage:
        entries = manifest(lab)
        for rel, entry in entries.items():
            verified = entry.get("type") == "file" and entry.get("state") == "verified"
            if verified and checksum(lab["export"] / rel) != entry["checksum"]:
                fail(f"{rel}: checksum on the export differs from the manifest")
        for rel in changed:
            if entries.get(rel, {}).get("state") != "verified":
                fail(f"{rel} changed after the pre-sync and is not verified on the export")
            elif checksum(lab["old"] / rel) != entries[rel]["checksum"]:
                fail(f"{rel}: the manifest's checksum is not the old datastore's")
        for rel, copies in at_kill.items():
            if entries.get(rel, {}).get("copies") != copies:
                fail(f"{rel} was verified before the kill and copied again")
        if tree(lab["old"]) != before["old"]:
            fail("the old datastore changed")
    time.sleep(0.5)
    left = leftovers(lab, markers)
    if left:
        fail("left running: " + "; ".join(left[:3]))
    if cluster_holds(lab) != before["holds"]:
        fail(f"Pacemaker/Puppet {cluster_holds(lab)} != {before['holds']}")
