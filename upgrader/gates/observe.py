"""Turn what the gather play and oned answered into the verdicts' observations.

Each function takes raw answers (the per-host JSON of ``playbooks/gather-host-facts.yml``,
``crm_mon`` XML, the client's models) and builds the frozen observation its verdict
judges. A host that did not answer becomes an unreadable entry, never a healthy one.

The hosts are of the 3.x era (issue 20): mounts come from upgrader_probe's reading of
/proc/self/mountinfo and statvfs, Pacemaker's status is ``crm_mon --as-xml`` (the
``<crm_mon version=...>`` document of Pacemaker 1.1, which 2.x still prints) or the
``<pacemaker-result>`` of ``--output-as=xml``, and Puppet's hold is the probe's reading of
Puppet 2.7's or 3.x's lock.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from upgrader.errors import OneApiError
from upgrader.gates.model import Gathered, HostData
from upgrader.gates.verdicts import (
    AgentCheck,
    DatastoreMount,
    DatastoreObservation,
    DomainMap,
    FailedAction,
    FencingObservation,
    HypervisorDomains,
    LibvirtdObservation,
    LibvirtdStatus,
    OnedDatastore,
    OnedVersionSeen,
    PacemakerNode,
    PacemakerObservation,
    PacemakerResource,
    PuppetAgent,
    PuppetObservation,
    VmSeen,
)
from upgrader.opennebula import OneClient

NO_ANSWER = "host did not answer"
NO_LOCK = "the gather play did not read Puppet's lock"


def libvirtd_observation(seen: Mapping[str, HostData]) -> LibvirtdObservation:
    """libvirtd per hypervisor, from the gather play."""
    hosts = []
    for host, data in sorted(seen.items()):
        if data is None:
            hosts.append(LibvirtdStatus(host, None, error=NO_ANSWER))
        else:
            hosts.append(LibvirtdStatus(host, data["libvirtd_rc"] == 0, data["libvirtd"]))
    return LibvirtdObservation(tuple(hosts))


def domain_map(client: OneClient, seen: Mapping[str, HostData]) -> DomainMap:
    """oned's VM placement against what virsh lists on every hypervisor."""
    vms = tuple(VmSeen.from_vm(vm) for vm in client.vm_pool())
    hypervisors = []
    for host, data in sorted(seen.items()):
        if data is None:
            hypervisors.append(HypervisorDomains(host, None, NO_ANSWER))
        elif data["virsh_rc"] != 0:
            hypervisors.append(HypervisorDomains(host, None, data["virsh_error"].strip()))
        else:
            hypervisors.append(HypervisorDomains(host, _domain_names(data["virsh"])))
    return DomainMap(vms, tuple(hypervisors))


def _domain_names(lines: list[str]) -> tuple[str, ...]:
    """The running domains of ``virsh list``: its table (" Id Name State", a rule, then a
    row a domain: what every libvirt prints) or one name a line (``--name``, libvirt 0.9.10+,
    which Debian 6's 0.8 and Ubuntu 12.04's 0.9.8 lack)."""
    rule = next((i for i, line in enumerate(lines) if line.strip().startswith("---")), 0)
    if not rule or lines[rule - 1].split()[:2] != ["Id", "Name"]:
        return tuple(line.strip() for line in lines if line.strip())
    rows = (line.split() for line in lines[rule + 1 :])
    return tuple(row[1] for row in rows if len(row) >= 2)


def puppet_observation(seen: Mapping[str, HostData]) -> PuppetObservation:
    """The Puppet agent's hold on every hypervisor, as upgrader_probe read its lock (the
    reason of a Puppet 2.7 hold comes from the note the hold keeps next to the lock)."""
    agents = []
    for host, data in sorted(seen.items()):
        state = data.get("puppet") if data is not None else None
        if data is None or not isinstance(state, Mapping):
            agents.append(PuppetAgent(host, None, error=NO_ANSWER if data is None else NO_LOCK))
            continue
        agents.append(
            PuppetAgent(
                host,
                bool(state.get("disabled")),
                str(state.get("reason") or ""),
                run_in_progress=bool(state.get("running")),
            )
        )
    return PuppetObservation(tuple(agents))


# ------------------------------------------------------------------ datastores


def _mount(host: str, path: str, answer: object, *, at_path: bool) -> DatastoreMount:
    """upgrader_probe's answer about the file system holding ``path`` as a mount: with
    ``at_path``, one mounted at ``path`` itself (else ``path`` is not mounted); without, the
    file system that holds it (an NFS server's export may be a directory of its disk)."""
    if not isinstance(answer, Mapping):
        return DatastoreMount(host, path, None, error="the gather play did not look at the mount")
    if answer.get("error") or answer.get("target") is None:
        return DatastoreMount(host, path, None, error=str(answer.get("error") or "no answer")[:200])
    if at_path and not answer.get("mountpoint"):
        return DatastoreMount(host, path, False)
    options = str(answer.get("options") or "").split(",")
    return DatastoreMount(
        host,
        path,
        True,
        fs_type=answer.get("fstype"),
        source=answer.get("source"),
        writable="ro" not in options,
        size_bytes=_int(answer.get("size")),
        free_bytes=_int(answer.get("avail")),
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def datastore_observation(client: OneClient, gathered: Gathered) -> DatastoreObservation:
    """The datastore mount on every hypervisor, the NFS exports, and oned's view (3.4+)."""
    mounts = tuple(_hypervisor_mount(host, data) for host, data in gathered.hypervisors.items())
    exports = tuple(_export_mount(host, data) for host, data in gathered.nfs_servers.items())
    series, oned = _oned_datastores(client)
    return DatastoreObservation(mounts, series, oned, exports=exports)


def _hypervisor_mount(host: str, data: HostData) -> DatastoreMount:
    """The datastore mount of one hypervisor, with what its inventory expects of it."""
    if data is None:
        return DatastoreMount(host, "", None, error=NO_ANSWER)
    mount = _mount(host, data["datastore_path"], data.get("mount"), at_path=True)
    return replace(
        mount,
        expected_fs_type=data.get("datastore_fstype") or None,
        old_source=data.get("old_source") or None,
        new_source=data.get("new_source") or None,
        new_fs_type=data.get("new_fstype") or None,
    )


def _export_mount(host: str, data: HostData) -> DatastoreMount:
    """The file system an NFS server exports the datastore from."""
    if data is None:
        return DatastoreMount(host, "", None, error=NO_ANSWER)
    return _mount(host, data["export_path"], data.get("export"), at_path=False)


def _oned_datastores(client: OneClient) -> tuple[str | None, tuple[OnedDatastore, ...] | None]:
    """oned's series and, from 3.4, its datastores (None when not read)."""
    series: str | None = None
    try:
        series = str(client.detect_version())
        if series >= "3.4":
            pool = client.datastore_pool()
            return series, tuple(OnedDatastore(d.id, d.name, d.base_path) for d in pool)
    except OneApiError:
        return series, None
    return series, None


# ------------------------------------------------------------------ pacemaker


def _attr(el: ET.Element, name: str, default: str = "false") -> bool:
    return _is_true(el.get(name, default))


def _is_true(value: str | None) -> bool:
    """A Pacemaker boolean (crm_is_true: true, on, yes, y, 1)."""
    return (value or "").strip().lower() in ("true", "on", "yes", "y", "1")


def _crm_mon(gathered: Gathered) -> tuple[ET.Element | None, Mapping[str, Any], str]:
    """The first front end's crm_mon document (run once for the cluster), its data, or an
    error: ``<crm_mon version=...>`` (``--as-xml``, Pacemaker 1.1 and the legacy XML of 2.x)
    or ``<pacemaker-result>`` (``--output-as=xml``, 2.0.3+), whose status must be 0."""
    answered = [d for d in gathered.frontends.values() if d is not None]
    if not answered:
        who = ", ".join(gathered.frontends) or "no front end in the inventory"
        return None, {}, f"no front end answered ({who})"
    data = answered[0]
    try:
        root = ET.fromstring(data["crm_mon"])  # noqa: S314 - our cluster's crm_mon
    except ET.ParseError as exc:
        if data["crm_mon_rc"] != 0:
            return None, data, (data["crm_mon_error"] or data["crm_mon"]).strip()[:300]
        return None, data, f"crm_mon answered something that is not XML: {exc}"
    error = _document_error(root)
    if not error and data["crm_mon_rc"] != 0:
        error = (data["crm_mon_error"] or f"crm_mon exited {data['crm_mon_rc']}").strip()[:300]
    return (None, data, error) if error else (root, data, "")


def _document_error(root: ET.Element) -> str:
    """Why a crm_mon document is no cluster status ('' when it is one)."""
    if root.tag == "crm_mon":
        return ""
    if root.tag != "pacemaker-result":
        return f"crm_mon answered a <{root.tag}> document, not the cluster's status"
    status = root.find("status")
    if status is None or status.get("code", "0") == "0":
        return ""
    said = [e.text.strip() for e in status.iter("error") if e.text and e.text.strip()]
    return "; ".join([status.get("message", "") or f"code {status.get('code')}", *said])[:300]


def pacemaker_observation(gathered: Gathered) -> PacemakerObservation:
    """``crm_mon --as-xml`` (or ``--output-as=xml``) and ``crm_verify --live-check`` of the
    front-end cluster. A crm_mon of Pacemaker 1.1 before 1.1.13 lists neither the cluster's
    properties (read from the CIB's crm_config instead) nor its failed actions (its resources
    still say failed)."""
    root, data, error = _crm_mon(gathered)
    if root is None:
        return PacemakerObservation((), error=error or "crm_mon gave nothing")
    nodes = tuple(
        PacemakerNode(
            n.get("name", ""),
            _attr(n, "online"),
            standby=_attr(n, "standby"),
            pending=_attr(n, "pending"),
            unclean=_attr(n, "unclean"),
        )
        for n in root.iterfind("./nodes/node")
    )
    resources = []
    for r in root.iter("resource"):
        node = r.find("node")
        resources.append(
            PacemakerResource(
                r.get("id", ""),
                r.get("resource_agent", ""),
                managed=_attr(r, "managed", "true"),
                active=_attr(r, "active"),
                failed=_attr(r, "failed"),
                node=node.get("name") if node is not None else None,
            )
        )
    failures = tuple(_failed_action(f) for f in root.iterfind("./failures/failure"))
    opts = _cluster_options(root, str(data.get("crm_config") or ""))
    return PacemakerObservation(
        nodes,
        tuple(resources),
        failures,
        stonith_enabled=_is_true(opts.get("stonith-enabled", "true")),
        maintenance_mode=_is_true(opts.get("maintenance-mode", "false")),
        verify_rc=data.get("crm_verify_rc"),
        verify_output=str(data.get("crm_verify", "")),
    )


def _failed_action(f: ET.Element) -> FailedAction:
    """A ``<failure>``: its key is ``<resource>_<task>_<interval>`` (``op_key``, or ``id`` in
    some 1.1 releases), the task also on its own from 1.1.13 on."""
    key = (f.get("op_key") or f.get("id") or "").rsplit("_", 2)
    return FailedAction(
        key[0],
        f.get("task") or (key[1] if len(key) == 3 else ""),
        f.get("node", ""),
        f.get("exitreason", ""),
        _int(f.get("exitcode")),
    )


def _cluster_options(root: ET.Element, crm_config: str) -> Mapping[str, str]:
    """The cluster's properties: crm_mon's cluster_options, else ``cibadmin -Q -o
    crm_config``'s nvpairs (empty when neither was read: Pacemaker's defaults apply)."""
    options = root.find("./summary/cluster_options")
    if options is not None:
        return options.attrib
    try:
        config = ET.fromstring(crm_config)  # noqa: S314 - our cluster's cibadmin
    except ET.ParseError:
        return {}
    return {nv.get("name", ""): nv.get("value", "") for nv in config.iter("nvpair")}


def fencing_observation(gathered: Gathered) -> FencingObservation:
    """Every agent the CIB references, checked on every front end; fenced/unclean nodes."""
    agents = tuple(
        check for host, data in gathered.frontends.items() for check in _agent_checks(host, data)
    )
    root, _, _ = _crm_mon(gathered)
    fenced, unclean = _fenced_and_unclean(root) if root is not None else ((), ())
    return FencingObservation(agents, fenced, unclean)


def _agent_checks(host: str, data: HostData) -> list[AgentCheck]:
    """What one front end found of the agents (one unreadable entry when it could not look)."""
    if data is None:
        return [AgentCheck(host, "(all agents)", "stonith", error=NO_ANSWER)]
    if data.get("agents_error") and not data.get("agents"):
        return [AgentCheck(host, "(cibadmin)", "stonith", error=str(data["agents_error"])[:300])]
    return [
        AgentCheck(
            host,
            a["path"],
            a["kind"],
            tuple(a.get("resources", ())),
            exists=a["exists"],
            executable=a["executable"],
            language=a["language"],
            interpreter=a.get("interpreter", ""),
            unchecked=a.get("unchecked", ""),
            syntax_rc=a["syntax_rc"],
            syntax_stderr=a["syntax_stderr"],
            metadata_rc=a["metadata_rc"],
            metadata_output=a["metadata_output"],
            has_metadata=a.get("agent_class") != "lsb",
        )
        for a in data.get("agents", ())
    ]


def _fenced_and_unclean(root: ET.Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The offline nodes a fence event succeeded on, and the unclean nodes, of crm_mon."""
    nodes = list(root.iterfind("./nodes/node"))
    offline = {n.get("name", "") for n in nodes if not _attr(n, "online")}
    unclean = tuple(n.get("name", "") for n in nodes if _attr(n, "unclean"))
    fenced = sorted(
        {
            e.get("target", "")
            for e in root.iterfind("./fence_history/fence_event")
            if e.get("status") == "success" and e.get("target") in offline
        }
    )
    return tuple(fenced), unclean


# ------------------------------------------------------------------ versions

_ONED_V = re.compile(r"OpenNebula\s+(\d+\.\d+(?:\.\d+)*)")
_ONEDB_V = re.compile(r"^\s*(?:Version:\s*)?(\d+\.\d+(?:\.\d+)*)\s*$", re.MULTILINE)


def version_observation(client: OneClient, gathered: Gathered | None) -> OnedVersionSeen:
    """The series found by probing oned, ``onedb version``, and the installed oned."""
    try:
        probed: str | None = str(client.detect_version())
        probe_error = ""
    except OneApiError as exc:
        probed, probe_error = None, str(exc)
    if gathered is None:
        return OnedVersionSeen(probed, None, None, probe_error)
    answered = {h: d for h, d in gathered.frontends.items() if d is not None}
    front = answered.get(_oned_node(gathered) or "") or next(iter(answered.values()), None)
    return OnedVersionSeen(probed, _onedb_version(answered), _package_version(front), probe_error)


def _package_version(front: HostData) -> str | None:
    """The release ``oned -v`` names on the front end that runs oned."""
    if front is None or front.get("oned_rc") != 0:
        return None
    match = _ONED_V.search(front.get("oned", ""))
    return match.group(1) if match else None


def _onedb_version(answered: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What ``onedb version`` said (it ran once; its answer is on every front end)."""
    for d in answered.values():
        if d.get("onedb_rc") == 0:
            match = _ONEDB_V.search(d.get("onedb", ""))
            return match.group(1) if match else None
    return None


def _oned_node(gathered: Gathered) -> str | None:
    """The node Pacemaker runs oned on (resource ``lsb:opennebula`` or id ``oned``)."""
    root, _, _ = _crm_mon(gathered)
    if root is None:
        return None
    for r in root.iter("resource"):
        if r.get("id") == "oned" or r.get("resource_agent", "").endswith(":opennebula"):
            node = r.find("node")
            if node is not None:
                return node.get("name")
    return None
