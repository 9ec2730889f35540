"""Verdicts on the Pacemaker cluster: pacemaker-healthy, fencing-ready, parse_syntax_error.

Pure: no I/O, no clock. ``pacemaker_healthy`` is cut into named checks, one for each thing
crm_mon and crm_verify report (``PACEMAKER_HEALTHY_CHECKS``); ``fencing_ready`` judges every
agent the CIB references, on every front end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import (
    INCONCLUSIVE,
    CheckOutcome,
    evidence,
    judged,
    listed,
    listing,
    result,
)

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

    Named checks: ``nodes_online``, ``nodes_clean``, ``no_failed_actions``,
    ``no_failed_resources``, ``resources_managed``, ``crm_verify_clean``, ``stonith_enabled``,
    ``maintenance_mode_as_expected``.
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
    nodes, clean = nodes_online(obs), nodes_clean(obs)
    actions, failed = no_failed_actions(obs), no_failed_resources(obs)
    managed = resources_managed(
        obs, maintenance_mode=maintenance_mode, allow_unmanaged=allow_unmanaged
    )
    verify, stonith = crm_verify_clean(obs), stonith_enabled(obs)
    maintenance = maintenance_mode_as_expected(obs, maintenance_mode=maintenance_mode)
    return judged(
        gate,
        (nodes, clean, actions, failed, managed, verify, stonith, maintenance),
        # the evidence keeps its order: crm_verify last
        evidence(nodes, clean, actions, failed, managed, stonith, maintenance, verify),
        passed=f"{len(obs.nodes)} nodes online, {len(obs.resources)} "
        "resources, no failed actions, crm_verify clean",
        fail_hint="fix what crm_mon/crm_verify report, clean failed actions with "
        "`crm_resource --cleanup -r <resource>` once fixed, and set the cluster "
        "properties (`crm_attribute -n stonith-enabled -v true`, "
        "maintenance-mode) as the step expects",
        wait_hint="wait for the pending nodes to join; run `crm_verify -L` on the front "
        "end if it could not run",
    )


def _node_state(node: PacemakerNode) -> str:
    if node.online:
        return "online"
    return "pending" if node.pending else "offline"


def nodes_online(obs: PacemakerObservation) -> CheckOutcome:
    """Every node online; a pending one (joining the cluster) is waited for."""
    offline = [n.name for n in obs.nodes if not n.online and not n.pending]
    pending = [n.name for n in obs.nodes if n.pending]
    details = {
        "nodes": {n.name: _node_state(n) for n in obs.nodes},
        "offline": offline,
        "pending": pending,
        "standby": [n.name for n in obs.nodes if n.standby],
    }
    return CheckOutcome(details, listed("nodes offline", offline), listed("nodes pending", pending))


def nodes_clean(obs: PacemakerObservation) -> CheckOutcome:
    """No node is unclean (in need of fencing)."""
    unclean = [n.name for n in obs.nodes if n.unclean]
    return CheckOutcome({"unclean": unclean}, listed("nodes unclean", unclean))


def no_failed_actions(obs: PacemakerObservation) -> CheckOutcome:
    """No failed action is recorded (``crm_resource --cleanup`` clears them once fixed)."""
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
    lines = (f"{f['resource']} {f['operation']} on {f['node']}" for f in failed)
    return CheckOutcome({"failed_actions": failed}, listed("failed actions", lines))


def no_failed_resources(obs: PacemakerObservation) -> CheckOutcome:
    """No resource is failed."""
    failed = [str(r.id) for r in obs.resources if r.failed]
    return CheckOutcome({"failed_resources": failed}, listed("failed resources", failed))


def resources_managed(
    obs: PacemakerObservation,
    *,
    maintenance_mode: bool = False,
    allow_unmanaged: Sequence[str] = (),
) -> CheckOutcome:
    """Every resource is managed, but ``allow_unmanaged``, and all of them while the cluster
    is in the maintenance mode the step expects (it unmanages everything, on purpose)."""
    unmanaged = [
        str(r.id) for r in obs.resources if not r.managed and str(r.id) not in allow_unmanaged
    ]
    if maintenance_mode and obs.maintenance_mode:
        unmanaged = []
    return CheckOutcome({"unmanaged": unmanaged}, listed("unmanaged resources", unmanaged))


def crm_verify_clean(obs: PacemakerObservation) -> CheckOutcome:
    """``crm_verify -L`` ran, exited 0 and said nothing but its usual noise."""
    lines = [
        line.strip() for line in obs.verify_output.splitlines() if not _VERIFY_NOISE.fullmatch(line)
    ]
    details = {"crm_verify": {"rc": obs.verify_rc, "lines": lines}}
    if obs.verify_rc is None:
        return CheckOutcome(details, waiting=("crm_verify -L was not run",))
    if obs.verify_rc != 0 or lines:
        first = lines[0] if lines else f"rc {obs.verify_rc}"
        return CheckOutcome(details, (f"crm_verify -L: {first}",))
    return CheckOutcome(details)


def stonith_enabled(obs: PacemakerObservation) -> CheckOutcome:
    """The cluster property stonith-enabled is true."""
    return CheckOutcome(
        {"stonith_enabled": obs.stonith_enabled},
        () if obs.stonith_enabled else ("stonith-enabled is false",),
    )


def maintenance_mode_as_expected(
    obs: PacemakerObservation, *, maintenance_mode: bool = False
) -> CheckOutcome:
    """The cluster property maintenance-mode is what the step expects (``maintenance_mode``)."""
    details = {
        "maintenance_mode": obs.maintenance_mode,
        "expected_maintenance_mode": maintenance_mode,
    }
    if obs.maintenance_mode == maintenance_mode:
        return CheckOutcome(details)
    return CheckOutcome(
        details,
        (
            f"maintenance-mode is {str(obs.maintenance_mode).lower()}, expected "
            f"{str(maintenance_mode).lower()}",
        ),
    )


PACEMAKER_HEALTHY_CHECKS = (
    nodes_online,
    nodes_clean,
    no_failed_actions,
    no_failed_resources,
    resources_managed,
    crm_verify_clean,
    stonith_enabled,
    maintenance_mode_as_expected,
)
"""The named checks of pacemaker-healthy (each with its case files)."""


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
    # the shebang's interpreter: "bash", "sh" (sh, dash), "python", "perl" or "other" (not
    # checked); ``interpreter`` as the shebang names it
    language: str = "bash"
    interpreter: str = ""
    unchecked: str = ""  # why the syntax could not be checked, e.g. its interpreter is missing
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
_DASH_ERR = re.compile(r"^(?P<file>.+?): (?P<line>\d+): (?P<msg>.+)$", re.MULTILINE)
_PERL_ERR = re.compile(
    r"^(?P<msg>.+?) at (?P<file>.+?) line (?P<line>\d+)(?P<near>, near .*)?$", re.M
)
_PY_FILE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_PY_OLD = re.compile(r"^(?:Sorry: )?(?P<msg>\w+Error: .+?) \((?P<file>[^,]+), line (?P<line>\d+)\)")


def parse_syntax_error(stderr: str, language: str, path: str) -> dict[str, object]:
    """``{"file", "line", "message"}`` from the stderr of the check of ``language``:
    ``bash -n``, ``sh -n`` (dash's or bash's words), ``perl -c`` or Python's compile."""
    text = stderr.strip()
    shell = {"bash": (_BASH_ERR,), "sh": (_BASH_ERR, _DASH_ERR), "perl": (_PERL_ERR,)}
    for pattern in shell.get(language, ()):
        if match := pattern.search(text):
            return {"file": match["file"], "line": int(match["line"]), "message": match["msg"]}
    if language == "python":
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


def _agent_problem(a: AgentCheck) -> dict[str, object] | None:
    """What is wrong with a reachable agent, the first thing found (None: nothing)."""
    base = {"host": a.host, "file": a.path, "kind": a.kind, "resources": list(a.resources)}
    if not a.exists:
        return {**base, "problem": "missing"}
    if not a.executable:
        return {**base, "problem": "not executable"}
    if a.unchecked:
        return {**base, "problem": "cannot check", "message": a.unchecked}
    if a.syntax_rc not in (None, 0):
        err = parse_syntax_error(a.syntax_stderr, a.language, a.path)
        return {
            **base,
            "problem": "syntax error",
            "line": err["line"],
            "message": err["message"],
            "file": err["file"],
        }
    if a.metadata_rc is not None and (
        a.metadata_rc != 0 or "<resource-agent" not in a.metadata_output
    ):
        return {**base, "problem": "metadata action did not answer", "rc": a.metadata_rc}
    return None


def _problem_line(p: dict[str, object]) -> str:
    where = f"{p['file']}:{p['line']}" if p.get("line") else str(p["file"])
    msg = f" ({p['message']})" if p.get("message") else ""
    return f"{where} on {p['host']}: {p['problem']}{msg}"


def _agents_checked(
    obs: FencingObservation,
) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    """The agents' problems, and the agents that could not be checked."""
    problems: list[dict[str, object]] = []
    unread: list[dict[str, str]] = []
    for a in obs.agents:
        if a.error:
            unread.append({"host": a.host, "file": a.path, "error": a.error})
            continue
        problem = _agent_problem(a)
        if problem is not None:
            problems.append(problem)
        elif a.metadata_rc is None and a.has_metadata:
            unread.append({"host": a.host, "file": a.path, "error": "metadata not tried"})
    return problems, unread


def fencing_ready(obs: FencingObservation) -> GateResult:
    """``fencing-ready``: every agent the CIB references exists, is executable, passes the
    syntax check of the interpreter its shebang names (which the host has) and answers
    ``metadata``; at least one fence agent; no node fenced/unclean.
    """
    problems, unread = _agents_checked(obs)
    details = {
        "agents": sorted({a.path for a in obs.agents}),
        "hosts": sorted({a.host for a in obs.agents}),
        "problems": problems,
        "unreadable": unread,
        "fenced_nodes": list(obs.fenced_nodes),
        "unclean_nodes": list(obs.unclean_nodes),
    }
    lines = [
        *(_problem_line(p) for p in problems),
        *listed("nodes fenced", obs.fenced_nodes),
        *listed("nodes unclean", obs.unclean_nodes),
    ]
    if not any(a.kind == "stonith" for a in obs.agents):
        lines.append("the CIB references no fence (stonith) agent")
    who = listing(f"{u['file']} on {u['host']} ({u['error']})" for u in unread)
    return judged(
        "fencing-ready",
        (
            CheckOutcome(
                problems=tuple(lines), waiting=(f"could not check {who}",) if unread else ()
            ),
        ),
        details,
        passed=f"{len(details['agents'])} agents ready on {len(details['hosts'])} hosts",
        fail_hint="fix the named agent file at the named line (or reinstall its package: "
        "fence-agents / resource-agents), make it executable, install the interpreter "
        "its first line names, check `<agent> metadata`; bring fenced nodes back and "
        "`crm_resource --cleanup` before the window",
        wait_hint="check ssh to the named hosts and run the agent's `metadata` action by hand",
    )
