"""What one run of a plan works with, and how a command builds it from its workspace.

The executor receives its collaborators (journal, playbook runner, gates, actions, progress
sink, clock) in a ``RunContext``, so tests hand in real or recorded ones; ``run_context``
builds the real ones for a command."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrader.actions import build_actions
from upgrader.ansible_adapter.outcome import PlaybookOutcome
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.compat import UTC
from upgrader.config.credentials import read_credentials
from upgrader.config.site import PROJECT_DIR, Environment
from upgrader.config.workspace import Workspace
from upgrader.errors import (
    UpgraderError,
)
from upgrader.gates.catalogue import build_gates
from upgrader.gates.gather import HostObserver
from upgrader.gates.model import Gates
from upgrader.journal.store import EventType, Journal
from upgrader.opennebula.client import OneClient
from upgrader.plan import estimates as est
from upgrader.plan.model import Plan, PlannedStep
from upgrader.plan.runbook_model import Runbook, Step
from upgrader.text import slug
from upgrader.windows.choose import next_after

if TYPE_CHECKING:
    from upgrader.windows.window import Window


# Set on SIGTERM (systemd ending a scheduled run, an operator's kill): the run lets the step
# in progress finish and pauses before the next batch or sequence instead of dying in a step.
STOP_REQUESTED = threading.Event()


Action = Callable[[PlannedStep, "RunContext"], Mapping[str, Any]]


PlaybookRunner = Callable[..., PlaybookOutcome]


@dataclass
class RunContext:
    """What one run of a plan works with."""

    plan: Plan
    run_id: str
    run_dir: Path
    journal: Journal
    run_playbook: PlaybookRunner
    project_dir: Path
    inventory: Path | str
    gates: Gates  # by name; new_round makes the next gates look at the hosts again
    actions: Mapping[str, Action]
    undo_steps: Mapping[str, Step]
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    progress: Callable[[str], None] = print
    cancel: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    abort_file: Path | None = None  # `upgrader abort` from another process creates it
    vault_password_file: Path | None = None  # the environment's, for every play
    # (step, gate) -> what a gate recorded before the step (journaled; resume refills it)
    snapshots: dict[tuple[str, str], Any] = field(default_factory=dict)
    # the maintenance window the run must finish its steps in (None: not limited)
    window: Window | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    estimates: Mapping[str, float] = field(default_factory=dict)  # step id -> seconds
    # the next window after a time (said when the run pauses), from the site config
    next_window: Callable[[datetime], Window | None] = lambda now: None
    # journals the cloud's state (versions, hosts, VMs) as the run ends, finished or not
    observe_cloud: Callable[[str], None] = lambda when: None
    # hosts this process's last play on them could not reach (a later answer clears one):
    # oned may take minutes to notice a host is gone, and an undo must not wait for it
    unreachable: set[str] = field(default_factory=set)


def marker(run_id: str, step_id: str, attempt: int) -> str:
    """The environment marker every process of one step attempt carries."""
    return f"{run_id}:{slug(step_id)}:{attempt}"


ABORT_FILE = "abort-requested"


def client_for(env: Environment) -> OneClient:
    """A client for the environment's oned, logged in with its credentials file."""
    return OneClient(
        env.oned,
        read_credentials(env),
        timeout=env.oned_timeout,
        timeout_setting=f"environments.{env.name}.oned_timeout",
    )


def observer(ws: Workspace) -> HostObserver:
    """The host-side observer of the environment (the tool's own gather play)."""
    return HostObserver(
        ws.env.inventory, PROJECT_DIR / "playbooks", vault_password_file=ws.env.vault_password_file
    )


def undo_steps(runbooks: Mapping[Any, Runbook]) -> dict[str, Step]:
    """The undo-only steps, by ``<hop>/<id>`` (each hop's runbook has its own
    restore-frontend, with its own versions) and by bare id for the last hop."""
    out: dict[str, Step] = {}
    for hop, rb in runbooks.items():
        for s in rb.steps:
            if s.undo_only:
                out[f"{'-'.join(hop)}/{s.id}"] = out[s.id] = s
    return out


def run_context(
    ws: Workspace,
    client: OneClient,
    plan: Plan,
    runbooks: Mapping[Any, Runbook],
    journal: Journal,
    run_id: str,
    dry_run: bool,
    progress: Callable[[str], None],
) -> RunContext:
    return RunContext(
        plan=plan,
        run_id=run_id,
        run_dir=ws.site.runs_dir / run_id,
        journal=journal,
        run_playbook=run_playbook,
        project_dir=ws.site.playbooks_dir,
        inventory=ws.env.inventory,
        gates=build_gates(client, progress, observer(ws), run_id=run_id),
        actions=build_actions(client),
        undo_steps=undo_steps(runbooks),
        dry_run=dry_run,
        progress=progress,
        abort_file=ws.site.runs_dir / run_id / ABORT_FILE,
        vault_password_file=ws.env.vault_password_file,
        observe_cloud=lambda when: record_cloud(journal, client, when),
    )


def estimates(ws: Workspace, plan: Plan, run_id: str | None = None) -> dict[str, float]:
    """Seconds per step: measured in earlier runs of the site where there are any."""
    samples = est.measured(ws.site.runs_dir, exclude=run_id)
    refined = est.refine(plan, samples, ws.env.requires_rehearsal_on)
    return {step: e.seconds for step, e in refined.items()}


def cloud_state(client: OneClient) -> dict[str, Any]:
    """Versions, hosts and VMs as the run leaves (or finds) the cloud; what could not be
    read is said, not guessed (the report shows it)."""
    out: dict[str, Any] = {}
    try:
        out["oned_version"] = str(client.detect_version())
        out["hosts"] = [{"name": h.name, "state": h.state.name} for h in client.host_pool()]
        out["vms"] = [
            {
                "id": v.id,
                "name": v.name,
                "state": v.state.name,
                "lcm_state": v.lcm_state.name,
                "host": v.host,
            }
            for v in client.vm_pool()
        ]
    except UpgraderError as exc:
        out["error"] = str(exc)
    return out


def record_cloud(journal: Journal, client: OneClient, when: str) -> None:
    """Journal the cloud's state at the start or end of a run (never fails the run)."""
    journal.record(EventType.CLOUD_STATE, when=when, **cloud_state(client))


@contextlib.contextmanager
def sigterm_pauses() -> Iterator[None]:
    """While the run executes, SIGTERM asks it to pause at its next safe point (see
    executor.STOP_REQUESTED); the process's own handling comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: STOP_REQUESTED.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def limit(
    ctx: RunContext, ws: Workspace, window: Any, figures: Mapping[str, float] | None = None
) -> None:
    """Give the run its window and the estimates it judges each step's fit with."""
    ctx.window = window
    ctx.next_window = next_after(ws)
    ctx.estimates = figures if figures is not None else estimates(ws, ctx.plan, ctx.run_id)
