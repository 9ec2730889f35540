"""Verdicts of the gates that read the machines: datastores, Pacemaker, fencing, libvirtd, Puppet.

Each function takes an observation (a frozen dataclass of plain data: what a gate read on
the hosts, already parsed) plus the gate's parameters, and returns a ``GateResult``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.executor import GateResult
from upgrader.gates.verdicts_base import FAIL, INCONCLUSIVE, PASS, listing, parse_size, result

# ------------------------------------------------------------------ observations


@dataclass(frozen=True)
class DatastoreMount:
    """The datastore path on one host; ``mounted`` None when the host could not be read."""

    host: str
    path: str
    mounted: bool | None
    fs_type: str | None = None
    writable: bool | None = None
    size_bytes: int | None = None
    free_bytes: int | None = None
    error: str = ""


@dataclass(frozen=True)
class OnedDatastore:
    """One datastore as oned (3.4+) lists it."""

    id: int
    name: str
    base_path: str = ""


@dataclass(frozen=True)
class DatastoreObservation:
    """Mounts per host and, from 3.4, oned's datastore view (None when not read)."""

    mounts: tuple[DatastoreMount, ...]
    series: str | None = None  # "3.2", "3.4", "3.6"
    oned_datastores: tuple[OnedDatastore, ...] | None = None


@dataclass(frozen=True)
class PacemakerNode:
    """A node of ``crm_mon --as-xml``."""

    name: str
    online: bool
    standby: bool = False
    pending: bool = False
    unclean: bool = False


@dataclass(frozen=True)
class PacemakerResource:
    """A primitive of ``crm_mon --as-xml`` (``node`` None when stopped)."""

    id: int | str
    agent: str
    managed: bool = True
    active: bool = True
    failed: bool = False
    node: str | None = None


@dataclass(frozen=True)
class FailedAction:
    """An entry of ``<failures>``."""

    resource: str
    operation: str
    node: str
    exit_reason: str = ""
    rc: int | None = None


@dataclass(frozen=True)
class PacemakerObservation:
    """``crm_mon --as-xml`` and ``crm_verify -L`` parsed; ``error`` when crm_mon failed."""

    nodes: tuple[PacemakerNode, ...]
    resources: tuple[PacemakerResource, ...] = ()
    failed_actions: tuple[FailedAction, ...] = ()
    stonith_enabled: bool = True  # Pacemaker's default when the property is unset
    maintenance_mode: bool = False
    verify_rc: int | None = None  # None: crm_verify was not run
    verify_output: str = ""
    error: str = ""


@dataclass(frozen=True)
class AgentCheck:
    """One fence (``kind`` "stonith") or resource agent the CIB references, checked on a host."""

    host: str
    path: str
    kind: str  # "stonith" or "resource"
    resources: tuple[str, ...] = ()  # CIB resource ids that use it
    exists: bool = True
    executable: bool = True
    language: str = "bash"  # "bash", "python" or "other" (no syntax check)
    syntax_rc: int | None = None  # None: not checked
    syntax_stderr: str = ""
    metadata_rc: int | None = None  # None: not tried
    metadata_output: str = ""
    error: str = ""  # the host could not be reached


@dataclass(frozen=True)
class FencingObservation:
    """Every agent check plus the nodes Pacemaker reports fenced or unclean."""

    agents: tuple[AgentCheck, ...]
    fenced_nodes: tuple[str, ...] = ()
    unclean_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LibvirtdStatus:
    """libvirtd on one hypervisor; ``running`` None when the host could not be read."""

    host: str
    running: bool | None
    init_status: str = ""  # e.g. "libvirtd is not running" or `service libvirtd status`
    error: str = ""


@dataclass(frozen=True)
class LibvirtdObservation:
    hosts: tuple[LibvirtdStatus, ...]


@dataclass(frozen=True)
class PuppetAgent:
    """The Puppet agent on one host; ``disabled`` None when the host could not be read."""

    host: str
    disabled: bool | None
    reason: str = ""  # disabled_message of agent_disabled.lock
    run_in_progress: bool = False  # agent_catalog_run.lock present
    error: str = ""


@dataclass(frozen=True)
class PuppetObservation:
    agents: tuple[PuppetAgent, ...]


# ------------------------------------------------------------------ datastores


def _threshold(min_free: int | str) -> tuple[str, float]:
    text = str(min_free).strip()
    if text.endswith("%"):
        return "percent", float(text[:-1])
    return "bytes", float(parse_size(min_free))


def datastores_healthy(
    obs: DatastoreObservation,
    *,
    fs_type: str = "",
    min_free: int | str = 0,
    datastores: Sequence[int | str] = (),
) -> GateResult:
    """``datastores-healthy``: on every host the datastore path is mounted, of ``fs_type``,
    writable, with more than ``min_free`` free ("10%", bytes, or "20G"); from 3.4, oned
    lists its datastores (all of ``datastores``, by id or name, when given).
    """
    gate = "datastores-healthy"
    kind, limit = _threshold(min_free)
    problems: list[dict[str, object]] = []
    unread: list[dict[str, str]] = []
    host_lines: list[str] = []
    for m in obs.mounts:
        if m.mounted is None:
            unread.append({"host": m.host, "path": m.path, "error": m.error or "no answer"})
            continue
        what: list[str] = []
        if not m.mounted:
            what.append(f"{m.path} not mounted")
        else:
            if fs_type and m.fs_type != fs_type:
                what.append(f"{m.path} is {m.fs_type or 'unknown'}, expected {fs_type}")
            if m.writable is False:
                what.append(f"{m.path} not writable")
            if m.free_bytes is not None:
                if kind == "percent" and m.size_bytes:
                    pct = 100.0 * m.free_bytes / m.size_bytes
                    if pct <= limit:
                        what.append(
                            f"{m.path} {pct:.1f}% free ({m.free_bytes} of "
                            f"{m.size_bytes} bytes), needs more than {limit:g}%"
                        )
                elif kind == "bytes" and m.free_bytes <= limit:
                    what.append(f"{m.path} {m.free_bytes} bytes free, needs more than {int(limit)}")
        if what:
            problems.append({"host": m.host, "path": m.path, "problems": what})
            host_lines.append(f"{m.host}: {', '.join(what)}")
    oned_missing: list[str] = []
    needs_view = obs.series is not None and obs.series >= "3.4"
    if needs_view:
        seen = obs.oned_datastores or ()
        known = {str(d.id) for d in seen} | {d.name for d in seen}
        if obs.oned_datastores is None or not seen:
            oned_missing.append("oned lists no datastores")
        oned_missing += [f"oned lists no datastore {d}" for d in datastores if str(d) not in known]
    details = {
        "mounts": [
            {
                "host": m.host,
                "path": m.path,
                "mounted": m.mounted,
                "fs_type": m.fs_type,
                "writable": m.writable,
                "size_bytes": m.size_bytes,
                "free_bytes": m.free_bytes,
            }
            for m in obs.mounts
        ],
        "problems": problems,
        "unreadable": unread,
        "oned_problems": oned_missing,
        "expected_fs_type": fs_type or None,
        "min_free": min_free,
        "oned_datastores": None
        if obs.oned_datastores is None
        else [{"id": d.id, "name": d.name} for d in obs.oned_datastores],
    }
    if not obs.mounts:
        return result(
            gate,
            INCONCLUSIVE,
            "no host reported its datastore mount",
            "check the gate's host list (inventory group of hypervisors)",
            **details,
        )
    if problems or oned_missing:
        summary = "; ".join([*host_lines, *oned_missing])
        return result(
            gate,
            FAIL,
            summary,
            "mount the datastore (fstab / Pacemaker Filesystem resource) on the "
            "named hosts, check its export and free space; for oned's view check "
            "`onedatastore list` and oned.conf",
            **details,
        )
    if unread:
        who = listing(f"{u['host']} ({u['error']})" for u in unread)
        return result(
            gate,
            INCONCLUSIVE,
            f"could not read the datastore mount on {who}",
            "check ssh to the named hosts and run `df -T <path>` there",
            **details,
        )
    return result(gate, PASS, f"datastore healthy on {len(obs.mounts)} hosts", **details)


# ------------------------------------------------------------------ pacemaker

_VERIFY_NOISE = re.compile(r"^\s*(?:-V may provide more details|Configuration invalid.*)?\s*$")


def pacemaker_healthy(
    obs: PacemakerObservation,
    *,
    maintenance_mode: bool = False,
    allow_unmanaged: Sequence[str] = (),
) -> GateResult:
    """``pacemaker-healthy``: nodes online, no failed actions, no unmanaged resources
    (besides ``allow_unmanaged``, or all in maintenance mode), ``crm_verify -L`` clean,
    stonith-enabled true, maintenance-mode equal to ``maintenance_mode``.
    """
    gate = "pacemaker-healthy"
    if obs.error:
        return result(
            gate,
            INCONCLUSIVE,
            f"could not read crm_mon: {obs.error}",
            "check that Pacemaker runs on the front end (`crm_mon -1`) and that "
            "upgrader's user may read the CIB",
            error=obs.error,
        )
    offline = [n.name for n in obs.nodes if not n.online and not n.pending]
    pending = [n.name for n in obs.nodes if n.pending]
    standby = [n.name for n in obs.nodes if n.standby]
    unclean = [n.name for n in obs.nodes if n.unclean]
    failed = [
        {
            "resource": f.resource,
            "operation": f.operation,
            "node": f.node,
            "rc": f.rc,
            "exit_reason": f.exit_reason,
        }
        for f in obs.failed_actions
    ]
    unmanaged = [
        str(r.id) for r in obs.resources if not r.managed and str(r.id) not in allow_unmanaged
    ]
    if maintenance_mode and obs.maintenance_mode:
        unmanaged = []  # maintenance mode unmanages everything, on purpose
    failed_resources = [str(r.id) for r in obs.resources if r.failed]
    verify_lines = [
        line.strip() for line in obs.verify_output.splitlines() if not _VERIFY_NOISE.fullmatch(line)
    ]
    details = {
        "nodes": {
            n.name: ("online" if n.online else "pending" if n.pending else "offline")
            for n in obs.nodes
        },
        "offline": offline,
        "pending": pending,
        "standby": standby,
        "unclean": unclean,
        "failed_actions": failed,
        "failed_resources": failed_resources,
        "unmanaged": unmanaged,
        "stonith_enabled": obs.stonith_enabled,
        "maintenance_mode": obs.maintenance_mode,
        "expected_maintenance_mode": maintenance_mode,
        "crm_verify": {"rc": obs.verify_rc, "lines": verify_lines},
    }
    problems: list[str] = []
    if offline:
        problems.append(f"nodes offline: {listing(offline)}")
    if unclean:
        problems.append(f"nodes unclean: {listing(unclean)}")
    if failed:
        problems.append(
            "failed actions: "
            + listing(f"{f['resource']} {f['operation']} on {f['node']}" for f in failed)
        )
    if failed_resources:
        problems.append(f"failed resources: {listing(failed_resources)}")
    if unmanaged:
        problems.append(f"unmanaged resources: {listing(unmanaged)}")
    if obs.verify_rc is not None and (obs.verify_rc != 0 or verify_lines):
        first = verify_lines[0] if verify_lines else f"rc {obs.verify_rc}"
        problems.append(f"crm_verify -L: {first}")
    if not obs.stonith_enabled:
        problems.append("stonith-enabled is false")
    if obs.maintenance_mode != maintenance_mode:
        problems.append(
            f"maintenance-mode is {str(obs.maintenance_mode).lower()}, expected "
            f"{str(maintenance_mode).lower()}"
        )
    if problems:
        return result(
            gate,
            FAIL,
            "; ".join(problems),
            "fix what crm_mon/crm_verify report, clean failed actions with "
            "`crm_resource --cleanup -r <resource>` once fixed, and set the cluster "
            "properties (`crm_attribute -n stonith-enabled -v true`, "
            "maintenance-mode) as the step expects",
            **details,
        )
    if obs.verify_rc is None or pending:
        why = [f"nodes pending: {listing(pending)}"] if pending else []
        why += ["crm_verify -L was not run"] if obs.verify_rc is None else []
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(why),
            "wait for the pending nodes to join; run `crm_verify -L` on the front "
            "end if it could not run",
            **details,
        )
    return result(
        gate,
        PASS,
        f"{len(obs.nodes)} nodes online, {len(obs.resources)} "
        "resources, no failed actions, crm_verify clean",
        **details,
    )


# ------------------------------------------------------------------ fencing

_BASH_ERR = re.compile(r"^(?P<file>.+?): line (?P<line>\d+): (?P<msg>.+)$", re.MULTILINE)
_PY_FILE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_PY_OLD = re.compile(r"^(?:Sorry: )?(?P<msg>\w+Error: .+?) \((?P<file>[^,]+), line (?P<line>\d+)\)")


def parse_syntax_error(stderr: str, language: str, path: str) -> dict[str, object]:
    """``{"file", "line", "message"}`` from ``bash -n`` or ``python3 -m py_compile`` stderr."""
    text = stderr.strip()
    if language == "bash":
        match = _BASH_ERR.search(text)
        if match:
            return {
                "file": match["file"],
                "line": int(match["line"]),
                "message": match["msg"].strip(),
            }
    elif language == "python":
        match = _PY_FILE.search(text)
        if match:
            lines = [line for line in text.splitlines() if line.strip()]
            return {
                "file": match["file"],
                "line": int(match["line"]),
                "message": lines[-1].strip() if lines else "",
            }
        match = _PY_OLD.search(text)
        if match:
            return {"file": path, "line": int(match["line"]), "message": match["msg"]}
    first = text.splitlines()[0] if text else "syntax check failed"
    return {"file": path, "line": None, "message": first}


def fencing_ready(obs: FencingObservation) -> GateResult:
    """``fencing-ready``: every agent the CIB references exists, is executable, passes its
    syntax check and answers ``metadata``; at least one fence agent; no node fenced/unclean.
    """
    gate = "fencing-ready"
    problems: list[dict[str, object]] = []
    unread: list[dict[str, str]] = []
    for a in obs.agents:
        base = {"host": a.host, "file": a.path, "kind": a.kind, "resources": list(a.resources)}
        if a.error:
            unread.append({"host": a.host, "file": a.path, "error": a.error})
        elif not a.exists:
            problems.append({**base, "problem": "missing"})
        elif not a.executable:
            problems.append({**base, "problem": "not executable"})
        elif a.syntax_rc not in (None, 0):
            err = parse_syntax_error(a.syntax_stderr, a.language, a.path)
            problems.append(
                {
                    **base,
                    "problem": "syntax error",
                    "line": err["line"],
                    "message": err["message"],
                    "file": err["file"],
                }
            )
        elif a.metadata_rc is not None and (
            a.metadata_rc != 0 or "<resource-agent" not in a.metadata_output
        ):
            problems.append(
                {**base, "problem": "metadata action did not answer", "rc": a.metadata_rc}
            )
        elif a.metadata_rc is None:
            unread.append({"host": a.host, "file": a.path, "error": "metadata not tried"})
    stonith = [a for a in obs.agents if a.kind == "stonith"]
    details = {
        "agents": sorted({a.path for a in obs.agents}),
        "hosts": sorted({a.host for a in obs.agents}),
        "problems": problems,
        "unreadable": unread,
        "fenced_nodes": list(obs.fenced_nodes),
        "unclean_nodes": list(obs.unclean_nodes),
    }
    parts = []
    for p in problems:
        where = f"{p['file']}:{p['line']}" if p.get("line") else str(p["file"])
        msg = f" ({p['message']})" if p.get("message") else ""
        parts.append(f"{where} on {p['host']}: {p['problem']}{msg}")
    if obs.fenced_nodes:
        parts.append(f"nodes fenced: {listing(obs.fenced_nodes)}")
    if obs.unclean_nodes:
        parts.append(f"nodes unclean: {listing(obs.unclean_nodes)}")
    if not stonith:
        parts.append("the CIB references no fence (stonith) agent")
    if parts:
        return result(
            gate,
            FAIL,
            "; ".join(parts),
            "fix the named agent file at the named line (or reinstall its package: "
            "fence-agents / resource-agents), make it executable, check "
            "`<agent> metadata`; bring fenced nodes back and `crm_resource "
            "--cleanup` before the window",
            **details,
        )
    if unread:
        who = listing(f"{u['file']} on {u['host']} ({u['error']})" for u in unread)
        return result(
            gate,
            INCONCLUSIVE,
            f"could not check {who}",
            "check ssh to the named hosts and run the agent's `metadata` action by hand",
            **details,
        )
    return result(
        gate,
        PASS,
        f"{len(details['agents'])} agents ready on {len(details['hosts'])} hosts",
        **details,
    )


# ------------------------------------------------------------------ libvirtd


def libvirtd_alive(obs: LibvirtdObservation, *, hosts: Sequence[str] = ()) -> GateResult:
    """``libvirtd-alive``: libvirtd runs on every hypervisor (and on every one of ``hosts``)."""
    gate = "libvirtd-alive"
    down = [{"host": h.host, "status": h.init_status} for h in obs.hosts if h.running is False]
    unread = [
        {"host": h.host, "error": h.error or "no answer"} for h in obs.hosts if h.running is None
    ]
    seen = {h.host for h in obs.hosts}
    missing = [name for name in hosts if name not in seen]
    details = {
        "hosts": {h.host: h.running for h in obs.hosts},
        "down": down,
        "unreadable": unread,
        "missing": missing,
    }
    if down:
        who = listing(f"{d['host']}" + (f" ({d['status']})" if d["status"] else "") for d in down)
        return result(
            gate,
            FAIL,
            f"libvirtd not running on {who}",
            "start libvirtd on the named hosts (`service libvirtd start`) and read "
            "its log; VMs there keep running but oned cannot manage them",
            **details,
        )
    if unread or missing or not obs.hosts:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        parts += [f"no answer from {name}" for name in missing]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no hypervisor was checked",
            "check ssh to the named hosts",
            **details,
        )
    return result(gate, PASS, f"libvirtd running on {len(obs.hosts)} hosts", **details)


# ------------------------------------------------------------------ puppet


def _puppet_details(obs: PuppetObservation) -> dict[str, object]:
    return {
        "agents": {
            a.host: (
                "unknown"
                if a.disabled is None
                else f"disabled: {a.reason}"
                if a.disabled
                else "enabled"
            )
            for a in obs.agents
        }
    }


def puppet_held(obs: PuppetObservation, *, run_id: str) -> GateResult:
    """``puppet-held``: the agent is disabled on every host with a reason naming ``run_id``."""
    gate = "puppet-held"
    enabled = [a.host for a in obs.agents if a.disabled is False]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and run_id not in a.reason
    ]
    unread = [
        {"host": a.host, "error": a.error or "no answer"} for a in obs.agents if a.disabled is None
    ]
    running = [a.host for a in obs.agents if a.disabled and a.run_in_progress]
    details = {
        **_puppet_details(obs),
        "enabled": enabled,
        "held_for_other": other,
        "unreadable": unread,
        "run_in_progress": running,
        "run_id": run_id,
    }
    if enabled or other:
        parts = [f"agent enabled on {listing(enabled)}"] if enabled else []
        parts += [f"{o['host']} held for another reason: {o['reason'] or '(none)'}" for o in other]
        return result(
            gate,
            FAIL,
            "; ".join(parts),
            f"run `puppet agent --disable 'upgrader run {run_id}'` on the enabled "
            "hosts; for hosts held by someone else, ask who and why before the "
            "window (their hold would be lifted with ours)",
            **details,
        )
    if unread or running or not obs.agents:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        parts += [f"a Puppet run is still in progress on {h}" for h in running]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no host was checked",
            "wait for the Puppet run to finish (agent_catalog_run.lock goes away); "
            "check ssh to unreadable hosts",
            **details,
        )
    return result(gate, PASS, f"Puppet held for run {run_id} on {len(obs.agents)} hosts", **details)


def puppet_released(obs: PuppetObservation, *, run_id: str = "") -> GateResult:
    """``puppet-released``: the agent is enabled on every host."""
    gate = "puppet-released"
    ours = [a.host for a in obs.agents if a.disabled and run_id and run_id in a.reason]
    other = [
        {"host": a.host, "reason": a.reason}
        for a in obs.agents
        if a.disabled and a.host not in ours
    ]
    unread = [
        {"host": a.host, "error": a.error or "no answer"} for a in obs.agents if a.disabled is None
    ]
    details = {
        **_puppet_details(obs),
        "still_held": ours,
        "held_for_other": other,
        "unreadable": unread,
    }
    if ours or other:
        parts = [f"still held by this run on {listing(ours)}"] if ours else []
        parts += [f"{o['host']} disabled: {o['reason'] or '(no reason)'}" for o in other]
        return result(
            gate,
            FAIL,
            "; ".join(parts),
            "run `puppet agent --enable` on the named hosts (for holds that are not "
            "upgrader's, ask their owner first)",
            **details,
        )
    if unread or not obs.agents:
        parts = [f"could not read {u['host']}: {u['error']}" for u in unread]
        return result(
            gate,
            INCONCLUSIVE,
            "; ".join(parts) or "no host was checked",
            "check ssh to the named hosts",
            **details,
        )
    return result(gate, PASS, f"Puppet enabled on {len(obs.agents)} hosts", **details)
