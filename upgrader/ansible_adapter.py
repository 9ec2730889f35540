"""Run one playbook through ansible-runner and hand back what happened as a value.

The only module that imports ``ansible_runner``. ``run_playbook`` never raises for a
failed, unreachable, cancelled or timed-out play: it returns a ``PlaybookOutcome`` and the
executor decides what that means (STYLE.md 2.4 rule 3).

Killing for real: ansible-runner's cancel and timeout SIGKILL ansible-playbook's process
group, but ansible-core 2.19 forks every task worker into its own session, so the worker
and the command it runs survive (a ``pause`` worker hangs forever). Every process of a run
therefore carries ``UPGRADER_MARKER=<marker>`` in its environment, and ``kill_marked``
finds them through ``/proc/*/environ`` whatever session they moved to.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ansible_runner

from upgrader.errors import PlaybookSetupError

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER_VAR = "UPGRADER_MARKER"
TAIL_LINES = 20

# Runner polls cancel_callback (and our deadline) only when pexpect returns: on output or
# every pexpect_timeout, 5 s by default. settings= is dropped with suppress_env_files, so
# the value goes into env/settings ourselves.
_PEXPECT_TIMEOUT = 0.5
_STAMP = ".upgrader-pdd"
_PRIVATE_VARS_FILE = "secrets/vars.json"
_DIFF_LIMIT = 4000
_MSG_LIMIT = 500
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued", "processed")


class PlaybookStatus(StrEnum):
    """How a play ended; the values are ansible-runner's status words."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class PlaybookCall:
    """One playbook run: what to run, where, against which hosts, and how.

    ``secret_vars`` values (``str`` or ``upgrader.opennebula.Secret``) are written to a 0600
    JSON file in ``private_data_dir``, passed as ``-e @file`` and deleted after the run;
    they never appear on a command line. Tasks that use them must set ``no_log: true``.
    ``marker`` names the run's processes (a fresh uuid when empty); journal it before the
    run so a later resume can ``kill_marked`` what a crashed upgrader left behind.
    """

    step_id: str
    playbook: Path
    project_dir: Path
    inventory: Path | str
    private_data_dir: Path
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
    limit: str | None = None
    check: bool = False
    diff: bool = False
    timeout: float | None = None
    marker: str = ""
    forks: int = 10

    def __post_init__(self) -> None:
        if not self.step_id:
            raise ValueError("PlaybookCall needs a step_id")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.forks < 1:
            raise ValueError(f"forks must be at least 1, not {self.forks}")
        if any(hasattr(value, "reveal") for value in self.extra_vars.values()):
            raise ValueError("secret values belong in secret_vars, not extra_vars")
        if overlap := sorted(set(self.extra_vars) & set(self.secret_vars)):
            raise ValueError(f"variables in both extra_vars and secret_vars: {overlap}")
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        object.__setattr__(self, "secret_vars", MappingProxyType(dict(self.secret_vars)))


@dataclass(frozen=True)
class TaskChange:
    """A task that changed (or, in check mode, would change) a host; ``diff`` is a summary."""

    host: str
    task: str
    action: str
    diff: str = ""


@dataclass(frozen=True)
class PlaybookOutcome:
    """What a playbook run did. ``stats`` maps host -> counter (ok, changed, failures, ...)."""

    status: PlaybookStatus
    rc: int
    stats: Mapping[str, Mapping[str, int]]
    failed_hosts: tuple[str, ...]
    unreachable_hosts: tuple[str, ...]
    changed: tuple[TaskChange, ...]
    stdout_tail: tuple[str, ...]
    duration: float
    marker: str = ""
    killed: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the play ran to the end without a failed or unreachable host."""
        return self.status is PlaybookStatus.SUCCESSFUL


def run_playbook(
    call: PlaybookCall,
    *,
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
    progress: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> PlaybookOutcome:
    """Run ``call`` to the end, to its timeout, or until ``cancel`` is set.

    ``on_event`` gets a slim dict per task start, host result and final stats (never the
    environment); ``progress`` gets lines like ``[step/drain] node01: task Migrate ... ok``.
    On cancel or timeout every process of the run is SIGKILLed before this returns.
    An exception raised by ``on_event`` or ``progress`` stops the run the same way and is
    then re-raised: a journal that cannot be written must not be ignored.

    Raises:
        PlaybookSetupError: ``private_data_dir`` exists, is not empty and is not ours.
    """
    marker = call.marker or uuid.uuid4().hex
    pdd = _fresh_private_data_dir(call.private_data_dir)
    watch = _Watch(call, cancel, on_event, progress)
    cmdline = [*(["--check"] if call.check else []), *(["--diff"] if call.diff else [])]
    if call.secret_vars:
        cmdline += ["-e", shlex.quote(f"@{_write_secret_vars(pdd, call.secret_vars)}")]
    started = time.monotonic()
    killed: list[int] = []
    try:
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            project_dir=str(call.project_dir.resolve()),
            playbook=str(call.playbook),
            inventory=_inventory_arg(call.inventory),
            extravars=dict(call.extra_vars) or None,
            limit=call.limit,
            forks=call.forks,
            cmdline=" ".join(cmdline) or None,
            envvars=_envvars(marker),
            cancel_callback=watch.should_stop,
            event_handler=watch.handle,
            quiet=True,
            suppress_env_files=True,
        )
    except BaseException:
        killed = kill_marked(marker)
        raise
    finally:
        (pdd / _PRIVATE_VARS_FILE).unlink(missing_ok=True)
    if watch.reason is not None:
        killed = kill_marked(marker)
        watch.say(f"[step/{call.step_id}] {watch.reason}: killed {len(killed)} process(es)")
    if watch.error is not None:
        raise watch.error
    outcome = _outcome(runner, watch, marker, tuple(killed), time.monotonic() - started)
    watch.say(
        f"[step/{call.step_id}] {outcome.status} (rc {outcome.rc}) in {outcome.duration:.1f}s"
    )
    return outcome


def leftover_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``UPGRADER_MARKER=<marker>``."""
    if not marker:
        raise ValueError("an empty marker would match nothing of ours")
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    me = os.getpid()
    try:
        entries = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        try:
            # A zombie's environ reads empty, so exited processes never match.
            environ = Path("/proc", name, "environ").read_bytes()
        except OSError:
            continue
        if int(name) != me and needle in environ.split(b"\0"):
            pids.append(int(name))
    return sorted(pids)


def kill_marked(marker: str, *, rounds: int = 5) -> list[int]:
    """SIGKILL every process carrying ``marker`` until none is left; return the pids killed.

    Several rounds, because a process may fork between the scan and the kill.
    """
    killed: list[int] = []
    for _ in range(rounds):
        pids = leftover_processes(marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            if pid not in killed:
                killed.append(pid)
        _wait_gone(marker, pids, limit=2.0)
    return killed


def _wait_gone(marker: str, pids: list[int], *, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and set(pids) & set(leftover_processes(marker)):
        time.sleep(0.02)


class _Watch:
    """Turns runner events into slim events, progress lines and changes; decides when to stop."""

    def __init__(
        self,
        call: PlaybookCall,
        cancel: threading.Event | None,
        on_event: Callable[[Mapping[str, Any]], None] | None,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.step_id = call.step_id
        self.cancel = cancel
        self.deadline = None if call.timeout is None else time.monotonic() + call.timeout
        self.on_event = on_event
        self.progress = progress
        self.reason: PlaybookStatus | None = None
        self.error: BaseException | None = None
        self.stats: dict[str, dict[str, int]] | None = None
        self.changes: list[TaskChange] = []
        self.failed: set[str] = set()
        self.unreachable: set[str] = set()

    def should_stop(self) -> bool:
        """cancel_callback for runner: polled every pexpect_timeout."""
        if self.reason is None:
            if self.error is not None or (self.cancel is not None and self.cancel.is_set()):
                self.reason = PlaybookStatus.CANCELED
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.reason = PlaybookStatus.TIMEOUT
        return self.reason is not None

    def handle(self, event: Mapping[str, Any]) -> bool:
        """event_handler for runner; keeps every event in the artifacts."""
        try:
            slim = self._slim(event)
            if slim is not None and self.on_event is not None:
                self.on_event(slim)
        except Exception as exc:  # runner would swallow it or leave ansible running
            self.error = self.error or exc
        return True

    def say(self, line: str) -> None:
        if self.progress is not None:
            try:
                self.progress(line)
            except Exception as exc:
                self.error = self.error or exc

    def _slim(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        base = {
            "event": name,
            "step": self.step_id,
            "counter": event.get("counter"),
            "created": event.get("created"),
        }
        if name == "playbook_on_stats":
            self.stats = _per_host_stats(data)
            return {**base, "stats": self.stats}
        action = data.get("resolved_action") or data.get("task_action") or ""
        if name == "playbook_on_task_start":
            return {**base, "task": data.get("task", ""), "action": action}
        if name not in _RESULTS:
            return None
        res = data.get("res") or {}
        host, task = data.get("host", ""), data.get("task", "")
        changed = bool(res.get("changed")) and name == "runner_on_ok"
        word = "changed" if changed else _RESULTS[name]
        if name == "runner_on_failed" and not data.get("ignore_errors"):
            self.failed.add(host)
        elif name == "runner_on_failed":
            word = "failed (ignored)"
        if name == "runner_on_unreachable":
            self.unreachable.add(host)
        slim = {
            **base,
            "host": host,
            "task": task,
            "action": action,
            "duration": data.get("duration"),
            "changed": changed,
            "result": word,
        }
        if changed:
            change = TaskChange(host, task, action, _diff_summary(res.get("diff")))
            self.changes.append(change)
            slim["diff"] = change.diff
        if name in {"runner_on_failed", "runner_on_unreachable"} and res.get("msg"):
            slim["msg"] = str(res["msg"])[:_MSG_LIMIT]
        self.say(f"[step/{self.step_id}] {host}: task {task} ... {word}")
        return slim


def _fresh_private_data_dir(path: Path) -> Path:
    """Empty the directory if an earlier run of ours left it; refuse anybody else's."""
    pdd = path.resolve()
    if pdd.exists():
        if not pdd.is_dir():
            raise PlaybookSetupError(f"private data directory {pdd} is not a directory")
        if any(pdd.iterdir()):
            if not (pdd / _STAMP).is_file():
                raise PlaybookSetupError(
                    f"private data directory {pdd} is not empty and was not made by upgrader",
                    hint="give each step its own directory under the run directory",
                )
            # Stale env/extravars, inventory or artifacts must never reach the new run.
            shutil.rmtree(pdd)
    (pdd / "env").mkdir(mode=0o700, parents=True)
    pdd.chmod(0o700)
    (pdd / _STAMP).write_text("private data directory of one upgrader playbook run\n")
    (pdd / "env" / "settings").write_text(json.dumps({"pexpect_timeout": _PEXPECT_TIMEOUT}))
    return pdd


def _write_secret_vars(pdd: Path, secrets: Mapping[str, Any]) -> Path:
    """Write the secrets to an owner-only file, created with 0600 (no umask window)."""
    path = pdd / _PRIVATE_VARS_FILE
    path.parent.mkdir(mode=0o700, exist_ok=True)
    values = {
        key: value if isinstance(value, str) else value.reveal() for key, value in secrets.items()
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh)
    return path


def _inventory_arg(inventory: Path | str) -> str:
    if isinstance(inventory, Path):
        return str(inventory.resolve())
    return inventory


def _envvars(marker: str) -> dict[str, str]:
    """PATH with this venv first (runner spawns ansible-playbook by name) and our config."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", os.defpath)]),
        "ANSIBLE_NOCOLOR": "1",
        MARKER_VAR: marker,
    }
    if (REPO_ROOT / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    if (REPO_ROOT / "collections").is_dir():
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO_ROOT / "collections")
    return env


def _per_host_stats(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    hosts = sorted({host for key in _STAT_KEYS for host in data.get(key) or {}})
    return {
        host: {key: int((data.get(key) or {}).get(host, 0)) for key in _STAT_KEYS} for host in hosts
    }


def _diff_summary(diff: Any) -> str:
    """A unified diff (or the module's prepared text) of what a task changed, truncated."""
    parts = []
    for item in diff if isinstance(diff, list) else [diff] if diff else []:
        if not isinstance(item, Mapping):
            continue
        if item.get("prepared"):
            parts.append(str(item["prepared"]))
            continue
        before, after = item.get("before", ""), item.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str):
            before, after = (
                json.dumps(x, indent=1, sort_keys=True, default=str) + "\n" for x in (before, after)
            )
        parts.append(
            "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=str(item.get("before_header", "before")),
                    tofile=str(item.get("after_header", "after")),
                )
            )
        )
    text = "".join(parts)
    return text if len(text) <= _DIFF_LIMIT else text[:_DIFF_LIMIT] + "\n[diff truncated]\n"


def _stdout_tail(artifact_dir: str) -> tuple[str, ...]:
    try:
        text = Path(artifact_dir, "stdout").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines[-TAIL_LINES:])


def _outcome(
    runner: Any, watch: _Watch, marker: str, killed: tuple[int, ...], duration: float
) -> PlaybookOutcome:
    stats = watch.stats or {}
    if watch.stats is not None:
        failed = {host for host, counts in stats.items() if counts["failures"]}
        unreachable = {host for host, counts in stats.items() if counts["dark"]}
    else:  # cancelled, timed out or crashed: no recap, so go by the events seen
        failed, unreachable = watch.failed, watch.unreachable
    if watch.reason is not None:
        status = watch.reason
    elif runner.status == PlaybookStatus.SUCCESSFUL:
        status = PlaybookStatus.SUCCESSFUL
    else:
        status = PlaybookStatus.FAILED
    return PlaybookOutcome(
        status=status,
        rc=runner.rc if isinstance(runner.rc, int) else 1,
        stats=MappingProxyType(stats),
        failed_hosts=tuple(sorted(failed)),
        unreachable_hosts=tuple(sorted(unreachable)),
        changed=tuple(watch.changes),
        stdout_tail=_stdout_tail(runner.config.artifact_dir),
        duration=round(duration, 3),
        marker=marker,
        killed=killed,
    )
