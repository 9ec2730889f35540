"""The lab's apt repository: ``opennebula`` and ``opennebula-node`` at 3.2.1, 3.4.1, 3.6.0.

Built with dpkg-deb at ``lab up`` (lab-recipes.md section 2). ``opennebula`` carries the
front end: an LSB init script starting the oned simulator at the package's version, the
lab ``onedb``, and that version's ``/etc/one/oned.conf``; ``opennebula-node`` the
hypervisor side, with the lab's stand-in libvirtd and its init script. What the lab's programs
run from and what the init script is called come from the lab's host profile (profiles.py): a
2012 host runs them from an interpreter of the lab's own and calls libvirtd's script
``libvirt-bin``, as Debian 7 did. A 2012 lab's repository also holds Python 2.7's packages.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from upgrader.lab import python2
from upgrader.lab.hosts import run
from upgrader.lab.pacemaker import ocf_libvirtd
from upgrader.lab.profiles import HostProfile

RELEASES = ("3.2.1", "3.4.1", "3.6.0")

_INIT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          opennebula
# Required-Start:    $network
# Required-Stop:     $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: OpenNebula {version} front end (lab simulator)
### END INIT INFO
# Lab settings (cloud, listen address, speed) come from /etc/default/opennebula-lab.
. /etc/default/opennebula-lab
PIDFILE=/var/run/one/oned.pid
DB=/srv/lab/$LAB_CLOUD/one/one.db
FAULTS=/srv/lab/$LAB_CLOUD/one/lab-faults.json
running() {{ [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }}
# The faults the lab injected outside oned (lab/faults.py): a restarted oned meets them again.
lab_faults() {{
  [ -s $FAULTS ] || return 0
  {python} -c 'import json, sys, xmlrpc.client as x; s = x.ServerProxy(sys.argv[2]); \\
[s.lab.fault.set(f["name"], f["target"], f["params"]) for f in json.load(open(sys.argv[1]))]' \\
    $FAULTS "http://$LAB_LISTEN/RPC2" && return 0
  echo "oned started, but the lab faults in $FAULTS could not be set again" >&2; return 1
}}
case "$1" in
  start)
    running && exit 0
    mkdir -p /var/run/one /var/log/one
    [ -f /var/log/one/oned.log ] && mv /var/log/one/oned.log /var/log/one/oned.log.1
    PYTHONPATH=/opt/upgrader start-stop-daemon --start --background --make-pidfile \\
      --pidfile $PIDFILE --output /var/log/one/oned.log --exec {python} -- \\
      -m upgrader.lab.oned --version {version} --listen "$LAB_LISTEN" --db $DB \\
      --one-auth /srv/lab/$LAB_CLOUD/one/one_auth --virt-dir /srv/lab/$LAB_CLOUD/virt \\
      --speed "$LAB_SPEED" --lab-control --host-error-hook resubmit \\
      --monitoring-interval 60 --polling-interval 60 --sched-interval 30
    for i in $(seq 100); do
      grep -q "^listening on" /var/log/one/oned.log 2>/dev/null && {{ lab_faults; exit $?; }}
      running || {{ tail -n 1 /var/log/one/oned.log >&2; exit 1; }}
      sleep 0.1
    done
    echo "oned did not start in 10 s" >&2; exit 1 ;;
  stop)
    running || {{ rm -f $PIDFILE; exit 0; }}
    kill "$(cat $PIDFILE)"
    for i in $(seq 100); do running || {{ rm -f $PIDFILE; exit 0; }}; sleep 0.1; done
    kill -9 "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
  restart|force-reload) "$0" stop && "$0" start ;;
  status) running && {{ echo "oned is running"; exit 0; }}; echo "oned is not running"; exit 3 ;;
  *) echo "Usage: $0 {{start|stop|restart|status}}" >&2; exit 2 ;;
esac
"""

_LIBVIRTD_INIT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          @SERVICE@
# Required-Start:    $network
# Required-Stop:     $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: libvirt daemon (lab stand-in: the domains live in the oned simulator)
### END INIT INFO
PIDFILE=/var/run/libvirtd.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start) running && exit 0
         start-stop-daemon --start --background --make-pidfile --pidfile $PIDFILE \\
           --exec /usr/sbin/libvirtd ;;
  stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
  restart|force-reload) "$0" stop; "$0" start ;;
  status) running && { echo "libvirtd is running"; exit 0; }
          echo "libvirtd is not running"; exit 3 ;;
  *) echo "Usage: $0 {start|stop|restart|status}" >&2; exit 2 ;;
esac
"""

_LIBVIRTD = """#!/bin/bash
# The lab's libvirtd: a process to watch, restart and crash; virsh reads the test driver.
exec -a libvirtd /bin/sleep infinity
"""


def oned_conf(version: str) -> str:
    """The oned.conf a package of ``version`` installs (the settings an upgrade touches)."""
    series = version[:3]
    common = (
        f"# oned.conf for OpenNebula {version} (lab package)\n"
        "HOST_MONITORING_INTERVAL = 60\nVM_POLLING_INTERVAL = 60\n"
        'PORT = 2633\nDB = [ backend = "sqlite" ]\nVNC_BASE_PORT = 5900\n'
        'IM_MAD = [ name = "im_kvm", executable = "one_im_ssh", arguments = "-r 0 -t 15 kvm" ]\n'
        'VM_MAD = [ name = "vmm_kvm", executable = "one_vmm_exec", '
        'arguments = "-t 15 -r 0 kvm", default = "vmm_exec/vmm_exec_kvm.conf", type = "kvm" ]\n'
        'HM_MAD = [ executable = "one_hm" ]\n'
        'HOST_HOOK = [ name = "error", on = "ERROR", command = "ft/host_error.rb", '
        'arguments = "$HID -r", remote = "no" ]\n'
    )
    if series == "3.2":
        return common + (
            "VM_DIR = /var/lib/one\n"
            'IMAGE_MAD = [ executable = "one_image", arguments = "fs -t 15" ]\n'
            'TM_MAD = [ name = "tm_shared", executable = "one_tm", '
            'arguments = "tm_shared/tm_shared.conf" ]\n'
            'AUTH_MAD = [ executable = "one_auth_mad", '
            'arguments = "--authn ssh,x509,ldap,server_cipher,server_x509" ]\n'
        )
    drivers = "dummy,shared,qcow2,ssh,vmware,iscsi" + (",lvm" if series == "3.6" else "")
    ds = "fs,vmware,iscsi" + (",lvm" if series == "3.6" else "")
    auth = (
        'AUTH_MAD = [ executable = "one_auth_mad", '
        'authn = "ssh,x509,ldap,server_cipher,server_x509" ]\n'
        if series == "3.6"
        else 'AUTH_MAD = [ executable = "one_auth_mad", '
        'arguments = "--authn ssh,x509,ldap,server_cipher,server_x509" ]\n'
    )
    return common + (
        "DATASTORE_LOCATION = /var/lib/one/datastores\n"
        f'DATASTORE_MAD = [ executable = "one_datastore", arguments = "-t 15 -d {ds}" ]\n'
        f'TM_MAD = [ executable = "one_tm", arguments = "-t 15 -d {drivers}" ]\n' + auth
    )


def _files_of(package: str, version: str, profile: HostProfile) -> dict[str, tuple[str, int]]:
    python = profile.python
    if package == "opennebula":
        return {
            "etc/init.d/opennebula": (_INIT.format(version=version, python=python), 0o755),
            "etc/one/oned.conf": (oned_conf(version), 0o644),
            "usr/bin/onedb": (
                f"#!/bin/sh\nexport ONEDB_LAB_PACKAGE={version} "
                f"PYTHONPATH=/opt/upgrader\nexec {python} -m upgrader.lab.onedb "
                '"$@"\n',
                0o755,
            ),
            "usr/bin/oned": (
                f'#!/bin/sh\n[ "$1" = -v ] && {{ echo \'Copyright 2002-2012, '
                "OpenNebula Project Leads (OpenNebula.org)'; echo 'OpenNebula "
                f"{version} is distributed and licensed for use under the terms of "
                "the Apache License, Version 2.0'; exit 0; }\n"
                "exec /etc/init.d/opennebula start\n",
                0o755,
            ),
            "usr/share/opennebula/VERSION": (f"{version}\n", 0o644),
        }
    service = profile.libvirtd_service
    return {
        f"etc/init.d/{service}": (_LIBVIRTD_INIT.replace("@SERVICE@", service), 0o755),
        "usr/sbin/libvirtd": (_LIBVIRTD, 0o755),
        "usr/share/opennebula-node/VERSION": (f"{version}\n", 0o644),
        "usr/lib/ocf/resource.d/lab/libvirtd": (ocf_libvirtd(service), 0o755),
    }


def build_deb(package: str, version: str, out: Path, profile: HostProfile) -> Path:
    """One .deb built with dpkg-deb."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, (text, mode) in _files_of(package, version, profile).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        debian = root / "DEBIAN"
        debian.mkdir()
        summary = "front end (oned, onedb)" if package == "opennebula" else "hypervisor node"
        (debian / "control").write_text(
            f"Package: {package}\nVersion: {version}-1\nArchitecture: all\n"
            "Maintainer: upgrader lab <lab@localhost>\nSection: admin\nPriority: optional\n"
            f"Description: OpenNebula {version} {summary} (upgrader lab package)\n"
        )
        if package == "opennebula":
            (debian / "conffiles").write_text("/etc/one/oned.conf\n/etc/init.d/opennebula\n")
        deb = out / f"{package}_{version}-1_all.deb"
        run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb))
    return deb


def build_repo(repo: Path, profile: HostProfile) -> None:
    """Every package at every release for hosts of ``profile``, the packages its hosts install
    besides (Python 2.7's, fetched once into the cache), and the index apt reads."""
    repo.mkdir(parents=True, exist_ok=True)
    for version in RELEASES:
        for package in ("opennebula", "opennebula-node"):
            build_deb(package, version, repo, profile)
    if profile.host_packages:
        for deb in python2.fetch():
            shutil.copy2(deb, repo / deb.name)
    write_index(repo)


def write_index(repo: Path) -> None:
    """The ``Packages`` index of the .deb files in ``repo`` now (the package-missing fault
    takes some away and writes it again)."""
    index = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (repo / "Packages").write_text(index)
