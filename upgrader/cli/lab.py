"""``upgrader lab``: build, inspect, break and remove the built-in lab (needs root)."""

from __future__ import annotations

import json

import click


@click.group()
def lab() -> None:
    """The built-in lab: two small OpenNebula 3.x clouds and an NFS server (needs root)."""


@lab.command("up")
@click.option("--name", default="ulab", show_default=True, help="prefix of every lab object")
@click.option("--subnet", default="10.77.0.0/24", show_default=True, help="the lab's /24")
@click.option("--hosts-staging", type=click.IntRange(1, 9), default=2, show_default=True)
@click.option("--hosts-production", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option(
    "--vms", type=click.IntRange(0, 200), default=8, show_default=True, help="VMs per cloud"
)
@click.option(
    "--version",
    "release",
    type=click.Choice(["3.2.1", "3.4.1", "3.6.0"]),
    default="3.2.1",
    show_default=True,
    help="the starting OpenNebula version",
)
@click.option(
    "--profile",
    type=click.Choice(["2012", "modern"]),
    default="2012",
    show_default=True,
    help="the hosts' era: 2012 (Debian 7, Python 2.7 only, tools of the time) or modern "
    "(the machine's Debian and Python 3)",
)
def lab_up(
    name: str,
    subnet: str,
    hosts_staging: int,
    hosts_production: int,
    vms: int,
    release: str,
    profile: str,
) -> None:
    """Build the lab."""
    from upgrader.lab.lab import LabSpec, parse_subnet, up

    spec = LabSpec(
        name=name,
        subnet=parse_subnet(subnet),
        hosts_staging=hosts_staging,
        hosts_production=hosts_production,
        vms=vms,
        version=release,
        profile=profile,
    )
    up(spec, log=lambda line: click.echo(line, err=True))


@lab.command("down")
@click.option("--name", default="ulab", show_default=True)
def lab_down(name: str) -> None:
    """Remove everything of the lab (also a crashed or half-built one)."""
    from upgrader.lab.lab import down, preflight

    preflight()
    down(name)
    click.echo(f"[lab] '{name}' is down", err=True)


@lab.command("status")
@click.option("--name", default="ulab", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output on stdout")
def lab_status(name: str, as_json: bool) -> None:
    """Hosts, addresses, installed versions, oned, VMs per host, datastore mount type."""
    from upgrader.lab.lab import preflight
    from upgrader.lab.status import collect, render

    preflight()
    status = collect(name)
    click.echo(json.dumps(status, indent=1) if as_json else render(status))


@lab.command("fault")
@click.argument("fault")
@click.option("--name", default="ulab", show_default=True)
@click.option("--host", help="the lab host (default: the cloud's last host)")
@click.option("--cloud", type=click.Choice(["staging", "production"]))
@click.option("--clear", is_flag=True, help="undo the fault")
def lab_fault(fault: str, name: str, host: str | None, cloud: str | None, clear: bool) -> None:
    """Inject or clear a fault (libvirtd-crash, oned-down, host-unreachable, no-python, ...)."""
    from upgrader.lab.faults import apply
    from upgrader.lab.lab import preflight

    preflight()
    click.echo(apply(name, fault, host=host, cloud=cloud, clear=clear))
