"""``python -m upgrader.lab.demo``: start a small simulated OpenNebula 3.2.1 cloud and show it.

Until the upgrade job exists this is what ``scripts/demo`` runs: it seeds a cloud, starts
the oned simulator on loopback, reads it back through upgrader's own client, and prints
what it serves, including what ``virsh`` sees on each hypervisor.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from upgrader.errors import UpgraderError
from upgrader.opennebula import OneClient, Secret


def _seed(work: Path, version: str, hosts: int, vms: int, auth: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrader.lab.oned.seed",
            "--version",
            version,
            "--db",
            str(work / "one.db"),
            "--one-auth",
            str(auth),
            "--hosts",
            str(hosts),
            "--vms",
            str(vms),
        ],
        check=True,
    )


def _start(work: Path, version: str, auth: Path, listen: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upgrader.lab.oned",
            "--version",
            version,
            "--listen",
            listen,
            "--db",
            str(work / "one.db"),
            "--one-auth",
            str(auth),
            "--speed",
            "20",
            "--lab-control",
            "--host-error-hook",
            "resubmit",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"demo: the simulator did not start ({line or 'no output'})")
    return proc, line.split()[-1]


def _show(url: str, password: str, virt_dir: Path) -> None:
    client = OneClient(url, Secret(f"oneadmin:{password}"), timeout=10)
    version = client.detect_version()
    print(f"oned at {url}: OpenNebula {version} (detected by probing)")
    print("hosts:")
    for h in client.host_pool():
        print(f"  {h.id:>3} {h.name:<10} {h.state.name:<10} running VMs: {h.share.running_vms}")
    print("VMs:")
    for vm in client.vm_pool():
        print(f"  {vm.id:>3} {vm.name:<10} {vm.state.name}/{vm.lcm_state.name:<8} on {vm.host}")
    virsh = shutil.which("virsh")
    print("hypervisor view (virsh list on each host):")
    for h in client.host_pool():
        if virsh is None:
            print("  (virsh not installed: apt-get install libvirt-clients)")
            break
        out = subprocess.run(
            [virsh, "-c", f"test://{virt_dir}/{h.name}.xml", "list", "--name"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        print(f"  {h.name:<10} {' '.join(out) or '-'}")


def main(argv: list[str] | None = None) -> int:
    """Seed, serve, show; with --serve keep serving until Ctrl-C."""
    p = argparse.ArgumentParser(prog="upgrader.lab.demo")
    p.add_argument("--version", default="3.2.1", choices=("3.2.1", "3.4.1", "3.6.0"))
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--vms", type=int, default=8)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--serve", action="store_true", help="keep the simulator running")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="upgrader-demo-"))
    password = "demo-" + work.name[-8:]
    auth = work / "one_auth"
    auth.write_text(f"oneadmin:{password}\n")
    auth.chmod(0o600)
    _seed(work, args.version, args.hosts, args.vms, auth)
    proc, url = _start(work, args.version, auth, args.listen)
    try:
        _show(url, password, work / "virt")
        if args.serve:
            print(f"serving until Ctrl-C; database {work / 'one.db'}", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except UpgraderError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
