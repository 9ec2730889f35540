"""What the lab tests of faults injected during a real ``upgrader run --stage`` share
(tests/lab/test_lab_fault_*.py: a migration that hangs, the front end's package gone after the
backup, libvirtd crashing while the hypervisors are upgraded). Each test brings up its own
small lab, so the session lab is never touched, and asserts what an operator would see: the
exit code, the one-line error, the journal, and the cloud afterwards (oned, virsh, Pacemaker,
Puppet). One module a test, so pytest-xdist can run them on different workers.

Lab names and subnets come from ``side_lab`` (conftest.py), which gives this module the
offsets 100, 110 and 120: ``<session lab>f1..f3`` on the session's /24 with the third octet
+ 100/110/120 (+ the xdist worker number): ``utlab``/``10.79.0`` -> ``utlabf1``/``10.79.100``
... ``utlabf3``/``10.79.120``. The name keeps the namespaces (``<name>-*``) apart from the
session lab's, the subnet the machine's route to each lab.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import side_lab, upgrader
from tests.lab.test_cluster_playbooks import maintenance_mode, puppet_hold_of
from tests.lab.test_lab import client, hosts_of
from upgrader.lab.lab import load_spec

RUN_TIMEOUT = 900  # a failing staging run of these labs ends in 3 to 5 minutes


# ------------------------------------------------------------------------------ the labs
def lab_address(n: int) -> tuple[str, str]:
    """Name and subnet of this module's lab ``n`` (1 to 3; see the module docstring)."""
    name, subnet = side_lab(f"f{n}", 90 + 10 * n)
    return name, f"{subnet}.0/24"


@contextmanager
def fault_lab(n: int, version: str) -> Iterator[dict[str, Any]]:
    """A 2-host staging cloud with 4 VMs at ``version``, for one test; down at the end."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    name, subnet = lab_address(n)
    upgrader("lab", "down", "--name", name)
    upgrader(
        "lab",
        "up",
        "--name",
        name,
        "--subnet",
        subnet,
        "--hosts-staging",
        "2",
        "--hosts-production",
        "1",
        "--vms",
        "4",
        "--version",
        version,
    )
    try:
        lab = {"name": name, "spec": load_spec(name), "dir": Path("/var/lib/upgrader-lab") / name}
        lab["config"] = lab["dir"] / "upgrader.yml"
        yield lab
    finally:
        upgrader("lab", "down", "--name", name)


@contextmanager
def fault(lab: dict[str, Any], name: str, *where: str) -> Iterator[None]:
    """``upgrader lab fault NAME``, cleared at the end whatever happened."""
    upgrader("lab", "fault", name, "--name", lab["name"], "--cloud", "staging", *where)
    try:
        yield
    finally:
        upgrader(
            "lab", "fault", name, "--name", lab["name"], "--cloud", "staging", *where, "--clear"
        )


def with_runbook_vars(lab: dict[str, Any], tmp_path: Path, step: str, **values: Any) -> Path:
    """A site config like the lab's whose runbooks give ``step`` these vars."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    source = Path(__file__).resolve().parents[2] / "runbooks"
    for path in source.glob("*.yml"):
        book = yaml.safe_load(path.read_text())
        for entry in book["steps"]:
            if entry["id"] == step:
                entry["vars"] = {**entry.get("vars", {}), **values}
        (runbooks / path.name).write_text(yaml.safe_dump(book, sort_keys=False))
    site = yaml.safe_load(lab["config"].read_text())
    site.update(runbooks_dir=str(runbooks), runs_dir=str(lab["dir"] / "runs"))
    config = tmp_path / "upgrader.yml"
    config.write_text(yaml.safe_dump(site, sort_keys=False))
    return config


# ------------------------------------------------------------------------------- the run
class Run:
    """``upgrader run TARGET --stage --yes`` (3.6 unless told) as a process, with its journal."""

    def __init__(
        self, config: Path, runs_dir: Path, tmp_path: Path, target: str = "3.6", *more: str
    ) -> None:
        self.runs_dir = runs_dir
        self.stderr_path = tmp_path / "run.stderr"
        self.started = time.monotonic()
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "upgrader",
                    "run",
                    target,
                    "--stage",
                    "--yes",
                    "--config",
                    str(config),
                    *more,
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )

    def events(self) -> list[dict[str, Any]]:
        journals = sorted(self.runs_dir.glob("staging-*/journal.jsonl"))
        if not journals:
            return []
        lines = journals[-1].read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def when(self, predicate: Callable[[dict[str, Any]], bool], then: Callable[[], None]) -> None:
        """Call ``then`` (in a thread) as soon as the journal has an event ``predicate`` likes;
        if ``then`` fails, the run is killed and ``self.error`` says why."""
        self.error: BaseException | None = None

        def watch() -> None:
            while self.proc.poll() is None:
                if any(predicate(e) for e in self.events()):
                    try:
                        then()
                    except BaseException as exc:  # handed to the test
                        self.error = exc
                        for pid in self.tree():
                            os.kill(pid, signal.SIGCONT)
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    return
                time.sleep(0.1)

        self.watcher = threading.Thread(target=watch, daemon=True)
        self.watcher.start()

    def finish(self) -> tuple[int, str]:
        """Exit code and stderr; the run gets RUN_TIMEOUT seconds."""
        try:
            self.proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
            raise
        finally:
            print(f"\n[faults] the run took {time.monotonic() - self.started:.0f} s")
        return self.proc.returncode, self.stderr_path.read_text()

    def tree(self) -> list[int]:
        """The run's process and every process under it (ansible, ssh), parents first."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            except OSError:
                continue
            todo += [int(child) for child in children.split()]
        return found

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The run stopped where it is (SIGSTOP of its process tree), continued at the end."""
        pids = self.tree()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in reversed(pids):
                os.kill(pid, signal.SIGCONT)


def is_event(kind: str, step: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == kind and e.get("step") == step


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def undo_outcomes(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["undo_id"], e["type"])
        for e in events
        if e["type"] in ("undo_started", "undo_done", "undo_failed")
    ]


def gates_now(lab: dict[str, Any], *names: str) -> dict[str, dict[str, Any]]:
    """``upgrader gates --stage`` for ``names``, by gate."""
    args = [a for name in names for a in ("--gate", name)]
    result = upgrader(
        "gates",
        "--stage",
        "--json",
        "--wait",
        "60",
        "--config",
        str(lab["config"]),
        *args,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return {g["gate"]: g for g in json.loads(result.stdout)}


def running_where(lab: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """name -> (LCM state, host) of every VM that is not DONE."""
    return {
        vm.name: (vm.lcm_state.name, vm.host)
        for vm in client(lab, "staging").vm_pool()
        if vm.state.name != "DONE"
    }


def cluster_holds(lab: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """Pacemaker's maintenance-mode and each host's Puppet agent hold."""
    return maintenance_mode(lab), {h: puppet_hold_of(lab, h) for h in hosts_of(lab, "staging")}


def finish_then_clear(
    run: Run, done: threading.Event, lab: dict[str, Any], *fault: str, join: float = 60
) -> tuple[int, str]:
    """The run's exit code and stderr; then, whatever happened, the watcher is joined, its
    error raised, and the fault cleared if it was injected (``done`` set)."""
    try:
        return run.finish()
    finally:
        run.watcher.join(timeout=join)
        assert run.error is None, run.error
        if done.is_set():
            upgrader("lab", "fault", *fault, "--name", lab["name"], "--cloud", "staging", "--clear")
