"""Run one playbook through ansible-runner and hand back what happened as a value.

The only module that imports ``ansible_runner``. ``run_playbook`` never raises for a
failed, unreachable, cancelled or timed-out play: it returns a ``PlaybookOutcome`` and the
executor decides what that means (STYLE.md 2.4 rule 3). This module prepares the run (the
private data directory, secret variables, environment) and kills what it leaves behind;
``events.py`` reads the runner's events and builds the outcome, whose types
(``PlaybookCall``, ``PlaybookOutcome``, ...) are in ``outcome.py``, which loads no Ansible.

Killing for real: ansible-runner's cancel and timeout SIGKILL ansible-playbook's process
group, but whatever left that group survives: a task command that setsid()s (a daemon a task
starts), and on the later ansible-core releases every task worker, which forks into its own
session (a ``pause`` worker then hangs forever). Every process of a run therefore carries
``UPGRADER_MARKER=<marker>`` in its environment, and ``kill_marked`` finds them through
``/proc/*/environ`` whatever session they moved to.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ansible_runner

from upgrader.ansible_adapter.events import Watch, build_outcome
from upgrader.ansible_adapter.outcome import (
    PlaybookCall,
    PlaybookOutcome,
)
from upgrader.errors import PlaybookSetupError
from upgrader.journal.files import make_private_dir, write_private

__all__ = [
    "MARKER_VAR",
    "REPO_ROOT",
    "kill_marked",
    "leftover_processes",
    "run_playbook",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER_VAR = "UPGRADER_MARKER"

# Runner polls cancel_callback (and our deadline) only when pexpect returns: on output or
# every pexpect_timeout, 5 s by default. settings= is dropped with suppress_env_files, so
# the value goes into env/settings ourselves.
_PEXPECT_TIMEOUT = 0.5
_STAMP = ".upgrader-pdd"
_PRIVATE_VARS_FILE = "secrets/vars.json"


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
    watch = Watch(call.step_id, call.timeout, cancel, on_event, progress)
    cmdline = [*(["--check"] if call.check else []), *(["--diff"] if call.diff else [])]
    if call.secret_vars:
        cmdline += ["-e", shlex.quote(f"@{_write_secret_vars(pdd, call.secret_vars)}")]
    if call.vault_password_file is not None:
        cmdline += ["--vault-password-file", shlex.quote(str(call.vault_password_file.resolve()))]
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
        _make_private(pdd)
    if watch.reason is not None:
        killed = kill_marked(marker)
        watch.say(f"[step/{call.step_id}] {watch.reason}: killed {len(killed)} process(es)")
    if watch.error is not None:
        raise watch.error
    outcome = build_outcome(runner, watch, marker, tuple(killed), time.monotonic() - started)
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
    make_private_dir(pdd / "env")  # and the parents it creates: steps/, steps/NN-<step>/
    pdd.chmod(0o700)
    (pdd / _STAMP).write_text("private data directory of one upgrader playbook run\n")
    (pdd / "env" / "settings").write_text(json.dumps({"pexpect_timeout": _PEXPECT_TIMEOUT}))
    return pdd


def _make_private(root: Path) -> None:
    """Take group and other permissions off everything under ``root``.

    ansible-runner and ansible-playbook create their artifacts (stdout, events, the command
    and its environment) with the process umask, 0644 under the usual 022. ``root`` is 0700
    from the start, so nobody else could reach them meanwhile; this keeps them private when
    the run directory is copied or its mode is relaxed later.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    os.chmod(path, stat.S_IMODE(mode) & 0o700)
            except OSError:
                continue  # gone meanwhile


def _write_secret_vars(pdd: Path, secrets: Mapping[str, Any]) -> Path:
    """Write the secrets to an owner-only file, created with 0600 (no umask window); a file
    already there (a leftover) is an error, never silently reused."""
    path = pdd / _PRIVATE_VARS_FILE
    path.parent.mkdir(mode=0o700, exist_ok=True)
    values = {
        key: value if isinstance(value, str) else value.reveal() for key, value in secrets.items()
    }
    write_private(path, json.dumps(values), exclusive=True)
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
        # An inventory Ansible cannot parse (a tag its loader refuses, a broken script) would
        # otherwise be a warning: every play then matches no host and the step "succeeds".
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        MARKER_VAR: marker,
    }
    if (REPO_ROOT / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    if (REPO_ROOT / "collections").is_dir():
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO_ROOT / "collections")
    return env
