"""Populate a simulator database with a cloud that is already up and running.

Used by the lab, the benchmarks and the tests: hosts monitored, images, a template, a
network, and VMs RUNNING spread over the hosts, with their domains in the hypervisor
view. Objects are created through the same ``one.*`` handlers a client would call, then
placed directly (skipping the minutes of PROLOG/BOOT a real deploy takes).

    python -m upgrader.lab.oned.seed --version 3.2.1 --db PATH --one-auth FILE \
        --hosts 3 --vms 8 [--virt-dir DIR] [--host-prefix node]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from upgrader.lab.oned import api_objects, api_vms, monitoring, vm_hosts  # noqa: F401 - registers handlers
from upgrader.lab.oned.api import Api
from upgrader.lab.oned.cloud import Cloud
from upgrader.lab.oned.objects import Host, Vm
from upgrader.lab.oned.releases import VERSIONS
from upgrader.lab.oned.runtime import StartError, open_cloud, read_one_auth
from upgrader.lab.oned.states import ACTIVE, RUNNING


def _ok(answer: list[Any]) -> Any:
    if not answer[0]:
        raise RuntimeError(answer[1])
    return answer[1]


def seed_cloud(
    cloud: Cloud,
    session: str,
    *,
    hosts: int,
    vms: int,
    host_prefix: str = "node",
    vm_prefix: str = "vm",
    memory_mb: int = 512,
    cpu: str = "0.5",
    host_names: list[str] | None = None,
    persistent_disks: bool = False,
    network: str | None = None,
) -> None:
    """Add ``hosts`` monitored hosts and ``vms`` running VMs (round-robin) to ``cloud``;
    with ``persistent_disks`` each VM boots from a persistent image of its own (a hosting
    site's VMs), else all from one non-persistent base image; with ``network`` (a /24's
    address) each VM has a NIC leased from a RANGED network ``lan`` over that /24."""
    api = Api(cloud)
    c = cloud
    with c.lock:
        names = host_names or [f"{host_prefix}{i + 1:02d}" for i in range(hosts)]
        for name in names:
            last: Any = "tm_shared" if c.series == "3.2" else -1
            hid = _ok(
                api.call("one.host.allocate", (session, name, "im_kvm", "vmm_kvm", "dummy", last))
            )
            host = c.pool(Host)[hid]
            monitoring.probe(c, host, int(c.clock.now()))
        img_args: tuple[Any, ...] = (
            session,
            'NAME="base-image"\nPATH="/srv/images/base.img"\nSIZE=2048',
        )
        if c.version.has_clusters:
            img_args += (1,)
        image = _ok(api.call("one.image.allocate", img_args))
        host_ids = sorted(c.pool(Host))
        nic = ""
        if network is not None:
            lan = _ok(
                api.call(
                    "one.vn.allocate",
                    (
                        session,
                        f'NAME="lan"\nTYPE=RANGED\nBRIDGE=br0\nNETWORK_ADDRESS={network}\n'
                        "NETWORK_SIZE=C",
                        *((-1,) if c.version.has_clusters else ()),  # no cluster
                    ),
                )
            )
            nic = f"NIC=[NETWORK_ID={lan}]\n"
        for n in range(vms):
            name = f"{vm_prefix}{n + 1:03d}"
            disk = image
            if persistent_disks:
                own = (
                    session,
                    f'NAME="{name}-disk"\nPATH="/srv/images/{name}.img"\nSIZE=2048\nPERSISTENT=YES',
                    *img_args[2:],
                )
                disk = _ok(api.call("one.image.allocate", own))
            text = f'NAME="{name}"\nCPU={cpu}\nMEMORY={memory_mb}\nDISK=[IMAGE_ID={disk}]\n{nic}'

            vmid = _ok(api.call("one.vm.allocate", (session, text)))
            if host_ids:
                place_running(c, c.pool(Vm)[vmid], c.pool(Host)[host_ids[n % len(host_ids)]])
        c.flush()
        c.virt.flush()


def place_running(c: Cloud, vm: Vm, host: Host) -> None:
    """Put a PENDING VM straight into RUNNING on ``host``, domain included."""
    before = set(c.hosts_of(vm))
    h = vm_hosts.add_history(c, vm, host)
    h.petime = h.rstime = h.stime
    vm.deploy_id = f"one-{vm.oid}"
    vm.last_poll = h.stime
    vm.state, vm.lcm_state = ACTIVE, RUNNING
    vm_hosts.rehost(c, vm, before)
    c.virt.start(host.name, vm_hosts.domain_of(c, vm))


def main(argv: list[str] | None = None) -> int:
    """Create a populated simulator database."""
    p = argparse.ArgumentParser(prog="upgrader.lab.oned.seed")
    p.add_argument("--version", required=True, choices=sorted(VERSIONS), dest="release")
    p.add_argument("--db", required=True, type=Path)
    p.add_argument("--one-auth", required=True, type=Path)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--vms", type=int, default=8)
    p.add_argument("--virt-dir", type=Path)
    p.add_argument("--host-prefix", default="node")
    p.add_argument("--host-names", help="comma-separated host names (instead of --hosts)")
    p.add_argument("--vm-prefix", default="vm")
    p.add_argument(
        "--persistent-disks",
        action="store_true",
        help="each VM boots from a persistent image of its own",
    )
    p.add_argument(
        "--network", metavar="ADDRESS", help="give each VM a NIC on a RANGED network over this /24"
    )
    args = p.parse_args(argv)
    try:
        user, password = read_one_auth(args.one_auth)
        db = args.db.resolve()
        cloud = open_cloud(
            db,
            VERSIONS[args.release],
            auth=(user, password),
            virt_dir=args.virt_dir or db.parent / "virt",
            arm=False,
        )
    except StartError as exc:
        sys.stderr.write(f"seed: error: {exc}\n")
        return 1
    names = args.host_names.split(",") if args.host_names else None
    hosts = len(names) if names else args.hosts
    seed_cloud(
        cloud,
        f"{user}:{password}",
        hosts=hosts,
        vms=args.vms,
        host_prefix=args.host_prefix,
        host_names=names,
        vm_prefix=args.vm_prefix,
        persistent_disks=args.persistent_disks,
        network=args.network,
    )
    cloud.store.close()
    print(f"seeded {hosts} hosts and {args.vms} VMs into {db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
