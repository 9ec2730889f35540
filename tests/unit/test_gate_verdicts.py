"""The pure verdict functions of the gate catalogue, from recorded observations.

Case files (tests/cases/gates/*.yaml) hold ``gate``, ``observation`` (plain data, turned
into the gate's observation dataclass), ``params`` and ``expect``: ``verdict``,
``summary_contains`` (strings), ``evidence`` (a subset of the evidence), ``hint_contains``.

A verdict cut into named checks has case files per check too
(tests/cases/gates/checks/<gate>/*.yaml): the same keys plus ``check``, the check's name;
``observation`` is what the check takes (its first parameter's type), ``verdict`` the
check's own (fail on a problem, inconclusive while it waits, else pass), ``summary_contains``
and ``summary_lacks`` look at its lines, ``evidence`` at its part of the evidence.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import pkgutil
import types
import typing
from enum import Enum
from pathlib import Path

import pytest
import yaml

from upgrader.gates import verdicts
from upgrader.gates.model import FAIL, INCONCLUSIVE, PASS
from upgrader.gates.verdicts import (
    CHECKS,
    OBSERVATIONS,
    VERDICTS,
    HostPool,
    HostSeen,
    OnedVersionSeen,
    VmSeen,
    parse_size,
    parse_syntax_error,
)
from upgrader.opennebula.enums import HostState, LcmState, VmState

CASE_DIR = Path(__file__).parents[1] / "cases" / "gates"
CASES = sorted(CASE_DIR.glob("*.yaml"))
CHECK_CASES = sorted(CASE_DIR.glob("checks/*/*.yaml"))

# The facade and every upgrader/gates/verdicts/*.py, so a new verdict module is covered.
VERDICT_MODULES = [verdicts] + [
    importlib.import_module(f"{verdicts.__name__}.{info.name}")
    for info in pkgutil.iter_modules(verdicts.__path__)
]


def build(tp, data):
    """Plain YAML data -> the (nested) observation dataclass ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return build(arg, data)
            except (TypeError, ValueError, KeyError):
                continue
        raise TypeError(f"{data!r} fits none of {args}")
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {data!r}")
        return tuple(build(item, x) for x in data)
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise TypeError(f"expected a mapping for {tp.__name__}, got {data!r}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(data) - names
        if unknown:
            raise KeyError(f"{tp.__name__} has no field(s) {sorted(unknown)}")
        return tp(**{k: build(hints[k], v) for k, v in data.items()})
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp[data] if isinstance(data, str) else tp(data)
    if tp is bool and not isinstance(data, bool):
        raise TypeError(f"expected a bool, got {data!r}")
    if tp in (int, str) and not isinstance(data, tp):
        raise TypeError(f"expected {tp.__name__}, got {data!r}")
    return data


def subset(expected, actual, path="evidence"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not a mapping"
        for key, value in expected.items():
            assert key in actual, f"{path}: no key {key!r} in {sorted(actual)}"
            subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert len(actual) == len(expected), f"{path}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            subset(e, a, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_gate_case(case):
    data = yaml.safe_load(case.read_text())
    gate = data["gate"]
    observation = build(OBSERVATIONS[gate], data["observation"])
    outcome = VERDICTS[gate](observation, **data.get("params", {}))
    expect = data["expect"]
    assert outcome.gate == gate
    assert outcome.verdict == expect["verdict"], outcome.evidence["summary"]
    summary = outcome.evidence["summary"]
    assert summary and "\n" not in summary
    for text in expect.get("summary_contains", []):
        assert text in summary, f"{text!r} not in {summary!r}"
    for text in expect.get("summary_lacks", []):
        assert text not in summary, f"{text!r} in {summary!r}"
    subset(expect.get("evidence", {}), dict(outcome.evidence))
    if outcome.verdict == PASS:
        assert outcome.hint == ""
    else:
        assert outcome.hint.strip(), "a non-pass verdict needs a remediation hint"
    for text in expect.get("hint_contains", []):
        assert text in outcome.hint
    json.dumps(dict(outcome.evidence))  # JSON-ready


@pytest.mark.parametrize(
    "case", CHECK_CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CHECK_CASES]
)
def test_check_case(case):
    data = yaml.safe_load(case.read_text())
    assert case.parent.name == data["gate"]
    check = CHECKS[data["gate"]][data["check"]]
    hints = typing.get_type_hints(check)
    first = next(iter(inspect.signature(check).parameters))
    observation = build(hints[first], data["observation"])
    params = {k: build(hints[k], v) for k, v in data.get("params", {}).items()}
    finding = check(observation, **params)
    expect = data["expect"]
    lines = "; ".join((*finding.problems, *finding.waiting))
    assert finding.verdict == expect["verdict"], lines
    for text in expect.get("summary_contains", []):
        assert text in lines, f"{text!r} not in {lines!r}"
    for text in expect.get("summary_lacks", []):
        assert text not in lines, f"{text!r} in {lines!r}"
    subset(expect.get("evidence", {}), dict(finding.details))
    json.dumps(dict(finding.details))  # JSON-ready


def test_check_cases_cover_every_named_check_passing_and_not():
    seen: dict[tuple[str, str], set[str]] = {}
    for case in CHECK_CASES:
        data = yaml.safe_load(case.read_text())
        seen.setdefault((data["gate"], data["check"]), set()).add(data["expect"]["verdict"])
    named = {(gate, name) for gate, checks in CHECKS.items() for name in checks}
    assert set(seen) <= named, sorted(set(seen) - named)
    for key in sorted(named):
        verdict_set = seen.get(key, set())
        assert PASS in verdict_set and verdict_set - {PASS}, (key, verdict_set)


def test_cases_cover_every_gate_with_pass_and_fail():
    seen: dict[str, set[str]] = {}
    for case in CASES:
        data = yaml.safe_load(case.read_text())
        seen.setdefault(data["gate"], set()).add(data["expect"]["verdict"])
    assert set(seen) == set(VERDICTS)
    for gate, verdict_set in seen.items():
        assert {PASS, FAIL} <= verdict_set, gate
    for gate in (
        "hosts-monitored",
        "vms-settled",
        "no-duplicate-vms",
        "datastores-healthy",
        "pacemaker-healthy",
        "fencing-ready",
        "libvirtd-alive",
        "puppet-held",
        "oned-version",
    ):
        assert INCONCLUSIVE in seen[gate], gate


def test_verdict_modules_cover_every_verdict_and_observation():
    found = {module.__name__ for module in VERDICT_MODULES}
    used = {fn.__module__ for fn in VERDICTS.values()}
    used |= {tp.__module__ for tp in OBSERVATIONS.values()}
    assert used <= found, sorted(used - found)


def test_verdict_modules_are_pure():
    forbidden = {
        "subprocess",
        "xmlrpc",
        "ansible",
        "ansible_runner",
        "socket",
        "time",
        "datetime",
        "os",
        "pyone",
        "upgrader.ansible_adapter",
    }
    for module in VERDICT_MODULES:
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden and name not in forbidden, (
                    f"{module.__name__} imports {name}"
                )


def test_observations_are_frozen():
    for tp in OBSERVATIONS.values():
        assert tp.__dataclass_params__.frozen


# ------------------------------------------------------------------ inline


def test_hosts_monitored_36_monitoring_error_is_transient():
    pool = HostPool(
        (
            HostSeen(0, "node01", HostState.MONITORED),
            HostSeen(1, "node02", HostState.MONITORING_ERROR),
        )
    )
    outcome = VERDICTS["hosts-monitored"](pool)
    assert outcome.verdict == INCONCLUSIVE
    assert outcome.evidence["summary"] == "still waiting for node02 (MONITORING_ERROR)"


def test_hosts_monitored_error_beats_waiting():
    pool = HostPool(
        (
            HostSeen(0, "node01", HostState.ERROR, "Error executing im.sh"),
            HostSeen(1, "node02", HostState.MONITORING),
        )
    )
    outcome = VERDICTS["hosts-monitored"](pool)
    assert outcome.verdict == FAIL
    assert "node01 in ERROR: Error executing im.sh" in outcome.evidence["summary"]


def test_vms_settled_every_transient_lcm_state_waits():
    transient = [
        s for s in LcmState if s not in (LcmState.RUNNING, LcmState.UNKNOWN, LcmState.FAILURE)
    ]
    for lcm in transient:
        vm = VmSeen(7, "web", "oneadmin", "node01", VmState.ACTIVE, lcm)
        outcome = VERDICTS["vms-settled"](verdicts.VmPool((vm,)))
        assert outcome.verdict == INCONCLUSIVE, lcm
        assert f"7 web (ACTIVE/{lcm.name})" in outcome.evidence["summary"]


def test_oned_version_without_onedb_when_not_required():
    seen = OnedVersionSeen("3.4", None, "3.4.1")
    assert VERDICTS["oned-version"](seen, expect="3.4").verdict == INCONCLUSIVE
    assert VERDICTS["oned-version"](seen, expect="3.4", require_onedb=False).verdict == PASS


def test_oned_version_default_db_version_from_series():
    outcome = VERDICTS["oned-version"](OnedVersionSeen("3.6", "3.5.80"), expect="3.6")
    assert outcome.verdict == FAIL
    assert outcome.evidence["needed_db_version"] == "3.6.0"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1048576, 1048576),
        ("512M", 512 * 1024**2),
        ("20G", 20 * 1024**3),
        ("1.5 GiB", 1610612736),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_parse_size_refuses_garbage():
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_parse_syntax_error_bash_and_python():
    bash = "/usr/sbin/fence_ipmi: line 42: syntax error near unexpected token `fi'\n"
    assert parse_syntax_error(bash, "bash", "/usr/sbin/fence_ipmi") == {
        "file": "/usr/sbin/fence_ipmi",
        "line": 42,
        "message": "syntax error near unexpected token `fi'",
    }
    py = (
        '  File "/usr/sbin/fence_virsh", line 17\n    def main(\n            ^\n'
        "SyntaxError: '(' was never closed\n"
    )
    assert parse_syntax_error(py, "python", "/usr/sbin/fence_virsh") == {
        "file": "/usr/sbin/fence_virsh",
        "line": 17,
        "message": "SyntaxError: '(' was never closed",
    }
    old = "Sorry: IndentationError: unexpected indent (fence_x, line 9)"
    assert parse_syntax_error(old, "python", "/usr/sbin/fence_x")["line"] == 9


def test_parse_syntax_error_of_sh_as_dash_and_bash_say_it_and_of_perl():
    path = "/usr/lib/ocf/resource.d/heartbeat/Filesystem"
    dash = f'{path}: 312: Syntax error: end of file unexpected (expecting "fi")\n'
    assert parse_syntax_error(dash, "sh", path) == {
        "file": path,
        "line": 312,
        "message": 'Syntax error: end of file unexpected (expecting "fi")',
    }
    bash_as_sh = f"{path}: line 312: syntax error: unexpected end of file\n"
    assert parse_syntax_error(bash_as_sh, "sh", path)["line"] == 312
    perl = (
        'syntax error at /usr/sbin/fence_apc line 12, near "= ;"\n'
        "/usr/sbin/fence_apc had compilation errors.\n"
    )
    assert parse_syntax_error(perl, "perl", "/usr/sbin/fence_apc") == {
        "file": "/usr/sbin/fence_apc",
        "line": 12,
        "message": "syntax error",
    }


def test_non_pass_without_hint_is_refused():
    with pytest.raises(ValueError, match="remediation hint"):
        verdicts.result("g", FAIL, "broken")
