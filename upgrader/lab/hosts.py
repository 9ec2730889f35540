"""Lab hosts: a network namespace, PID/mount/UTS namespaces and an overlay root each.

Recipe: shared/reference/lab-recipes.md section 1. The lab's bridge sits in a controller
namespace that forwards nothing; the machine reaches the lab through one veth with the
subnet's last address, so nothing of the lab leaves its namespaces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from upgrader.errors import UpgraderError

HOSTINIT = Path(__file__).with_name("files") / "hostinit.sh"
# The PATH of a command run inside a host, as sshd gives root there: never the caller's (a
# pyenv or venv on it would find interpreters the host does not have).
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(UpgraderError):
    """The lab could not be built or changed."""


@dataclass(frozen=True)
class LabHost:
    """One lab host: its name (= netns = hostname), address and cloud (None for nfs)."""

    name: str
    ip: str
    cloud: str | None


def run(
    *cmd: str,
    check: bool = True,
    timeout: float = 60,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command (``input`` on its stdin, ``env`` its environment if given); a failure
    becomes a LabError naming it."""
    try:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
            env=env,
        )
    except FileNotFoundError:
        raise LabError(
            f"{cmd[0]} is not installed",
            hint="upgrader lab up names the Debian packages the lab needs",
        ) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(cmd)} did not finish in {timeout:.0f} s") from None
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def netns_list() -> list[str]:
    """Names of the network namespaces on this machine."""
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def bridge_up(prefix: str, subnet: str) -> None:
    """Controller namespace with the bridge, and the machine's veth into it."""
    ctl = f"{prefix}-ctl"
    run("ip", "netns", "add", ctl)
    run("ip", "-n", ctl, "link", "set", "lo", "up")
    run("ip", "-n", ctl, "link", "add", "br0", "type", "bridge")
    run("ip", "-n", ctl, "addr", "add", f"{subnet}.1/24", "dev", "br0")
    run("ip", "-n", ctl, "link", "set", "br0", "up")
    run(
        "ip", "link", "add", f"{prefix}-m", "type", "veth", "peer", "name", "vmachine", "netns", ctl
    )
    run("ip", "-n", ctl, "link", "set", "vmachine", "master", "br0", "up")
    run("ip", "addr", "add", f"{subnet}.254/24", "dev", f"{prefix}-m")
    run("ip", "link", "set", f"{prefix}-m", "up")


def host_up(
    host: LabHost, lab: Path, checkout: Path, prefix: str, subnet: str, profile: str
) -> int:
    """Start one host of host profile ``profile`` (profiles.py); return the machine PID of its
    PID-namespace init."""
    ctl = f"{prefix}-ctl"
    base = lab / "hosts" / host.name
    base.mkdir(parents=True, exist_ok=True)
    log = lab / "hosts" / f"{host.name}.log"
    log.unlink(missing_ok=True)  # a stale READY would be read otherwise
    run("ip", "netns", "add", host.name)
    veth = f"v{host.name}"[-15:]
    run(
        "ip",
        "link",
        "add",
        veth,
        "netns",
        ctl,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        host.name,
    )
    run("ip", "-n", ctl, "link", "set", veth, "master", "br0", "up")
    run("ip", "-n", host.name, "link", "set", "lo", "up")
    run("ip", "-n", host.name, "addr", "add", f"{host.ip}/24", "dev", "eth0")
    run("ip", "-n", host.name, "link", "set", "eth0", "up")
    run("ip", "-n", host.name, "route", "add", "default", "via", f"{subnet}.1")
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.name,
                "unshare",
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                "--fork",
                "--propagation",
                "slave",
                str(HOSTINIT),
                host.name,
                host.ip,
                str(base),
                str(lab),
                host.cloud or "",
                str(checkout),
                profile,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 20
    while "READY" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"lab host {host.name} did not start: {log.read_text().strip()[-400:]}")
        time.sleep(0.02)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    pid = int(children[0])
    (lab / "hosts" / f"{host.name}.pid").write_text(f"{pid}\n")
    return pid


def host_pid(lab: Path, name: str) -> int | None:
    """The init PID of a running host, or None."""
    try:
        pid = int((lab / "hosts" / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def enter(
    lab: Path,
    name: str,
    *cmd: str,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` inside a lab host (like ssh, without ssh), ``input`` on its stdin."""
    pid = host_pid(lab, name)
    if pid is None:
        raise LabError(f"lab host {name} is not running")
    return run(
        "nsenter",
        "-t",
        str(pid),
        "-m",
        "-u",
        "-i",
        "-n",
        "-p",
        "-r",
        "-w",
        *cmd,
        check=check,
        timeout=timeout,
        input=input,
        env={**os.environ, "PATH": HOST_PATH},
    )


def teardown(prefix: str) -> None:
    """Kill every process of every ``prefix-*`` namespace and delete them (idempotent)."""
    for ns in netns_list():
        if not ns.startswith(f"{prefix}-"):
            continue
        for _ in range(3):
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)
        run("ip", "netns", "del", ns, check=False)
    run("ip", "link", "del", f"{prefix}-m", check=False)
