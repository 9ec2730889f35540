"""The bad-input corpus (issue 9): one malformed input per row, what the CLI must answer.

A row names the case, its family, what it spoils (``setup``, run on the case's own
``CaseSite``), the command line (``--config <case>/upgrader.yml`` is appended unless
``config`` says otherwise; ``{root}`` is the case's directory), the exit code DESIGN.md
section 4 documents for it (2: bad input; 1: oned failed us; 5: inhibitors) and a regex the
single stderr line must match: it names the file and the key or line, or the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.badinput.conftest import CaseSite

Setup = Callable[["CaseSite"], None]

PLAN = ("plan", "3.6", "--stage")
DRY_RUN = ("run", "3.6", "--stage", "--yes", "--dry-run")
GATES = ("gates", "--stage", "--wait", "0")
HOP32 = "runbooks/opennebula-3.2-to-3.4.yml"
HOP34 = "runbooks/opennebula-3.4-to-3.6.yml"
ACCEPT_ALL = ("--accept", "vm-nonpersistent-disk/0", "--accept", "vm-nonpersistent-disk/1")
# the runs conftest seeds: paused (its fingerprint matches the clean site), dry, aborted
PAUSED, DRY, ABORTED = (
    "staging-20260101T010000-0a0a",
    "staging-20260101T020000-0b0b",
    "staging-20260101T030000-0c0c",
)
CFG = r"upgrader\.yml:\d+:\d+: "  # a site config error's place
RB = r"opennebula-3\.2-to-3\.4\.yml:\d+:\d+: "  # a runbook error's place
INV = r"inventory\.yml:\d+:\d+: "  # an inventory error's place


def nothing(site: CaseSite) -> None:
    """The clean site: the argument is what is wrong."""


@dataclass(frozen=True)
class Case:
    """One malformed input and the one-line answer it must get."""

    id: str
    family: str
    argv: tuple[str, ...]
    stderr: str
    code: int = 2
    setup: Setup = nothing
    config: str | None = "upgrader.yml"


# ------------------------------------------------------------------ setups
def a_file(name: str, text: str) -> Setup:
    """Write a file of the case (``{root}`` in ``text`` is the case's directory)."""

    def setup(s: CaseSite) -> None:
        s.write(name, text)

    return setup


def config_text(text: str) -> Setup:
    """Replace the whole upgrader.yml."""
    return a_file("upgrader.yml", text)


_DROP = object()


def set_key(dotted: str, value: Any = _DROP) -> Setup:
    """Set a key of upgrader.yml (``environments.staging.oned``); without a value, drop it."""

    def setup(s: CaseSite) -> None:
        *parents, last = dotted.split(".")
        node = s.config
        for key in parents:
            node = node[key]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
        s.save()

    return setup


def window(spec: dict[str, Any]) -> Setup:
    """Give staging this one maintenance window."""
    return set_key("environments.staging.windows", [spec])


def runbook(old: str, new: str, file: str = HOP32) -> Setup:
    """Own the runbooks and replace ``old`` by ``new`` in one of them."""

    def setup(s: CaseSite) -> None:
        s.own("runbooks")
        s.edit(file, old, new)

    return setup


def inventory(text: str) -> Setup:
    """Own the inventory and replace it by ``text``."""

    def setup(s: CaseSite) -> None:
        s.write(s.own("inventory").name, text)

    return setup


def credentials(text: str, mode: int = 0o600) -> Setup:
    """Own the credentials file and replace it by ``text`` with ``mode``."""

    def setup(s: CaseSite) -> None:
        s.write(s.own("credentials").name, text, mode)

    return setup


def oned(mode: str) -> Setup:
    """Point staging at the stand-in oned misbehaving as ``mode``."""

    def setup(s: CaseSite) -> None:
        s.env()["oned"] = s.cloud.stand_in.url(mode)
        s.save()

    return setup


def steps(*setups: Setup) -> Setup:
    """Several setups, in order."""

    def setup(s: CaseSite) -> None:
        for one in setups:
            one(s)

    return setup


GOOD_ENVS = """
environments:
  staging: {oned: "http://127.0.0.1:1/RPC2", credentials: c, inventory: i}
  production: {oned: "http://127.0.0.1:1/RPC2", credentials: c, inventory: i}
"""

# --------------------------------------------------------------- the corpus
CASES: tuple[Case, ...] = (
    # ---- site configs (upgrader.yml)
    Case(
        "config-bad-yaml",
        "site config",
        PLAN,
        CFG + r".*(mapping|flow|expected)",
        setup=config_text("environments:\n  staging: {oned: [http://x\n  production: {}\n"),
    ),
    Case(
        "config-not-a-mapping",
        "site config",
        PLAN,
        CFG + r"expected a mapping, got a list",
        setup=config_text("- staging\n- production\n"),
    ),
    Case(
        "config-empty-file",
        "site config",
        PLAN,
        r"upgrader\.yml.*(empty|mapping)",
        setup=config_text(""),
    ),
    Case(
        "config-unknown-key",
        "site config",
        PLAN,
        CFG + r"runs_dri: unknown key 'runs_dri' \(did you mean 'runs_dir'\?\)",
        setup=set_key("runs_dri", "runs"),
    ),
    Case(
        "config-duplicate-key",
        "site config",
        PLAN,
        CFG + r"runs_dir: duplicate key",
        setup=config_text(GOOD_ENVS + "runs_dir: a\nruns_dir: b\n"),
    ),
    Case(
        "config-missing-environments",
        "site config",
        PLAN,
        CFG + r"environments: missing required key",
        setup=config_text("runs_dir: runs\n"),
    ),
    Case(
        "config-missing-production",
        "site config",
        PLAN,
        CFG + r"environments\.production: missing required environment",
        setup=set_key("environments.production"),
    ),
    Case(
        "config-environment-bad-name",
        "site config",
        PLAN,
        CFG + r"environments\.QA_1: 'QA_1' is not an environment name",
        setup=config_text(
            GOOD_ENVS + "  QA_1: {oned: 'http://x/RPC2', credentials: c, inventory: i}\n"
        ),
    ),
    Case(
        "config-oned-not-a-url",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.oned: 'frontend:2633' is not an http\(s\) URL",
        setup=set_key("environments.staging.oned", "frontend:2633"),
    ),
    Case(
        "config-oned-bad-port",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.oned: 'http://127\.0\.0\.1:99999/RPC2' is not an http",
        setup=set_key("environments.staging.oned", "http://127.0.0.1:99999/RPC2"),
    ),
    Case(
        "config-oned-timeout-zero",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.oned_timeout: must be longer than 0",
        setup=set_key("environments.staging.oned_timeout", 0),
    ),
    Case(
        "config-oned-timeout-text",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.oned_timeout: 'soon' is not a duration",
        setup=set_key("environments.staging.oned_timeout", "soon"),
    ),
    Case(
        "config-batch-size-text",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.batch_size: expected an integer",
        setup=set_key("environments.staging.batch_size", "two"),
    ),
    Case(
        "config-runs-dir-is-a-file",
        "site config",
        DRY_RUN + ACCEPT_ALL,
        CFG + r"runs_dir: .*not a directory",
        setup=steps(a_file("runs-file", "not a directory\n"), set_key("runs_dir", "runs-file")),
    ),
    Case(
        "config-runbooks-dir-missing",
        "site config",
        PLAN,
        CFG + r"runbooks_dir: '.*no-such-dir' is not a directory",
        setup=set_key("runbooks_dir", "no-such-dir"),
    ),
    Case(
        "config-window-bad-weekly",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.windows\[0\]\.weekly: 'Saturday 1am' is not a weekly",
        setup=window({"weekly": "Saturday 1am", "duration": "4h"}),
    ),
    Case(
        "config-window-unknown-timezone",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.windows\[0\]\.timezone: unknown timezone 'Mars/Olympus'",
        setup=window({"weekly": "Sat 01:00", "duration": "4h", "timezone": "Mars/Olympus"}),
    ),
    Case(
        "config-window-end-before-start",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.windows\[0\]\.end: must be after start",
        setup=window({"start": "2026-06-01T05:00:00+02:00", "end": "2026-06-01T01:00:00+02:00"}),
    ),
    Case(
        "config-window-no-utc-offset",
        "site config",
        PLAN,
        CFG + r"environments\.staging\.windows\[0\]\.start: '2026-06-01T01:00:00' has no "
        r"UTC offset",
        setup=window({"start": "2026-06-01T01:00:00", "end": "2026-06-01T05:00:00+02:00"}),
    ),
    Case(
        "config-rehearsal-unknown-environment",
        "site config",
        PLAN,
        CFG + r"environments\.production\.requires_rehearsal_on: no environment 'stagign' "
        r"\(did you mean 'staging'\?\)",
        setup=set_key("environments.production.requires_rehearsal_on", "stagign"),
    ),
    Case(
        "config-rehearsal-circle",
        "site config",
        PLAN,
        CFG + r"environments\.\w+\.requires_rehearsal_on: rehearsals go round in a circle",
        setup=set_key("environments.staging.requires_rehearsal_on", "production"),
    ),
    Case(
        "config-python-tag",
        "site config",
        PLAN,
        CFG,
        setup=config_text(
            GOOD_ENVS + "lab: !!python/object/apply:os.system ['touch {root}/pwned']\n"
        ),
    ),
    # ---- runbooks
    Case(
        "runbook-bad-yaml",
        "runbook",
        PLAN,
        RB + r".*(expected|flow)",
        setup=runbook("steps:\n", "steps: [\n"),
    ),
    Case(
        "runbook-unknown-action",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.action: step 'prepare': unknown action 'reboot-everything'",
        setup=runbook(
            "    playbook: mark.yml\n    estimate: 10s",
            "    action: reboot-everything\n    estimate: 10s",
        ),
    ),
    Case(
        "runbook-duplicate-id",
        "runbook",
        PLAN,
        RB + r"steps\[1\]\.id: duplicate step id 'prepare' \(first on line 6\)",
        setup=runbook("id: front-end", "id: prepare"),
    ),
    Case(
        "runbook-undo-names-missing-step",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.undo: no step 'relase' to undo step 'prepare'",
        setup=runbook("undo: release", "undo: relase"),
    ),
    Case(
        "runbook-undo-cycle",
        "runbook",
        PLAN,
        RB + r"steps\[3\]\.undo: not allowed on an undo_only step",
        setup=runbook("    undo_only: true\n", "    undo_only: true\n    undo: prepare\n"),
    ),
    Case(
        "runbook-bad-estimate",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.estimate: 'ten seconds' is not a duration",
        setup=runbook("estimate: 10s", "estimate: ten seconds"),
    ),
    Case(
        "runbook-missing-playbook",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.playbook: step 'prepare': playbook '.*nmark\.yml' not found",
        setup=runbook("playbook: mark.yml", "playbook: nmark.yml"),
    ),
    Case(
        "runbook-playbook-outside",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.playbook: playbook '\.\./\.\./etc/passwd' must be a path inside",
        setup=runbook("playbook: mark.yml", "playbook: ../../etc/passwd"),
    ),
    Case(
        "runbook-unknown-gate",
        "runbook",
        PLAN,
        r"step 3\.2-3\.4/prepare names gate 'oned-reachabel', which upgrader does not have",
        setup=runbook("[oned-reachable]", "[oned-reachabel]"),
    ),
    Case(
        "runbook-two-points-of-no-return",
        "runbook",
        PLAN,
        RB + r"steps\[2\]\.point_of_no_return: a second point of no return",
        setup=runbook("    serial: 1\n", "    serial: 1\n    point_of_no_return: true\n"),
    ),
    Case(
        "runbook-wrong-hop",
        "runbook",
        PLAN,
        RB + r"to_version: a runbook is one hop: 3\.2 goes to 3\.4, not 3\.6",
        setup=runbook('to_version: "3.4"', 'to_version: "3.6"'),
    ),
    Case(
        "runbook-serial-zero",
        "runbook",
        PLAN,
        RB + r"steps\[2\]\.serial: must be at least 1, got 0",
        setup=runbook("serial: 1", "serial: 0"),
    ),
    Case(
        "runbook-unknown-key",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.idempotnet: unknown key 'idempotnet' \(did you mean 'idempotent'",
        setup=runbook("idempotent: true", "idempotnet: true"),
    ),
    Case(
        "runbook-not-a-bool",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.idempotent: expected a boolean, got a string",
        setup=runbook("idempotent: true", "idempotent: yes please"),
    ),
    Case(
        "runbook-missing-file",
        "runbook",
        PLAN,
        r"no runbook for OpenNebula 3\.4 -> 3\.6: .*opennebula-3\.4-to-3\.6\.yml is missing",
        setup=lambda s: s.own("runbooks").joinpath("opennebula-3.4-to-3.6.yml").unlink(),
    ),
    Case(
        "runbook-python-tag",
        "runbook",
        PLAN,
        RB + r"steps\[0\]\.vars",
        setup=runbook(
            "vars: {marker_name: prepare}",
            "vars: {marker_name: !!python/object/apply:os.system ['touch {root}/pwned']}",
        ),
    ),
    Case(
        "runbook-changed-under-a-paused-run",
        "runbook",
        ("resume", PAUSED, "--stage"),
        rf"{PAUSED}.*(runbooks|changed)",
        setup=runbook("estimate: 10s", "estimate: 11s", HOP34),
    ),
    # ---- inventories
    Case(
        "inventory-missing",
        "inventory",
        PLAN,
        r"inventory '.*no-such\.yml' of environment 'staging' does not exist",
        setup=set_key("environments.staging.inventory", "no-such.yml"),
    ),
    Case(
        "inventory-bad-yaml",
        "inventory",
        PLAN,
        INV + r".*(expected|mapping)",
        setup=inventory("all:\n  children:\n    frontends: {hosts: {node01: }\n"),
    ),
    Case(
        "inventory-not-a-mapping",
        "inventory",
        PLAN,
        INV + r"expected a mapping of groups, got a list",
        setup=inventory("- node01\n- node02\n"),
    ),
    Case(
        "inventory-missing-group",
        "inventory",
        GATES,
        INV + r"hypervisors: no group 'hypervisors' with a host",
        setup=inventory(
            "all:\n  children:\n    frontends:\n      hosts:\n        node01:\n"
            "          ansible_connection: local\n"
        ),
    ),
    Case(
        "inventory-hosts-as-a-list",
        "inventory",
        PLAN,
        INV + r"all\.children\.hypervisors\.hosts: expected a mapping of hosts to their vars, "
        r"got a list",
        setup=inventory(
            "all:\n  children:\n    frontends:\n      hosts: {node01: }\n"
            "    hypervisors:\n      hosts: [node01, node02]\n"
        ),
    ),
    Case(
        "inventory-host-without-address",
        "inventory",
        DRY_RUN + ACCEPT_ALL,
        INV + r"all\.children\.hypervisors\.hosts\.node02\.ansible_host: .*empty",
        setup=inventory(
            "all:\n  children:\n    frontends:\n      hosts: {node01: }\n"
            "    hypervisors:\n      hosts:\n        node01:\n"
            "        node02: {ansible_host: ''}\n"
        ),
    ),
    # ---- command-line arguments
    Case(
        "cli-unknown-target-version",
        "cli",
        ("plan", "4.0", "--stage"),
        r"unknown target version '4\.0'",
    ),
    Case("cli-unknown-target", "cli", ("run", "ocfs3", *DRY_RUN[2:]), r"unknown target 'ocfs3'"),
    Case(
        "cli-target-already-there",
        "cli",
        ("plan", "3.2", "--stage"),
        r"already runs OpenNebula 3\.2",
    ),
    Case(
        "cli-bad-window",
        "cli",
        ("run", "3.6", "--stage", "--yes", "--window", "tomorrow"),
        r"tomorrow",
    ),
    Case(
        "cli-window-ends-before-start",
        "cli",
        (*DRY_RUN, "--window", "2026-01-02T00:00:00+00:00/2026-01-01T00:00:00+00:00"),
        r"2026-01-02T00:00:00\+00:00/2026-01-01T00:00:00\+00:00|end.*before|after",
    ),
    Case(
        "cli-accept-unknown-key",
        "cli",
        (*PLAN, "--accept", "vm-nonpersistent-disk/99"),
        r"--accept vm-nonpersistent-disk/99",
    ),
    Case(
        "cli-run-accept-unknown-key",
        "cli",
        ("run", "3.6", "--stage", "--yes", *ACCEPT_ALL, "--accept", "host-eror/node01"),
        r"--accept host-eror/node01",
    ),
    Case(
        "cli-resume-missing-run",
        "cli",
        ("resume", "staging-19990101T000000-dead", "--stage"),
        r"no run 'staging-19990101T000000-dead' in .*runs",
    ),
    Case("cli-resume-a-dry-run", "cli", ("resume", DRY, "--stage"), rf"run {DRY} is a dry run"),
    Case("cli-resume-an-aborted-run", "cli", ("resume", ABORTED, "--stage"), rf"{ABORTED}.*abort"),
    Case(
        "cli-status-missing-run",
        "cli",
        ("status", "staging-nope", "--stage"),
        r"no run 'staging-nope'",
    ),
    Case(
        "cli-report-unknown-format",
        "cli",
        ("report", PAUSED, "--stage", "--format", "pdf"),
        r"--format.*'pdf'",
    ),
    Case(
        "cli-report-file-without-format",
        "cli",
        (*PLAN, "--report", "plan.pdf"),
        r"--report plan\.pdf: the suffix says no format",
    ),
    Case(
        "cli-unknown-gate",
        "cli",
        (*GATES, "--gate", "oned-reachabel"),
        r"no gate called oned-reachabel",
    ),
    Case("cli-unknown-option", "cli", ("plan", "3.6", "--stagee"), r"--stagee"),
    Case("cli-run-without-target", "cli", ("run", "--stage", "--yes"), r"TARGET"),
    Case(
        "cli-empty-rehearsal-reason",
        "cli",
        ("run", "3.6", "--yes", "--without-rehearsal", " "),
        r"--without-rehearsal needs a reason",
    ),
    Case(
        "cli-dry-run-with-take-over",
        "cli",
        (*DRY_RUN, *ACCEPT_ALL, "--take-over"),
        r"--take-over.*--dry-run|--dry-run.*--take-over",
    ),
    Case(
        "cli-config-missing",
        "cli",
        PLAN,
        r"site config '.*nowhere\.yml' \(from --config\) "
        r"does not exist",
        config="nowhere.yml",
    ),
    Case(
        "cli-config-is-a-directory",
        "cli",
        PLAN,
        r"site config '.*runs' \(from --config\) "
        r"is not a file",
        config="runs",
    ),
    # ---- credentials files
    Case(
        "credentials-missing",
        "credentials",
        PLAN,
        r"credentials file '.*no-auth' for environment 'staging' does not exist",
        setup=set_key("environments.staging.credentials", "no-auth"),
    ),
    Case(
        "credentials-empty",
        "credentials",
        PLAN,
        r"credentials file '.*one_auth' must hold one line 'user:password'",
        setup=credentials(""),
    ),
    Case(
        "credentials-no-colon",
        "credentials",
        PLAN,
        r"credentials file '.*one_auth' must hold one line 'user:password'",
        setup=credentials("oneadmin lab-secret-pw\n"),
    ),
    Case(
        "credentials-two-lines",
        "credentials",
        PLAN,
        r"credentials file '.*one_auth' must hold one line 'user:password'",
        setup=credentials("oneadmin:lab-secret-pw\nserveradmin:other\n"),
    ),
    Case(
        "credentials-readable-by-others",
        "credentials",
        PLAN,
        r"permissions 0644 for '.*one_auth' are too open",
        setup=credentials("oneadmin:lab-secret-pw\n", 0o644),
    ),
    Case(
        "credentials-readable-by-group",
        "credentials",
        PLAN,
        r"permissions 0640 for '.*one_auth' are too open",
        setup=credentials("oneadmin:lab-secret-pw\n", 0o640),
    ),
    Case(
        "credentials-a-directory",
        "credentials",
        PLAN,
        r"credentials file '.*runs' is not a regular file",
        setup=set_key("environments.staging.credentials", "runs"),
    ),
    Case(
        "credentials-wrong-password",
        "credentials",
        PLAN,
        r"one\.\w+\.\w+ failed on http://127\.0\.0\.1:\d+/RPC2: .*(auth|Auth).*hint: check the "
        r"username:password",
        code=1,
        setup=credentials("oneadmin:not-the-password\n"),
    ),
    # ---- an oned that answers garbage
    Case(
        "oned-garbage", "oned", PLAN, r"did not answer with XML-RPC", code=1, setup=oned("garbage")
    ),
    Case(
        "oned-html-page",
        "oned",
        PLAN,
        r"did not answer with XML-RPC \(XML, but not an XML-RPC methodResponse\)",
        code=1,
        setup=oned("html"),
    ),
    Case(
        "oned-truncated-xml-rpc",
        "oned",
        PLAN,
        r"did not answer with XML-RPC",
        code=1,
        setup=oned("truncated"),
    ),
    Case(
        "oned-xml-rpc-fault",
        "oned",
        PLAN,
        r"XML-RPC fault -32500.*database is locked",
        code=1,
        setup=oned("fault"),
    ),
    Case("oned-http-500", "oned", PLAN, r"HTTP 500", code=1, setup=oned("http500")),
    # accepts the call and never answers: given up on after the environment's oned_timeout
    Case(
        "oned-silent",
        "oned",
        PLAN,
        r"no answer within 1s \(hint: .*raise environments\.staging\.oned_timeout\)",
        code=1,
        setup=steps(oned("silent"), set_key("environments.staging.oned_timeout", "1s")),
    ),
    Case(
        "oned-silent-during-gates",
        "oned",
        (*GATES, "--gate", "oned-reachable"),
        r"error: 1 of 1 gates did not pass: oned-reachable",
        code=1,
        setup=steps(oned("silent"), set_key("environments.staging.oned_timeout", 1)),
    ),
    Case(
        "oned-two-element-reply",
        "oned",
        DRY_RUN,
        r"answered a 2-element array, not the \[ok, value, code\] array",
        code=1,
        setup=oned("two-values"),
    ),
    Case(
        "oned-pool-truncated",
        "oned",
        PLAN,
        r"one\.hostpool\.info: malformed or truncated "
        r"XML .*hint: is the endpoint an OpenNebula 3\.x oned\?",
        code=1,
        setup=oned("pool-truncated"),
    ),
    Case(
        "oned-pool-garbage",
        "oned",
        (*GATES, "--gate", "oned-reachable", "--gate", "hosts-monitored"),
        r"error: 2 of 2 gates did not pass: oned-reachable, hosts-monitored",
        code=1,
        setup=oned("pool-garbage"),
    ),
    Case(
        "oned-pool-wrong-type",
        "oned",
        PLAN,
        r"one\.hostpool\.info: <HOST> seven: <ID> is not an integer: 'seven' \(hint: ",
        code=1,
        setup=oned("pool-wrong-type"),
    ),
)


def cases(family: str) -> list[Any]:
    """The family's rows as pytest params, with the case id as the test id."""
    import pytest  # the table itself needs no pytest

    found = [pytest.param(c, id=c.id) for c in CASES if c.family == family]
    assert found, f"no case of family {family!r}"
    return found
