"""``upgrader lab fault NAME [--host H] [--cloud C] [--clear]``: the faults operators met.

Each fault changes what the matching real tool shows, and ``--clear`` puts it back:

| fault | what changes | seen by |
|---|---|---|
| libvirtd-crash | libvirtd killed by SIGSEGV; oned cannot monitor the host | init script, oned |
| oned-down | oned stopped on the front end | XML-RPC, init script |
| host-unreachable | the host's link down; oned sees ERROR | ssh, oned |
| stonith-agent-broken | a syntax error in the installed fence agent | py_compile / bash -n |
| nfs-full | the NFS export filled up | df, nfs-ls |
| corrupt-copy | one byte flipped in the largest file on the export | checksums |
| slow-migration | live migrations hang until cleared | oned (MIGRATE) |
| puppet-enabled | the Puppet agent enabled where it was held | puppet agent |
| package-missing | newer opennebula packages gone from the lab's apt repository | apt-get |
| no-python | every Python interpreter of the host moved aside | Ansible's discovery |

corrupt-copy with ``--cloud`` picks the largest file in that cloud's export directory (where
the storage migration copies it), and says which file it changed.

package-missing takes away every ``opennebula`` (front-end) release newer than the one the
cloud's front end runs, for both clouds (they share the repository); ``--clear`` puts them
back. Nothing checks package availability before a run, so the upgrade meets it at
``apt-get install``, after the backup and before ``onedb upgrade``.

no-python moves ``python``, ``python2``, ``python2.7``, any ``python3*`` left (a 2012 host has
none) and ``/usr/libexec/platform-python`` out of the host's ``/usr/bin`` and ``/usr/local/bin``
into ``/var/lib/upgrader-lab/no-python``, so that Ansible finds no interpreter there; the lab's
own programs keep running (they use an interpreter path of their own, profiles.py).

puppet-enabled lifts the hold and ``--clear`` puts it back. On a modern host that is ``puppet
agent --enable`` and ``--disable`` with the hold's message. On a 2012 host Puppet 2.7's lock,
an empty ``puppetdlock``, is moved aside and back: the hold that comes back is the very lock it
was (same inode and time), which is what tells a hold apart from one made again later, since
Puppet 2.7 keeps no message.

What a fault tells oned (a crashed libvirtd, an unreachable host, a hanging migration path)
is also written to ``/srv/lab/<cloud>/one/lab-faults.json``, which the lab's init script
hands to oned again when it starts: the fault lives outside oned, so restarting oned (as
every front-end upgrade does) must not heal it.
"""

from __future__ import annotations

import json
import re
import xmlrpc.client
from pathlib import Path
from typing import Any

from upgrader.lab import hosts as hs
from upgrader.lab import profiles
from upgrader.lab.hosts import LabError, LabHost
from upgrader.lab.lab import lab_dir, load_spec
from upgrader.lab.nfs import EXPORT
from upgrader.lab.packages import RELEASES, write_index

FAULTS = (
    "libvirtd-crash",
    "oned-down",
    "host-unreachable",
    "stonith-agent-broken",
    "nfs-full",
    "corrupt-copy",
    "slow-migration",
    "puppet-enabled",
    "package-missing",
    "no-python",
)
FENCE_AGENT = "/usr/sbin/fence_ipmilan"
HIDDEN_PYTHON = "/var/lib/upgrader-lab/no-python"
PUPPET_ASIDE = "/var/lib/upgrader-lab/puppet-enabled"  # Puppet 2.7's lock while "enabled"
# Moves every interpreter Ansible could discover into HIDDEN_PYTHON (the path with / as %), and
# prints the paths it moved.
_HIDE_PYTHON = f"""
mkdir -p {HIDDEN_PYTHON}
for f in /usr/bin/python* /usr/local/bin/python* /usr/libexec/platform-python; do
  [[ ${{f##*/}} =~ ^(python[0-9.]*|platform-python)$ ]] || continue
  [ -e "$f" ] || [ -L "$f" ] || continue
  mv "$f" "{HIDDEN_PYTHON}/${{f//\\//%}}" && echo "$f"
done
"""


def _pick(
    spec: Any, host: str | None, cloud: str | None, *, nfs: bool = False, frontend: bool = False
) -> LabHost:
    if nfs:
        return next(h for h in spec.hosts if h.cloud is None)
    candidates = [h for h in spec.hosts if h.cloud and (cloud is None or h.cloud == cloud)]
    if host is not None:
        candidates = [h for h in candidates if h.name == host]
        if not candidates:
            raise LabError(
                f"no lab host '{host}'" + (f" in cloud {cloud}" if cloud else ""),
                hint="upgrader lab status lists the hosts",
            )
    if not candidates:
        raise LabError(f"no cloud '{cloud}' in the lab", hint="use staging or production")
    if host is None and not frontend:
        return candidates[-1]  # a hypervisor that is not the front end
    return candidates[0]


def _oned(spec: Any, cloud: str) -> xmlrpc.client.ServerProxy:
    front = next(h for h in spec.hosts if h.cloud == cloud)
    return xmlrpc.client.ServerProxy(f"http://{front.ip}:2633/RPC2")


def _oned_faults_file(lab: Path, cloud: str) -> Path:
    """Read by the init script of the lab's opennebula package (packages.py) at start."""
    return lab / "share" / cloud / "one" / "lab-faults.json"


def _tell_oned(lab: Path, spec: Any, cloud: str, name: str, target: str, *, on: bool) -> None:
    """Set (or clear) a fault in the cloud's oned and in the file a restarted oned reads."""
    path = _oned_faults_file(lab, cloud)
    known = json.loads(path.read_text()) if path.exists() else []
    known = [f for f in known if (f["name"], f["target"]) != (name, target)]
    if on:
        known.append({"name": name, "target": target, "params": {}})
        path.write_text(json.dumps(known, indent=1))  # first: an oned starting now reads it
        _oned(spec, cloud).lab.fault.set(name, target, {})
    else:
        _oned(spec, cloud).lab.fault.clear(name, target)
        path.write_text(json.dumps(known, indent=1))


def apply(
    name: str, fault: str, *, host: str | None = None, cloud: str | None = None, clear: bool = False
) -> str:
    """Inject (or clear) ``fault``; return one line saying what was done."""
    if fault not in FAULTS:
        raise LabError(f"unknown fault '{fault}'", hint=f"known faults: {', '.join(FAULTS)}")
    spec = load_spec(name)
    lab = lab_dir(name)
    state_file = lab / "faults.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}
    target = _pick(
        spec,
        host,
        cloud,
        nfs=fault in ("nfs-full", "corrupt-copy"),
        frontend=fault in ("oned-down", "package-missing"),
    )
    key = f"{fault}@{target.name}"
    if fault == "corrupt-copy" and cloud:
        key += f"/{cloud}"  # each cloud's copy can be corrupted (and cleared) on its own
    if clear:
        if key not in state:
            return f"{fault} is not active on {target.name}"
        _clear(lab, spec, fault, target, state.pop(key))
        verb = "cleared"
    else:
        if key in state:
            return f"{fault} is already active on {target.name}"
        state[key] = _inject(lab, spec, fault, target, cloud)
        verb = "injected"
    state_file.write_text(json.dumps(state, indent=1))
    where = f" ({state.get(key, {}).get('path')})" if fault == "corrupt-copy" and not clear else ""
    return f"{fault} {verb} on {target.name}{where}"


def _inject(lab: Path, spec: Any, fault: str, h: LabHost, cloud: str | None = None) -> Any:
    if fault == "libvirtd-crash":
        hs.enter(lab, h.name, "sh", "-c", "kill -SEGV $(cat /var/run/libvirtd.pid)")
        _tell_oned(lab, spec, h.cloud, "libvirtd-crash", h.name, on=True)
    elif fault == "oned-down":
        hs.enter(lab, h.name, "/etc/init.d/opennebula", "stop")
    elif fault == "host-unreachable":
        _tell_oned(lab, spec, h.cloud, "host-unreachable", h.name, on=True)
        hs.run("ip", "-n", h.name, "link", "set", "eth0", "down")
    elif fault == "stonith-agent-broken":
        hs.enter(
            lab,
            h.name,
            "sh",
            "-c",
            f"cp -p {FENCE_AGENT} /var/lib/lab-fence_ipmilan.orig && "
            f"sed -i '3i def broken(:  # shipped by a bad package update' {FENCE_AGENT}",
        )
    elif fault == "nfs-full":
        hs.enter(
            lab,
            h.name,
            "sh",
            "-c",
            "fallocate -l $(( $(df --output=avail -B1 "
            "/srv/lab/nfs/export | tail -1) - 4096 )) /srv/lab/nfs/export/.lab-filler",
        )
    elif fault == "corrupt-copy":
        root = f"{EXPORT}/{cloud}" if cloud else EXPORT
        out = hs.enter(
            lab,
            h.name,
            "sh",
            "-c",
            f"find {root} -type f -printf '%s %p\\n' 2>/dev/null | sort -n | tail -1",
            check=False,
        ).stdout.split(maxsplit=1)
        if not out:
            raise LabError(
                f"nothing on the NFS export to corrupt yet (no file under {root})",
                hint="inject corrupt-copy after the pre-sync copied files",
            )
        path = out[1].strip()
        _flip(lab, h, path)
        return {"path": path}
    elif fault == "slow-migration":
        _tell_oned(lab, spec, h.cloud, "migration-hang", "", on=True)
    elif fault == "package-missing":
        return {"held": _hold_packages(lab, h)}
    elif fault == "puppet-enabled":
        return {"reason": _enable_puppet(lab, profiles.get(spec.profile), h)}
    elif fault == "no-python":
        moved = hs.enter(lab, h.name, "bash", "-c", _HIDE_PYTHON).stdout.split()
        return {"moved": moved}
    return {}


def _enable_puppet(lab: Path, profile: profiles.HostProfile, h: LabHost) -> str | None:
    """Enable the agent; return the hold's message ("" for Puppet 2.7's, which has none),
    None if the agent was not held."""
    lock = profile.puppet_lock
    if not profile.puppet_message:
        moved = hs.enter(
            lab, h.name, "sh", "-c", f"test -e {lock} && mkdir -p {PUPPET_ASIDE} && "
            f"mv {lock} {PUPPET_ASIDE}/", check=False,
        )  # fmt: skip
        return "" if moved.returncode == 0 else None
    held = hs.enter(lab, h.name, "cat", lock, check=False)
    hs.enter(lab, h.name, "puppet", "agent", "--enable")
    if held.returncode != 0:
        return None
    return str(json.loads(held.stdout or "{}").get("disabled_message", ""))


def _destroy_strays(lab: Path, oned: xmlrpc.client.ServerProxy, h: LabHost) -> None:
    """What the operator does after the incident: destroy the domains oned placed elsewhere."""
    session = (lab / f"{h.cloud}.one_auth").read_text().strip()
    for domain in oned.lab.virt.list(h.name):
        ok, body, _ = oned.one.vm.info(session, int(domain.removeprefix("one-")))
        hosts = re.findall(r"<HOSTNAME>([^<]*)</HOSTNAME>", body) if ok else []
        placed_here = (
            ok
            and "<STATE>3</STATE>" in body
            and "<LCM_STATE>15</LCM_STATE>" not in body
            and hosts
            and hosts[-1] == h.name
        )
        if not placed_here:
            oned.lab.virt.destroy(h.name, domain)
    oned.lab.flush()


def _flip(lab: Path, h: LabHost, path: str) -> None:
    """Flip the first byte of ``path`` (a path under the share, as the nfs host ``h`` sees
    it), from the machine: the host may have no Python to do it with."""
    if not path.startswith("/srv/lab/"):
        raise LabError(f"{path} on {h.name} is not on the lab's share")
    with (lab / "share" / path.removeprefix("/srv/lab/")).open("r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([(first[0] if first else 0) ^ 0xFF]))


def _clear(lab: Path, spec: Any, fault: str, h: LabHost, data: Any) -> None:
    profile = profiles.get(spec.profile)
    if fault == "libvirtd-crash":
        hs.enter(lab, h.name, f"/etc/init.d/{profile.libvirtd_service}", "start")
        _tell_oned(lab, spec, h.cloud, "libvirtd-crash", h.name, on=False)
        _destroy_strays(lab, _oned(spec, h.cloud), h)
    elif fault == "oned-down":
        hs.enter(lab, h.name, "/etc/init.d/opennebula", "start")
    elif fault == "host-unreachable":
        hs.run("ip", "-n", h.name, "link", "set", "eth0", "up")
        hs.run("ip", "-n", h.name, "route", "replace", "default", "via", f"{spec.subnet}.1")
        _tell_oned(lab, spec, h.cloud, "host-unreachable", h.name, on=False)
        # the hook may have started its VMs elsewhere
        _destroy_strays(lab, _oned(spec, h.cloud), h)
    elif fault == "stonith-agent-broken":
        hs.enter(lab, h.name, "cp", "-p", "/var/lib/lab-fence_ipmilan.orig", FENCE_AGENT)
    elif fault == "nfs-full":
        hs.enter(lab, h.name, "rm", "-f", "/srv/lab/nfs/export/.lab-filler")
    elif fault == "corrupt-copy":
        _flip(lab, h, data["path"])
    elif fault == "slow-migration":
        _tell_oned(lab, spec, h.cloud, "migration-hang", "", on=False)
    elif fault == "package-missing":
        _release_packages(lab, data["held"])
    elif fault == "puppet-enabled" and data.get("reason") is not None:
        if profile.puppet_message:
            hs.enter(lab, h.name, "puppet", "agent", "--disable", data["reason"] or "held")
        else:
            name = profile.puppet_lock.rsplit("/", 1)[1]
            hs.enter(lab, h.name, "mv", f"{PUPPET_ASIDE}/{name}", profile.puppet_lock)
    elif fault == "no-python":
        for path in data["moved"]:
            hidden = f"{HIDDEN_PYTHON}/{path.replace('/', '%')}"
            hs.enter(lab, h.name, "mv", hidden, path)


# ------------------------------------------------------------------ package-missing
def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.partition("-")[0]))


def _repo_dirs(lab: Path) -> tuple[Path, Path]:
    """The lab's apt repository and, on the same mount, where taken packages wait."""
    return lab / "share" / "repo", lab / "share" / "repo-held"


def _hold_packages(lab: Path, front: LabHost) -> list[str]:
    """Take every opennebula package newer than the front end's out of the repository."""
    installed = hs.enter(
        lab, front.name, "dpkg-query", "--show", "--showformat=${Version}", "opennebula"
    ).stdout.strip()
    newer = [v for v in RELEASES if _release_key(v) > _release_key(installed)]
    if not newer:
        raise LabError(
            f"{front.name} runs opennebula {installed}: no newer release to take away",
            hint="package-missing needs a cloud that is not on the newest lab release",
        )
    repo, held = _repo_dirs(lab)
    held.mkdir(exist_ok=True)
    names = [f"opennebula_{v}-1_all.deb" for v in newer]
    for name in names:
        (repo / name).rename(held / name)
    write_index(repo)
    return names


def _release_packages(lab: Path, names: list[str]) -> None:
    repo, held = _repo_dirs(lab)
    for name in names:
        if (held / name).exists():
            (held / name).rename(repo / name)
    write_index(repo)
