"""Verdict on the hosts themselves: targets-supported (can this controller manage them at all?).

The controller runs ansible-core 2.16, which manages hosts with Python 2.7 or 3.6+ only
(ansible-core 2.12 was the last to manage Python 2.6 and 3.5). ``playbooks/check-targets.yml``
asks every host, with a raw shell script and no Python, for its OS release, every interpreter
Ansible's discovery looks for (and the one the inventory names), ``crm_mon``, Puppet and
libvirtd's service; ``parse_answer`` reads that answer, and ``targets_supported`` says per host,
in one line, what is missing and how to provide it.

The interpreter judged is the one a play will use: ``ansible_python_interpreter`` when the
inventory sets a path, else the one discovery picks (``interpreters.discovered``).

Pure: no I/O, no clock. A host that could not be reached is unreadable (inconclusive), never
supported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS, GateResult
from upgrader.gates.verdicts.base import listing, result
from upgrader.gates.verdicts.interpreters import (
    AUTO,
    DISTRO_MAP,
    FAMILY,
    Interpreter,
    discovered,
    found,
    loose,
)

# The roles a host plays, by what the playbooks run there.
FRONTEND, HYPERVISOR, NFS_SERVER, PUPPET = "frontends", "hypervisors", "nfs_servers", "puppet"
_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")
Get = Callable[[str], str]  # a key's (first) value in a host's answer, "" when absent
_KEY = re.compile(
    r"(os\.\w+|lsb\.\w+|redhat_release|debian_version|py\.(\d+|set)\.(look|path|version|apt|error)"
    r"|crm_mon\.(path|version)|puppet\.(path|version)|libvirt\.(initd|unit|upstart)|end)="
)


@dataclass(frozen=True)
class TargetHost:
    """What one host answered. ``unreachable``: what the connection said when it could not be
    reached; ``cut_short``: why its answer is incomplete (the script did not end)."""

    host: str
    roles: tuple[str, ...] = ()
    unreachable: str = ""
    cut_short: str = ""
    os_id: str = ""
    os_version: str = ""
    os_name: str = ""
    setting: str = "auto"  # ansible_python_interpreter, or interpreter_python
    configured: Interpreter | None = None  # the interpreter the setting names
    looked: tuple[Interpreter, ...] = ()  # discovery's names, in its order
    crm_mon: str = ""  # `crm_mon --version`'s first line ("" not found)
    puppet: str = ""  # `puppet --version` ("" not found)
    puppet_command: str = "puppet"
    libvirt: tuple[str, ...] = ()  # libvirtd's services found ("libvirt-bin (init script)")
    libvirtd_service: str = ""  # the inventory's name for libvirtd's init script
    libvirtd_status_command: str = ""  # the inventory's own way to ask libvirtd


@dataclass(frozen=True)
class TargetsObservation:
    hosts: tuple[TargetHost, ...]
    distro_map: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DISTRO_MAP)


# ------------------------------------------------------------------ reading the answer


def parse_answer(
    host: str,
    stdout: str,
    *,
    roles: tuple[str, ...] = (),
    setting: str = "auto",
    puppet_command: str = "puppet",
    libvirtd_service: str = "",
    libvirtd_status_command: str = "",
    rc: int | None = 0,
) -> TargetHost:
    """``check-targets.sh``'s key=value lines (through a pty: CRs, stray lines) as a host."""
    values: dict[str, list[str]] = {}
    for raw in stdout.splitlines():
        line = raw.strip("\r")
        if _KEY.match(line):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value.strip())

    def one(key: str) -> str:
        return values.get(key, [""])[0]

    os_id, os_version, os_name = _os(one)
    kinds = {"initd": "init script", "unit": "systemd unit", "upstart": "upstart job"}
    return TargetHost(
        host,
        roles=roles,
        cut_short="" if one("end") == "ok" else _cut_short(stdout, rc),
        os_id=os_id,
        os_version=os_version,
        os_name=os_name,
        setting=setting,
        configured=_interpreter(one, "set") if one("py.set.look") else None,
        looked=tuple(
            _interpreter(one, n) for n in sorted({int(k.split(".")[1]) for k in values if _n(k)})
        ),
        crm_mon=(one("crm_mon.version") or "found") if one("crm_mon.path") else "",
        puppet=(one("puppet.version") or "found") if one("puppet.path") else "",
        puppet_command=puppet_command,
        libvirt=tuple(
            f"{name} ({kinds[kind]})"
            for kind in kinds
            for name in values.get(f"libvirt.{kind}", [])
        ),
        libvirtd_service=libvirtd_service,
        libvirtd_status_command=libvirtd_status_command,
    )


def _n(key: str) -> bool:
    return key.startswith("py.") and key.split(".")[1].isdigit()


def _interpreter(get: Get, n: object) -> Interpreter:
    version, error = get(f"py.{n}.version"), get(f"py.{n}.error")
    if version and not _VERSION.fullmatch(version):
        version, error = "", f"answered {version!r}"
    path = get(f"py.{n}.path")
    return Interpreter(
        get(f"py.{n}.look"),
        path,
        version,
        error or ("" if version else "no answer" if path else "not found"),
        {"yes": True, "no": False}.get(get(f"py.{n}.apt")),
    )


def _os(get: Get) -> tuple[str, str, str]:
    """(id, version, name) from os-release, else the files of hosts older than it (the order
    upgrader_probe reads them in)."""
    if get("os.ID"):
        return get("os.ID").lower(), get("os.VERSION_ID"), get("os.PRETTY_NAME") or get("os.ID")
    if get("lsb.DISTRIB_ID"):
        lsb_id, release = get("lsb.DISTRIB_ID"), get("lsb.DISTRIB_RELEASE")
        return lsb_id.lower(), release, f"{lsb_id} {release}".strip()
    redhat = get("redhat_release")
    if redhat:
        found = re.search(r"release\s+([\d.]+)", redhat)
        name = "rhel" if redhat.startswith("Red Hat") else redhat.split()[0].lower()
        return name, found.group(1) if found else "", redhat
    debian = get("debian_version")
    if debian:
        return "debian", debian if debian[:1].isdigit() else "", f"Debian {debian}"
    return "", "", ""


def _cut_short(stdout: str, rc: int | None) -> str:
    lines = [line.strip("\r ") for line in stdout.splitlines() if line.strip("\r ")]
    said = f": {lines[-1][:200]}" if lines else ": no output"
    return f"the check did not finish (rc {rc}){said}"


def used(
    h: TargetHost, distro_map: Mapping[str, Mapping[str, str]] = DISTRO_MAP
) -> Interpreter | None:
    """The interpreter a play will use on ``h`` (None: discovery finds none)."""
    setting = h.setting.strip()
    if setting not in AUTO:
        return h.configured or Interpreter(setting)
    return discovered(h.looked, h.os_id, h.os_version, setting, distro_map)


# ------------------------------------------------------------------ the verdict

GATE = "targets-supported"
_USABLE = "a Python 2.7 or 3.6+"
_OLD_ANSIBLE = "manage it with ansible-core 2.12"


def _install(h: TargetHost) -> str:
    return "install python2.7" + (
        " (e.g. from EPEL/IUS/SCL)" if FAMILY.get(h.os_id) == "redhat" else ""
    )


def _python_problem(h: TargetHost, chosen: Interpreter | None) -> str:
    """What keeps Ansible from running modules on ``h``, and how to provide it ("" nothing)."""
    runs = found(h.looked)
    usable = [i for i in runs if i.usable]
    if h.setting.strip() not in AUTO:
        return _configured_problem(h, usable)
    if chosen is None:
        names = [i.looked_for for i in h.looked]
        looked = f"{names[0]} ... {names[-1]}" if len(names) > 2 else " and ".join(names) or "none"
        return (
            f"no Python found (looked for {looked}, as Ansible does); {_install(h)} or "
            "python3.6+, or set ansible_python_interpreter"
        )
    if chosen.usable:
        return ""
    if usable:
        return (
            f"Ansible would use {chosen.path} ({chosen.said()}); set "
            f"ansible_python_interpreter={usable[0].path} ({usable[0].said()})"
        )
    versions = sorted({i.version for i in runs if i.version}, key=loose)
    if versions:
        newer = " or python3.6+," if any(v.startswith("3.") for v in versions) else ""
        return f"Python {' and '.join(versions)} only; {_install(h)}{newer} or {_OLD_ANSIBLE}"
    broken = ", ".join(f"{i.path} ({i.error})" for i in runs[:3])
    return (
        f"no Python that runs ({broken}); {_install(h)} or python3.6+, or set "
        "ansible_python_interpreter"
    )


def _configured_problem(h: TargetHost, usable: list[Interpreter]) -> str:
    c = h.configured
    if c is None or not c.path:
        state = "not found"
    elif not c.version:
        state = f"does not run ({c.error})"
    elif not c.usable:
        state = f"is Python {c.version}"
    else:
        return ""
    if usable:
        how = f"point it at {_USABLE}, such as {usable[0].path} ({usable[0].said()})"
    else:
        how = f"point it at {_USABLE} (none found where Ansible looks: {_install(h)})"
    return f"ansible_python_interpreter {h.setting.strip()} {state}; {how}"


def _tool_problems(h: TargetHost) -> list[str]:
    """crm_mon on the front ends, Puppet where the playbooks hold it, libvirtd's init script on
    the hypervisors."""
    out = []
    if FRONTEND in h.roles and not h.crm_mon:
        out.append(
            "crm_mon not found; install Pacemaker's command-line tools on this front end "
            "(or name it in crm_mon_command)"
        )
    if PUPPET in h.roles and not h.puppet:
        what = "puppet" if h.puppet_command == "puppet" else f"puppet_command {h.puppet_command}"
        out.append(f"{what} not found; install puppet (2.7 or 3.x) or set puppet_command")
    if HYPERVISOR in h.roles:
        out += _libvirtd_problem(h)
    return out


def libvirtd_service(os_id: str, os_version: str) -> str:
    """libvirtd's init script by distribution, as the playbooks default it (upgrader_probe):
    libvirt-bin on Debian <= 8 and Ubuntu <= 18.04, libvirtd elsewhere."""
    version = loose(os_version)[:2]
    old = (os_id == "debian" and (0,) < version <= (8, 99)) or (
        os_id == "ubuntu" and (0,) < version <= (18, 4)
    )
    return "libvirt-bin" if old else "libvirtd"


def _libvirtd_problem(h: TargetHost) -> list[str]:
    """The gates and node-upgrade.yml run ``/etc/init.d/<libvirtd_service> status`` unless the
    inventory gives its own ``libvirtd_status_command``."""
    if h.libvirtd_status_command:
        return []
    want = h.libvirtd_service or libvirtd_service(h.os_id, h.os_version)
    scripts = [s.split()[0] for s in h.libvirt if s.endswith("(init script)")]
    if want in scripts:
        return []
    if scripts:
        return [f"no /etc/init.d/{want}, but {scripts[0]}; set libvirtd_service: {scripts[0]}"]
    found = f" (found: {', '.join(h.libvirt)})" if h.libvirt else ""
    return [
        f"no libvirtd init script /etc/init.d/{want}{found}; install libvirt-bin "
        "(Debian/Ubuntu) or libvirt (CentOS), or set libvirtd_status_command"
    ]


def _seen(h: TargetHost, chosen: Interpreter | None) -> dict[str, object]:
    """One host in the evidence: what it runs, and the Python a play will use."""
    return {
        "os": h.os_name or "unknown",
        "roles": list(h.roles),
        # finding none, Ansible tries /usr/bin/python (not there: the check would have found it)
        "python": (chosen.path or chosen.looked_for) if chosen else "/usr/bin/python",
        "python_version": chosen.version or None if chosen else None,
        "python_by": "discovery" if h.setting.strip() in AUTO else "ansible_python_interpreter",
        "python_apt": chosen.apt if chosen else None,
        "found": {i.path: i.version or i.error for i in found(h.looked)},
        "crm_mon": h.crm_mon or None,
        "puppet": h.puppet or None,
        "libvirt": list(h.libvirt),
    }


def targets_supported(obs: TargetsObservation) -> GateResult:
    """``targets-supported``: every host has a Python this controller's Ansible manages (2.7 or
    3.6+), and the commands the playbooks run there; one line per host that does not."""
    lines: dict[str, str] = {}
    waiting: dict[str, str] = {}
    seen: dict[str, object] = {}
    versions: Counter[str] = Counter()
    no_apt: list[str] = []
    for h in obs.hosts:
        if h.unreachable:
            waiting[h.host] = f"{h.host}: unreachable ({h.unreachable})"
            seen[h.host] = {"unreachable": h.unreachable}
            continue
        if h.cut_short:
            lines[h.host] = f"{h.host}: {h.cut_short}; check that /bin/sh runs commands there"
            seen[h.host] = {"cut_short": h.cut_short}
            continue
        chosen = used(h, obs.distro_map)
        problems = [p for p in (_python_problem(h, chosen), *_tool_problems(h)) if p]
        if problems:
            lines[h.host] = f"{h.host}: " + "; ".join(problems)
        elif chosen is not None:
            versions[chosen.version] += 1
            if FAMILY.get(h.os_id) == "debian" and chosen.apt is False:
                no_apt.append(h.host)
        seen[h.host] = _seen(h, chosen)
    details = {
        "hosts": seen,
        "lines": lines,
        "unreachable": sorted(waiting),
        "no_python_apt": no_apt,
    }
    if lines:
        summary = "; ".join([*lines.values(), *waiting.values()])
        return result(GATE, FAIL, summary, _FAIL_HINT, **details)
    if waiting or not obs.hosts:
        summary = "; ".join(waiting.values()) or "no host was checked"
        return result(GATE, INCONCLUSIVE, summary, _WAIT_HINT, **details)
    summary = f"{len(obs.hosts)} hosts can be managed: " + ", ".join(
        f"Python {v} on {n}" for v, n in sorted(versions.items(), key=lambda kv: loose(kv[0]))
    )
    if no_apt:
        summary += f"; no python-apt on {listing(no_apt)} (package tasks use apt-get, dpkg-query)"
    return result(GATE, PASS, summary, **details)


_FAIL_HINT = (
    "give each named host what its line says (or point ansible_python_interpreter in the "
    "inventory at a Python 2.7 or 3.6+ it has), then `upgrader gates --gate targets-supported`; "
    "nothing on the hosts was changed"
)
_WAIT_HINT = (
    "check ssh to the named hosts (`ansible HOST -i INVENTORY -m ansible.builtin.raw -a true`); "
    "the check needs no Python there, only a login and /bin/sh"
)
