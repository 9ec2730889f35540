"""``upgrader lab status``: the host profile, hosts, addresses, versions installed, oned, VMs,
datastore mounts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from upgrader.errors import OneApiError
from upgrader.lab import hosts as hs
from upgrader.lab.lab import CLOUDS, lab_dir, load_spec
from upgrader.opennebula import OneClient, Secret


def collect(name: str) -> dict[str, Any]:
    """What the lab looks like right now, as plain data."""
    spec = load_spec(name)
    lab = lab_dir(name)
    hosts = []
    for h in spec.hosts:
        row: dict[str, Any] = {
            "name": h.name,
            "ip": h.ip,
            "cloud": h.cloud,
            "up": hs.host_pid(lab, h.name) is not None,
        }
        if h.cloud and row["up"]:
            probe = hs.enter(
                lab,
                h.name,
                "sh",
                "-c",
                "dpkg-query -W -f='${Version}' opennebula 2>/dev/null; echo; "
                "/etc/init.d/opennebula status >/dev/null 2>&1 && echo running "
                "|| echo stopped; findmnt -n -o FSTYPE /var/lib/one/datastores "
                "|| echo none",
                check=False,
            ).stdout.splitlines()
            probe += ["?"] * (3 - len(probe))
            row.update(opennebula=probe[0] or "none", oned=probe[1], datastore_fstype=probe[2])
        hosts.append(row)
    clouds = {}
    for cloud in CLOUDS:
        front = next(h for h in spec.hosts if h.cloud == cloud)
        session = (lab / f"{cloud}.one_auth").read_text().strip()
        info: dict[str, Any] = {"endpoint": f"http://{front.ip}:2633/RPC2"}
        try:
            client = OneClient(info["endpoint"], Secret(session), timeout=5)
            info["version"] = str(client.detect_version())
            vms = client.vm_pool()
            info["vms_per_host"] = dict(Counter(vm.host or "-" for vm in vms))
            info["vms"] = len(vms)
        except OneApiError as exc:
            info["error"] = str(exc)
        clouds[cloud] = info
    return {"name": name, "profile": spec.profile, "hosts": hosts, "clouds": clouds}


def render(status: dict[str, Any]) -> str:
    """The status as lines for a terminal."""
    lines = [f"lab {status['name']}, host profile {status['profile']}"]
    for h in status["hosts"]:
        extra = ""
        if h["cloud"]:
            extra = (
                f" opennebula {h.get('opennebula', '?')}, oned {h.get('oned', '?')}, "
                f"datastore {h.get('datastore_fstype', '?')}"
            )
        state = "up" if h["up"] else "DOWN"
        lines.append(f"  {h['name']:<12} {h['ip']:<14} {h['cloud'] or 'nfs':<11} {state}{extra}")
    for cloud, info in status["clouds"].items():
        if "error" in info:
            lines.append(f"  {cloud}: oned at {info['endpoint']} not answering: {info['error']}")
            continue
        per_host = ", ".join(f"{k}: {v}" for k, v in sorted(info["vms_per_host"].items()))
        lines.append(
            f"  {cloud}: OpenNebula {info['version']} at {info['endpoint']}, "
            f"{info['vms']} VMs ({per_host})"
        )
    return "\n".join(lines)
