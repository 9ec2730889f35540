"""Start the oned simulator as a real process on loopback, for tests and benchmarks.

Its stdout and stderr go to files in the work directory, so a chatty simulator cannot
block on a full pipe, and a simulator that never says ``listening on`` is given up on
after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

PASSWORD = "lab-secret-pw"
SESSION = f"oneadmin:{PASSWORD}"
_runs = count(1)


class OnedStartError(RuntimeError):
    """The simulator exited (or stayed silent) instead of printing ``listening on``."""

    def __init__(self, returncode: int | None, stderr: str) -> None:
        super().__init__(f"simulator did not start (exit {returncode}): {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class Simulator:
    """A running simulator and the ways to reach it."""

    version: str
    workdir: Path
    proc: subprocess.Popen[bytes]
    url: str
    stderr_path: Path
    session: str = field(default=SESSION, repr=False)

    @property
    def db(self) -> Path:
        """The simulator's database."""
        return self.workdir / "one.db"

    @property
    def virt_dir(self) -> Path:
        """Where the hypervisor view is written."""
        return self.workdir / "virt"

    @property
    def lock(self) -> Path:
        """The lock file the simulator holds while it runs."""
        return self.workdir / ".lock"

    @property
    def stderr(self) -> str:
        """What the simulator wrote on stderr so far."""
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def rpc(self) -> xmlrpc.client.ServerProxy:
        """A plain XML-RPC proxy (tests drive the simulator with it)."""
        return xmlrpc.client.ServerProxy(self.url, allow_none=False)

    def raw(self, method: str, *args: Any) -> list[Any]:
        """``method(session, *args)``: oned's whole ``[ok, value, code]`` answer."""
        with self.rpc() as proxy:
            return getattr(proxy, method)(self.session, *args)  # type: ignore[no-any-return]

    def call(self, method: str, *args: Any) -> Any:
        """Call ``one.*`` with the session; raise on a failed answer."""
        answer = self.raw(method, *args)
        if not answer[0]:
            raise AssertionError(f"{method}{args} failed: {answer[1]}")
        return answer[1]

    def lab(self, method: str, *args: Any) -> Any:
        """Call a ``lab.*`` control method."""
        with self.rpc() as proxy:
            return getattr(proxy, method)(*args)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, return the exit code (the simulator removes its lock file)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_auth(workdir: Path, password: str = PASSWORD) -> Path:
    """A ONE_AUTH file readable by its owner only."""
    workdir.mkdir(parents=True, exist_ok=True)
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
    hook: str = "none",
    more: Sequence[str] = (),
) -> Simulator:
    """Start the simulator on 127.0.0.1 (free port) and wait for ``listening on``."""
    auth = write_auth(workdir)
    n = next(_runs)
    out, err = workdir / f"oned-{version}-{n}.out", workdir / f"oned-{version}-{n}.err"
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
        "--host-error-hook",
        hook,
        *(["--lab-control"] if lab_control else []),
        *extra,
        *more,
    ]
    with out.open("wb") as out_fh, err.open("wb") as err_fh:
        proc = subprocess.Popen(
            cmd, stdout=out_fh, stderr=err_fh, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    deadline = time.monotonic() + timeout
    while True:
        for line in out.read_text().splitlines():
            if line.startswith("listening on "):
                return Simulator(version, workdir, proc, line.split()[-1], err)
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise OnedStartError(proc.returncode, err.read_text())
        time.sleep(0.02)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)
