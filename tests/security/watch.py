"""Watching a real ``upgrader`` command for secrets: while it runs, the command line and the
environment of every process on the machine, polled every 50 ms; after it ends, every file
under the directories it writes to.

    result, watch = run_watched(cmd, {"oned password": pw}, cwd=root)
    assert watch.sightings == [] and watch.saw("ansible-playbook", str(root))
    assert files_holding(root, {"oned password": pw}, skip={creds}) == []

A watch that never saw the command's own children proves nothing, hence ``saw``: the tests
ask it for ``ansible-playbook`` before they trust an empty list of sightings.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL = 0.05


@dataclass(frozen=True)
class Sighting:
    """A secret seen in a process: which one, where, and the process's command line."""

    secret: str
    pid: int
    where: str  # "cmdline" or "environ"
    command: str

    def __str__(self) -> str:
        return f"{self.secret} in /proc/{self.pid}/{self.where} of: {self.command[:300]}"


@dataclass
class ProcWatch:
    """Polls /proc in a thread until stopped; keeps what it found and what it saw run."""

    secrets: Mapping[str, bytes]
    sightings: list[Sighting] = field(default_factory=list)
    commands: set[str] = field(default_factory=set)
    rounds: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def saw(self, *words: str) -> bool:
        """Whether some process's command line, while watched, contained all of ``words``
        (other processes of the machine are seen too: name one of the command's paths)."""
        return any(all(w in command for w in words) for command in self.commands)

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self._round(me)
            self.rounds += 1
            self._stop.wait(POLL)
        self._round(me)  # once more: the command's last moment

    def _round(self, me: int) -> None:
        try:
            pids = [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
        except OSError:
            return
        for pid in pids:
            if pid == me:
                continue
            cmdline = _read(f"/proc/{pid}/cmdline")
            if not cmdline:
                continue  # a kernel thread, a zombie, or gone
            command = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
            self.commands.add(command[:500])
            environ = _read(f"/proc/{pid}/environ")
            for label, secret in self.secrets.items():
                for where, data in (("cmdline", cmdline), ("environ", environ)):
                    if secret in data:
                        self.sightings.append(Sighting(label, pid, where, command))


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def run_watched(
    cmd: Sequence[str],
    secrets: Mapping[str, str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 240,
) -> tuple[subprocess.CompletedProcess[str], ProcWatch]:
    """Run ``cmd`` under umask 022 (what most operators have) while watching /proc."""
    watch = ProcWatch({label: value.encode() for label, value in secrets.items()})
    watch.start()
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            umask=0o022,
            check=False,
        )
    finally:
        time.sleep(POLL)
        watch.stop()
    return proc, watch


def files_holding(
    roots: Iterable[Path], secrets: Mapping[str, str], *, skip: Iterable[Path] = ()
) -> list[str]:
    """``path: secret`` for every file under ``roots`` (symlinks not followed) whose content
    or name holds one of ``secrets``; ``skip`` lists the files that are meant to."""
    skipped = {Path(p).resolve() for p in skip}
    wanted = {label: value.encode() for label, value in secrets.items()}
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                if path.resolve() in skipped or path.is_symlink():
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                for label, secret in wanted.items():
                    if secret in data or secret in str(path).encode():
                        found.append(f"{path}: {label}")
    return found


def files_scanned(roots: Iterable[Path]) -> int:
    """How many files ``files_holding`` reads under ``roots`` (a scan of nothing proves
    nothing)."""
    return sum(len(files) for root in roots for _d, _s, files in os.walk(root))
