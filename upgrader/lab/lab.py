"""``upgrader lab up|down|status``: two small real clouds and an NFS server on one machine.

Staging (2 hosts) and production (3 hosts) plus one nfs host, each a namespace host with
sshd (hosts.py); an apt repository of lab packages (packages.py); per cloud a loop-mounted
ext4 image as the old shared datastore, an oned database seeded with the cloud's hosts and
running VMs, and a Pacemaker CIB (pacemaker.py). Every host is of the lab's host profile
(profiles.py): a 2012 Debian host with Python 2.7 by default, or ``modern``. Everything lives
under ``/var/lib/upgrader-lab/<name>`` and in namespaces named ``<name>-*``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from upgrader.errors import UsageError
from upgrader.lab import hosts as hs
from upgrader.lab import nfs as labnfs
from upgrader.lab import profiles, python2
from upgrader.lab.hosts import LabError, LabHost, run
from upgrader.lab.pacemaker import build_cib
from upgrader.lab.packages import build_repo

LAB_ROOT = Path("/var/lib/upgrader-lab")
CHECKOUT = Path(__file__).resolve().parents[2]
DEB_PACKAGES = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "dpkg-deb": "dpkg",
    "dpkg-scanpackages": "dpkg-dev",
    "crm_mon": "pacemaker-cli-utils",
    "fence_ipmilan": "fence-agents",
    "virsh": "libvirt-clients",
    "ganesha.nfsd": "nfs-ganesha",
    "rpcbind": "rpcbind",
    "nfs-ls": "libnfs-utils",
    "puppet": "puppet-agent",
}
EXTRA_DEB = ("resource-agents", "nfs-ganesha-vfs", "pacemaker")
CLOUDS = ("staging", "production")


@dataclass
class LabSpec:
    """What ``lab up`` builds."""

    name: str = "ulab"
    subnet: str = "10.77.0"
    hosts_staging: int = 2
    hosts_production: int = 3
    vms: int = 8
    version: str = "3.2.1"
    speed: float = 20.0
    profile: str = profiles.DEFAULT
    hosts: list[LabHost] = field(default_factory=list)

    def plan_hosts(self) -> list[LabHost]:
        """Names and addresses of every host."""
        out = [
            LabHost(f"{self.name}-s{i}", f"{self.subnet}.{10 + i}", "staging")
            for i in range(1, self.hosts_staging + 1)
        ]
        out += [
            LabHost(f"{self.name}-p{i}", f"{self.subnet}.{20 + i}", "production")
            for i in range(1, self.hosts_production + 1)
        ]
        out.append(LabHost(f"{self.name}-nfs", f"{self.subnet}.30", None))
        return out

    def cloud_hosts(self, cloud: str) -> list[LabHost]:
        """The hosts of one cloud."""
        return [h for h in self.hosts if h.cloud == cloud]


def parse_subnet(text: str) -> str:
    """``10.77.0.0/24`` -> ``10.77.0`` (the lab uses one /24)."""
    base, _, bits = text.partition("/")
    parts = base.split(".")
    if (
        bits not in ("", "24")
        or len(parts) != 4
        or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)
    ):
        raise UsageError(f"malformed --subnet '{text}': expected a /24 like 10.77.0.0/24")
    return ".".join(parts[:3])


def load_spec(name: str) -> LabSpec:
    """The spec of a lab that is up, or a one-line refusal."""
    path = lab_dir(name) / "spec.json"
    if not path.exists() or f"{name}-ctl" not in hs.netns_list():
        raise LabError(f"lab '{name}' is not up", hint="upgrader lab up")
    data = json.loads(path.read_text())
    data["hosts"] = [LabHost(**h) for h in data["hosts"]]
    data.setdefault("profile", "modern")  # a lab built before profiles had today's hosts
    return LabSpec(**data)


def lab_dir(name: str) -> Path:
    """Where a lab keeps its state."""
    return LAB_ROOT / name


# ----------------------------------------------------------------- preflight
def _installed(package: str) -> bool:
    """Whether dpkg knows ``package`` as installed (read from its status file)."""
    try:
        status = Path("/var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return False
    entry = re.search(rf"^Package: {re.escape(package)}\n(?:.+\n)*?Status: (.+)$", status, re.M)
    return bool(entry) and entry.group(1).strip() == "install ok installed"


def preflight(profile: profiles.HostProfile | None = None) -> None:
    """Root and the Debian packages (with those the hosts of ``profile`` take from the
    machine), or one line saying how to get them."""
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (namespaces, mounts, loop devices)",
            hint="run it again as root, e.g. sudo upgrader lab up",
        )
    missing = sorted(
        {
            pkg
            for cmd, pkg in DEB_PACKAGES.items()
            if shutil.which(cmd) is None and not Path(f"/usr/sbin/{cmd}").exists()
        }
    )
    extra = EXTRA_DEB + (profile.machine_packages if profile else ())
    missing += [p for p in extra if not _installed(p)]
    if missing:
        raise LabError(
            f"Debian packages missing for the lab: {' '.join(missing)}",
            hint=f"apt-get install -y --no-install-recommends {' '.join(missing)}",
        )


# ------------------------------------------------------------------------ up
def up(spec: LabSpec, log: callable = print) -> Path:  # type: ignore[valid-type]
    """Build the lab; return its directory."""
    profile = profiles.get(spec.profile)
    preflight(profile)
    lab = lab_dir(spec.name)
    if f"{spec.name}-ctl" in hs.netns_list():
        raise LabError(f"lab '{spec.name}' is already up", hint="upgrader lab down first")
    if lab.exists():
        down(spec.name)  # what a crashed or half-built lab left behind
    if profile.host_packages:
        python2.fetch()  # once per machine: later calls find the cache
    spec.hosts = spec.plan_hosts()
    started = time.monotonic()
    try:
        _prepare(spec, lab, log)
        hs.bridge_up(spec.name, spec.subnet)
        for host in spec.hosts:
            hs.host_up(host, lab, CHECKOUT, spec.name, spec.subnet, profile.name)
        log(
            f"[lab] {len(spec.hosts)} hosts of profile {profile.name} up "
            f"({time.monotonic() - started:.1f} s)"
        )
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda h: _install(lab, spec, h), spec.hosts))
        for cloud in CLOUDS:
            hs.enter(lab, spec.cloud_hosts(cloud)[0].name, "/etc/init.d/opennebula", "start")
        labnfs.start(lab, spec)
        _write_configs(lab, spec)
    except BaseException:
        down(spec.name)
        raise
    log(
        f"[lab] '{spec.name}' is up in {time.monotonic() - started:.1f} s; config "
        f"{lab / 'upgrader.yml'}"
    )
    return lab


def _prepare(spec: LabSpec, lab: Path, log: callable) -> None:  # type: ignore[valid-type]
    share = lab / "share"
    (share / "key").mkdir(parents=True)
    lab.chmod(0o700)
    run(
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        f"upgrader-lab-{spec.name}",
        "-f",
        str(share / "key" / "id_ed25519"),
    )
    (lab / "etc-hosts").write_text(
        "127.0.0.1 localhost\n" + "".join(f"{h.ip} {h.name}\n" for h in spec.hosts)
    )
    run("mount", "--bind", str(share), str(share))
    run("mount", "--make-shared", str(share))
    build_repo(share / "repo", profiles.get(spec.profile))
    labnfs.prepare_export(lab, spec)
    for cloud in CLOUDS:
        _prepare_cloud(spec, lab, cloud)
        labnfs.make_cloud_export(lab, cloud)
    (lab / "spec.json").write_text(json.dumps(asdict(spec), indent=1))


def _prepare_cloud(spec: LabSpec, lab: Path, cloud: str) -> None:
    share = lab / "share" / cloud
    for sub in ("datastores", "one", "pcmk", "virt"):
        (share / sub).mkdir(parents=True)
    image = lab / f"{cloud}-datastore.img"
    run("truncate", "-s", "512M", str(image))
    run("mkfs.ext4", "-q", "-F", "-L", f"{spec.name}-{cloud[:4]}", str(image))
    loop = run("losetup", "-f", "--show", str(image)).stdout.strip()
    run("mount", loop, str(share / "datastores"))
    password = os.urandom(12).hex()
    auth = share / "one" / "one_auth"
    auth.write_text(f"oneadmin:{password}\n")
    auth.chmod(0o600)
    (lab / f"{cloud}.one_auth").write_text(f"oneadmin:{password}\n")
    (lab / f"{cloud}.one_auth").chmod(0o600)
    names = [h.name for h in spec.cloud_hosts(cloud)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrader.lab.oned.seed",
            "--version",
            spec.version,
            "--db",
            str(share / "one" / "one.db"),
            "--one-auth",
            str(auth),
            "--host-names",
            ",".join(names),
            "--vms",
            str(spec.vms),
            "--virt-dir",
            str(share / "virt"),
            "--vm-prefix",
            f"{cloud[:4]}-vm",
            "--persistent-disks",
            "--network",
            "192.168.100.0" if cloud == "staging" else "192.168.200.0",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    _write_disks(share)
    (share / "pcmk" / "cib.xml").write_text(
        build_cib(names, names[0], f"{spec.subnet}.200", loop, "ext4")
    )


def _write_disks(share: Path) -> None:
    """Image files and VM disks in the datastore, as a 3.2 shared datastore holds them."""
    ds = share / "datastores"
    for sub in ("0", "1"):
        (ds / sub).mkdir(exist_ok=True)
    for xml in (share / "virt").glob("*.xml"):
        text = xml.read_text()
        for vmid in [part.split("<")[0] for part in text.split("<name>one-")[1:]]:
            vm_dir = ds / "0" / vmid
            vm_dir.mkdir(parents=True, exist_ok=True)
            with (vm_dir / "disk.0").open("wb") as fh:
                fh.write(f"lab disk of VM {vmid}\n".encode() * 64)
                fh.truncate(64 * 1024 * 1024)  # sparse, like a raw image


def _install(lab: Path, spec: LabSpec, host: LabHost) -> None:
    """What a host installs from the lab's repository: its profile's packages (Python 2.7 on a
    2012 host, the nfs host too) and, on a cloud's host, OpenNebula; then libvirtd starts."""
    profile = profiles.get(spec.profile)
    packages = list(profile.host_packages)
    if host.cloud:
        defaults = f"LAB_CLOUD={host.cloud}\nLAB_LISTEN={host.ip}:2633\nLAB_SPEED={spec.speed}\n"
        hs.enter(
            lab, host.name, "sh", "-c", f"printf '%s' '{defaults}' > /etc/default/opennebula-lab"
        )
        packages += [f"opennebula={spec.version}-1", f"opennebula-node={spec.version}-1"]
    if not packages:
        return
    started = f" && /etc/init.d/{profile.libvirtd_service} start" if host.cloud else ""
    hs.enter(
        lab,
        host.name,
        "sh",
        "-c",
        "apt-get update -qq -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/lab.list && "
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {' '.join(packages)} "
        f">/dev/null{started}",
        timeout=300,
    )


def _mount_sources(lab: Path, cloud: str) -> dict[str, str]:
    def source(path: Path) -> str:
        return run("findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(path)).stdout.strip()

    export = source(lab / "share" / "nfs" / "export")
    return {
        "one_datastore_source": source(lab / "share" / cloud / "datastores"),
        "nfs_datastore_source": f"{export}[/{cloud}]",
        "nfs_datastore_fstype": "ext4",
    }


def _write_configs(lab: Path, spec: LabSpec) -> None:
    key = lab / "share" / "key" / "id_ed25519"
    nfs = next(h for h in spec.hosts if h.cloud is None)
    profile = profiles.get(spec.profile)
    envs = {}
    (lab / "inventory").mkdir()
    for cloud in CLOUDS:
        members = spec.cloud_hosts(cloud)
        inv = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(key),
                    # The interpreter on a modern host; a 2012 host's is discovered, as a
                    # site's would be (ansible.cfg: interpreter_python = auto_silent).
                    **profile.inventory_vars(),
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                    "one_cloud": cloud,
                    "one_datastore_path": "/var/lib/one/datastores",
                    "one_datastore_fstype": "ext4",
                    "one_cib_file": f"/srv/lab/{cloud}/pcmk/cib.xml",
                    "onedb_version_command": f"onedb version -s /srv/lab/{cloud}/one/one.db",
                    # The front-end playbooks: the lab's database, lock file and init script
                    # (a site's defaults are /var/lib/one/one.db, /var/lock/one/one and
                    # Pacemaker's crm_resource).
                    "one_db_file": f"/srv/lab/{cloud}/one/one.db",
                    "onedb_connection": f"-s /srv/lab/{cloud}/one/one.db",
                    "one_lock_file": f"/srv/lab/{cloud}/one/.lock",
                    "oned_stop_command": "/etc/init.d/opennebula stop",
                    "oned_start_command": "/etc/init.d/opennebula start",
                    # The storage playbooks: the old datastore's fstab line, the cloud's
                    # export and how the lab mounts it (nfs.py).
                    **labnfs.storage_vars(nfs.name, cloud, "one-datastore-fs"),
                    # What findmnt shows in a host for each (gate datastores-healthy,
                    # storage: old|new): the lab's loop devices, the export's subdirectory.
                    **_mount_sources(lab, cloud),
                },
                "children": {
                    "frontends": {"hosts": {h.name: {"ansible_host": h.ip} for h in members}},
                    "hypervisors": {"hosts": {h.name: {"ansible_host": h.ip} for h in members}},
                    "nfs_servers": {"hosts": {nfs.name: {"ansible_host": nfs.ip}}},
                },
            }
        }
        path = lab / "inventory" / f"{cloud}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        envs[cloud] = {
            "oned": f"http://{members[0].ip}:2633/RPC2",
            "credentials": str(lab / f"{cloud}.one_auth"),
            "inventory": str(path),
        }
    envs["production"]["requires_rehearsal_on"] = "staging"
    config = {"lab": spec.name, "environments": envs}
    (lab / "upgrader.yml").write_text(yaml.safe_dump(config, sort_keys=False))


# ---------------------------------------------------------------------- down
def down(name: str) -> None:
    """Remove everything of lab ``name``; safe on a half-built or crashed lab."""
    lab = lab_dir(name)
    hs.teardown(name)
    for cloud in CLOUDS:
        mnt = lab / "share" / cloud / "datastores"
        with contextlib.suppress(LabError):
            if _is_mount(mnt):
                run("umount", "-l", str(mnt))
        image = lab / f"{cloud}-datastore.img"
        for line in run("losetup", "-j", str(image), check=False).stdout.splitlines():
            run("losetup", "-d", line.split(":")[0], check=False)
    share = lab / "share"
    export = share / "nfs" / "export"
    while _is_mount(export):
        run("umount", "-l", str(export), check=False)
    for line in run("losetup", "-j", str(lab / "nfs-export.img"), check=False).stdout.splitlines():
        run("losetup", "-d", line.split(":")[0], check=False)
    while _is_mount(share):
        run("umount", "-l", str(share), check=False)
    shutil.rmtree(lab, ignore_errors=True)


def _is_mount(path: Path) -> bool:
    return run("mountpoint", "-q", str(path), check=False).returncode == 0
