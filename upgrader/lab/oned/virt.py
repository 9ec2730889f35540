"""The hypervisor view: which domains really run on which host.

It is kept apart from oned's view on purpose: after a libvirtd crash the two disagree,
and that disagreement is what the ``no-duplicate-vms`` gate must find. Each host's
domains are written as a libvirt test-driver node file ``<dir>/<host>.xml``, so the real
``virsh -c test:///<dir>/<host>.xml list`` shows them; ``<host>.state.json`` says
whether that host's libvirtd runs and whether the host is reachable.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.sax.saxutils import quoteattr

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Domain:
    """One running domain ``one-<vmid>``."""

    name: str
    vmid: int
    memory_kb: int
    vcpu: int
    disks: tuple[tuple[str, str], ...]  # (target dev, source file)


def host_file(directory: Path, host: str) -> Path:
    """The test-driver file of ``host``."""
    return directory / f"{_SAFE.sub('_', host)}.xml"


class VirtView:
    """Domains per host, written to test-driver files when they change."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.domains: dict[str, dict[str, Domain]] = {}
        self.state: dict[str, dict[str, bool]] = {}
        self._dirty: set[str] = set()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    def _load(self) -> None:
        assert self.directory is not None
        for path in sorted(self.directory.glob("*.xml")):
            try:
                root = ET.parse(path).getroot()
            except ET.ParseError:
                continue
            host = root.get("host") or path.stem
            doms: dict[str, Domain] = {}
            for d in root.findall("domain"):
                name = d.findtext("name") or ""
                if not name.startswith("one-"):
                    continue
                disks = tuple(
                    (x.find("target").get("dev", ""), x.find("source").get("file", ""))
                    for x in d.findall("devices/disk")
                    if x.find("target") is not None and x.find("source") is not None
                )
                doms[name] = Domain(
                    name,
                    int(name[4:]),
                    int(d.findtext("memory") or 0),
                    int(d.findtext("vcpu") or 1),
                    disks,
                )
            self.domains[host] = doms

    def add_host(self, host: str) -> None:
        """Make sure ``host`` has a (possibly empty) node file."""
        if host not in self.domains:
            self.domains[host] = {}
            self._dirty.add(host)
        self.state.setdefault(host, {"libvirtd": True, "reachable": True})
        self._dirty.add(host)

    def start(self, host: str, dom: Domain) -> None:
        """A domain starts (or arrives by migration) on ``host``."""
        self.domains.setdefault(host, {})[dom.name] = dom
        self._dirty.add(host)

    def stop(self, host: str, name: str) -> None:
        """A domain is gone from ``host``."""
        if self.domains.get(host, {}).pop(name, None) is not None:
            self._dirty.add(host)

    def running(self, host: str) -> list[str]:
        """Names of the domains on ``host``."""
        return sorted(self.domains.get(host, {}))

    def hosts_running(self, name: str) -> list[str]:
        """Every host where domain ``name`` runs."""
        return sorted(h for h, doms in self.domains.items() if name in doms)

    def set_state(
        self, host: str, *, libvirtd: bool | None = None, reachable: bool | None = None
    ) -> None:
        """Record libvirtd / reachability of ``host`` for the lab's tools."""
        st = self.state.setdefault(host, {"libvirtd": True, "reachable": True})
        if libvirtd is not None:
            st["libvirtd"] = libvirtd
        if reachable is not None:
            st["reachable"] = reachable
        self._dirty.add(host)

    def flush(self) -> None:
        """Rewrite the files of the hosts that changed (atomically)."""
        if self.directory is None:
            self._dirty.clear()
            return
        for host in sorted(self._dirty):
            _atomic_write(host_file(self.directory, host), self._node_xml(host))
            state = self.state.get(host, {"libvirtd": True, "reachable": True})
            _atomic_write(
                self.directory / f"{_SAFE.sub('_', host)}.state.json",
                json.dumps(state, sort_keys=True) + "\n",
            )
        self._dirty.clear()

    def _node_xml(self, host: str) -> str:
        parts = [
            f"<node host={quoteattr(host)}>",
            "<cpu><mhz>2200</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
            "<cores>8</cores><threads>1</threads></cpu>",
            "<memory>16777216</memory>",
        ]
        for dom in sorted(self.domains.get(host, {}).values(), key=lambda d: d.vmid):
            uid = uuid.uuid5(uuid.NAMESPACE_URL, f"opennebula-lab/{host}/{dom.name}")
            disks = "".join(
                f"<disk type='file' device='disk'><source file={quoteattr(src)}/>"
                f"<target dev={quoteattr(dev)} bus='virtio'/></disk>"
                for dev, src in dom.disks
            )
            parts.append(
                f"<domain type='test'><name>{dom.name}</name><uuid>{uid}</uuid>"
                f"<memory>{dom.memory_kb}</memory><vcpu>{dom.vcpu}</vcpu>"
                f"<os><type>hvm</type></os><devices>{disks}</devices></domain>"
            )
        parts.append("</node>")
        return "\n".join(parts) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
