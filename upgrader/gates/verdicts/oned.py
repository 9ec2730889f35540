"""Verdicts on oned and the hosts it lists: oned-reachable, oned-version, hosts-monitored.

Pure: no I/O, no clock. Monitoring states that settle by themselves are waited for
(inconclusive); the version gate holds the probed series against the installed package and
``onedb version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from upgrader.gates.model import GateResult
from upgrader.gates.verdicts.base import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CheckOutcome,
    evidence,
    judged,
    listing,
    result,
)
from upgrader.opennebula.enums import HostState
from upgrader.opennebula.models import Host
from upgrader.plan.versions import RELEASES

# ------------------------------------------------------------------ oned


@dataclass(frozen=True)
class OnedAnswer:
    """Whether oned answered a read-only call at ``endpoint``, or the error text."""

    endpoint: str
    answered: bool
    error: str = ""
    host_count: int | None = None


@dataclass(frozen=True)
class OnedVersionSeen:
    """The series found by probing, ``onedb version`` on the front end, the oned package."""

    probed_series: str | None  # "3.4"; None when the probe failed
    onedb_version: str | None  # "3.4.1"; None when `onedb version` could not be read
    package_version: str | None = None  # installed opennebula package, e.g. "3.4.1"
    probe_error: str = ""


def oned_reachable(obs: OnedAnswer) -> GateResult:
    """``oned-reachable``: oned answered a read-only call."""
    gate = "oned-reachable"
    if obs.answered:
        count = "" if obs.host_count is None else f" with {obs.host_count} hosts"
        return result(
            gate,
            PASS,
            f"oned at {obs.endpoint} answered{count}",
            endpoint=obs.endpoint,
            host_count=obs.host_count,
        )
    error = obs.error or "no answer"
    lowered = error.lower()
    if "authenticat" in lowered or "auth" in lowered.split():
        hint = (
            "oned answers but refuses the credentials: check the user and password "
            "(one_auth) upgrader.yml points at"
        )
    else:
        hint = (
            "start oned on the front end (Pacemaker resource oned, or /etc/init.d/one "
            "start) and check the endpoint in upgrader.yml; oned.log says why it stopped"
        )
    return result(
        gate,
        FAIL,
        f"oned at {obs.endpoint} did not answer: {error}",
        hint,
        endpoint=obs.endpoint,
        error=error,
    )


def _series(version: str) -> str:
    return ".".join(version.strip().lstrip("vV").split(".")[:2])


def oned_version(
    obs: OnedVersionSeen,
    *,
    expect: str = "",
    db_version: str | None = None,
    require_onedb: bool = True,
) -> GateResult:
    """``oned-version``: oned is the expected series and its database is the version it needs.

    ``expect`` is a series ("3.4") or a release ("3.4.1"); ``db_version`` overrides the
    database version the installed oned needs (default: the package release, or the
    release upgrader installs for the series).
    """
    expected_series = _series(expect) if expect else None
    details: dict[str, object] = {
        "probed_series": obs.probed_series,
        "onedb_version": obs.onedb_version,
        "package_version": obs.package_version,
        "expected_series": expected_series,
    }
    if obs.probed_series is None:
        return result(
            VERSION_GATE,
            INCONCLUSIVE,
            f"could not probe oned's version: {obs.probe_error or 'no answer'}",
            "check oned-reachable first: the version is probed through oned",
            **details,
            error=obs.probe_error,
        )
    wrong = _wrong_oned(obs, obs.probed_series, expected_series, details)
    if wrong is not None:
        return wrong
    needed = db_version or obs.package_version or RELEASES.get(obs.probed_series)
    details["needed_db_version"] = needed
    return _database(obs, obs.probed_series, needed, require_onedb, details)


VERSION_GATE = "oned-version"


def _wrong_oned(
    obs: OnedVersionSeen, series: str, expected: str | None, details: dict[str, object]
) -> GateResult | None:
    """A fail when the running oned is not the expected series or not the installed one."""
    if expected and series != expected:
        return result(
            VERSION_GATE,
            FAIL,
            f"oned is {series}, expected {expected}",
            "the installed opennebula package is not the one this step expects: "
            "see the previous step's output and `dpkg -l opennebula` on the front end",
            **details,
        )
    if obs.package_version and _series(obs.package_version) != series:
        return result(
            VERSION_GATE,
            FAIL,
            f"package {obs.package_version} installed but oned answers as {series}",
            "the running oned is not the installed one: restart oned "
            "(Pacemaker resource oned) after the package upgrade",
            **details,
        )
    return None


def _database(
    obs: OnedVersionSeen,
    series: str,
    needed: str | None,
    require_onedb: bool,
    details: dict[str, object],
) -> GateResult:
    """The verdict on the database version, once oned is the right one."""
    if obs.onedb_version is None:
        if not require_onedb:
            return result(
                VERSION_GATE,
                PASS,
                f"oned is {series} (database version not confirmed: `onedb version` was not read)",
                **details,
            )
        return result(
            VERSION_GATE,
            INCONCLUSIVE,
            f"oned is {series} but `onedb version` could not be read",
            "run `onedb version` as oneadmin on the front end and check the "
            "database credentials in oned.conf (DB section)",
            **details,
        )
    if needed and obs.onedb_version.strip() != needed:
        who = f"oned {obs.package_version}" if obs.package_version else f"oned {needed}"
        return result(
            VERSION_GATE,
            FAIL,
            f"database is at {obs.onedb_version} but {who} needs {needed}",
            f"the database upgrade stopped short of {needed} (a package once shipped "
            "an onedb that stopped one migration early, and oned then refused the "
            "database): stop oned, back up the database and run `onedb upgrade "
            f"--backup <file>` with the onedb of {needed}, then start oned",
            **details,
        )
    return result(
        VERSION_GATE, PASS, f"oned is {series}, database at {obs.onedb_version}", **details
    )


# ------------------------------------------------------------------ hosts


@dataclass(frozen=True)
class HostSeen:
    """One host as oned lists it."""

    id: int
    name: str
    state: HostState
    error: str | None = None  # the last ERROR/MESSAGE of the host template

    @classmethod
    def from_host(cls, host: Host) -> HostSeen:
        return cls(host.id, host.name, host.state, host.error_message)


@dataclass(frozen=True)
class HostPool:
    """Every host oned lists."""

    hosts: tuple[HostSeen, ...]

    @classmethod
    def from_hosts(cls, hosts: Iterable[Host]) -> HostPool:
        return cls(tuple(HostSeen.from_host(h) for h in hosts))


# INIT: just added, not polled yet; MONITORING (3.6: MONITORING_MONITORED) and 3.6's
# MONITORING_ERROR: a poll is under way. All settle by themselves.
_TRANSIENT_HOST_STATES = frozenset(
    {HostState.INIT, HostState.MONITORING, HostState.MONITORING_ERROR}
)


def hosts_monitored(
    obs: HostPool,
    *,
    allow_disabled: Sequence[str] = (),
    expect_hosts: Sequence[str] = (),
) -> GateResult:
    """``hosts-monitored``: every host MONITORED (transient monitoring states waited out).

    ERROR fails naming the host and its message; DISABLED fails unless the step disabled
    the host itself (``allow_disabled``); ``expect_hosts`` must all be listed.
    """
    gate = "hosts-monitored"
    errors, disabled = _hosts_in_error(obs), _hosts_disabled(obs, allow_disabled)
    missing, waiting = _hosts_missing(obs, expect_hosts), _hosts_waiting(obs)
    details = {
        "hosts": {h.name: HostState(h.state).name for h in obs.hosts},
        **evidence(errors, disabled, waiting, missing),
    }
    if not obs.hosts:
        return result(
            gate,
            FAIL,
            "oned lists no hosts",
            "add the hypervisors back with `onehost create` or check that upgrader "
            "talks to the right oned",
            **details,
        )
    return judged(
        gate,
        (errors, disabled, missing, waiting),
        details,
        passed=f"all {len(obs.hosts)} hosts MONITORED",
        fail_hint=_host_hints(errors, disabled, missing),
        wait_hint="monitoring is under way; if it does not settle, check that oned can "
        "ssh to the host and run its probes (`onehost show`, oned.log)",
    )


def _hosts_in_error(obs: HostPool) -> CheckOutcome:
    errors = [
        {"id": h.id, "name": h.name, "error": h.error or "(no message)"}
        for h in obs.hosts
        if h.state is HostState.ERROR
    ]
    return CheckOutcome(
        {"errors": errors}, tuple(f"{e['name']} in ERROR: {e['error']}" for e in errors)
    )


def _hosts_disabled(obs: HostPool, allow_disabled: Sequence[str]) -> CheckOutcome:
    disabled = [
        h.name for h in obs.hosts if h.state is HostState.DISABLED and h.name not in allow_disabled
    ]
    return CheckOutcome({"disabled": disabled}, tuple(f"{name} DISABLED" for name in disabled))


def _hosts_missing(obs: HostPool, expect_hosts: Sequence[str]) -> CheckOutcome:
    listed = {h.name for h in obs.hosts}
    missing = [name for name in expect_hosts if name not in listed]
    return CheckOutcome({"missing": missing}, tuple(f"{name} not listed" for name in missing))


def _hosts_waiting(obs: HostPool) -> CheckOutcome:
    """Hosts in a monitoring state that settles by itself."""
    waiting = [
        {"id": h.id, "name": h.name, "state": HostState(h.state).name}
        for h in obs.hosts
        if h.state in _TRANSIENT_HOST_STATES
    ]
    who = listing(f"{w['name']} ({w['state']})" for w in waiting)
    return CheckOutcome(
        {"waiting": waiting}, waiting=(f"still waiting for {who}",) if waiting else ()
    )


def _host_hints(errors: CheckOutcome, disabled: CheckOutcome, missing: CheckOutcome) -> str:
    hints = []
    if errors.problems:
        hints.append(
            "read the host's error (`onehost show`), fix ssh/libvirtd on it, "
            "then `onehost enable` it or wait for the next monitoring cycle"
        )
    if disabled.problems:
        hints.append(
            f"re-enable {listing(disabled.details['disabled'])} with `onehost enable` if nobody "
            "disabled it on purpose"
        )
    if missing.problems:
        hints.append("a host upgrader knew is gone from oned: `onehost create` it again")
    return "; ".join(hints)
