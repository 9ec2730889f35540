"""Verdicts on the Pacemaker cluster: pacemaker-healthy, fencing-ready, parse_syntax_error.

Each function takes an observation (a frozen dataclass of plain data, defined here next to
the verdict that consumes it) plus the gate's parameters, and returns a ``GateResult``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import FAIL, INCONCLUSIVE, PASS, listing, result

# ------------------------------------------------------------------ pacemaker


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
    has_metadata: bool = True  # False for LSB init scripts, which have no metadata action


@dataclass(frozen=True)
class FencingObservation:
    """Every agent check plus the nodes Pacemaker reports fenced or unclean."""

    agents: tuple[AgentCheck, ...]
    fenced_nodes: tuple[str, ...] = ()
    unclean_nodes: tuple[str, ...] = ()


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
        elif a.metadata_rc is None and a.has_metadata:
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
