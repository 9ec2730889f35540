"""Start the oned simulator as a real process on loopback, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSWORD = "lab-secret-pw"


@dataclass
class Simulator:
    """A running simulator and the ways to reach it."""

    version: str
    workdir: Path
    proc: subprocess.Popen[str]
    url: str
    session: str = field(repr=False)

    @property
    def db(self) -> Path:
        """The simulator's database."""
        return self.workdir / "one.db"

    @property
    def virt_dir(self) -> Path:
        """Where the hypervisor view is written."""
        return self.workdir / "virt"

    def rpc(self) -> xmlrpc.client.ServerProxy:
        """A plain XML-RPC proxy (tests drive the simulator with it)."""
        return xmlrpc.client.ServerProxy(self.url, allow_none=False)

    def call(self, method: str, *args: Any) -> Any:
        """Call ``one.*`` with the session; raise on a failed answer."""
        answer = getattr(self.rpc(), method)(self.session, *args)
        if not answer[0]:
            raise AssertionError(f"{method} failed: {answer[1]}")
        return answer[1]

    def lab(self, method: str, *args: Any) -> Any:
        """Call a ``lab.*`` control method."""
        return getattr(self.rpc(), method)(*args)

    stderr: str = ""

    def stop(self) -> int:
        """SIGTERM, wait, keep what it wrote on stderr, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
        return self.proc.returncode


def write_auth(workdir: Path, password: str = PASSWORD) -> Path:
    """A ONE_AUTH file readable by its owner only."""
    auth = workdir / "one_auth"
    auth.write_text(f"oneadmin:{password}\n")
    auth.chmod(0o600)
    return auth


def seed(workdir: Path, version: str, hosts: int, vms: int, prefix: str = "node") -> None:
    """Populate ``workdir/one.db`` with a running cloud."""
    auth = write_auth(workdir)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrader.lab.oned.seed",
            "--version",
            version,
            "--db",
            str(workdir / "one.db"),
            "--one-auth",
            str(auth),
            "--hosts",
            str(hosts),
            "--vms",
            str(vms),
            "--host-prefix",
            prefix,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def start(
    workdir: Path,
    version: str,
    *extra: str,
    speed: float = 50.0,
    timeout: float = 60.0,
    lab_control: bool = True,
) -> Simulator:
    """Start the simulator on 127.0.0.1 (free port) and wait for ``listening on``."""
    workdir.mkdir(parents=True, exist_ok=True)
    auth = write_auth(workdir)
    cmd = [
        sys.executable,
        "-m",
        "upgrader.lab.oned",
        "--version",
        version,
        "--listen",
        "127.0.0.1:0",
        "--db",
        str(workdir / "one.db"),
        "--one-auth",
        str(auth),
        "--speed",
        str(speed),
        *(["--lab-control"] if lab_control else []),
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on ") or time.monotonic() > deadline:
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"simulator did not start: {line!r} {err}")
    return Simulator(version, workdir, proc, line.split()[-1], f"oneadmin:{PASSWORD}")


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)
