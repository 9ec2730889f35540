"""Runbook loading: the fixture runbook's values, and one exact message per kind of mistake."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from upgrader.errors import EXIT_USAGE, RunbookError
from upgrader.plan.runbook import load_runbook
from upgrader.plan.runbook_model import GateSpec

FIXTURES = Path(__file__).parents[1] / "fixtures"
PLAYBOOKS = FIXTURES / "playbooks"
ACTIONS = ("record-vms", "shutdown-vms", "recreate-vms")

HEAD = """\
name: test
kind: upgrade
from_version: "3.2"
to_version: "3.4"
steps:
"""


def load(tmp_path: Path, text: str, **kw: object):
    path = tmp_path / "rb.yml"
    path.write_text(textwrap.dedent(text))
    return load_runbook(path, playbooks_dir=PLAYBOOKS, actions=ACTIONS, **kw)  # type: ignore[arg-type]


def error_of(tmp_path: Path, text: str, **kw: object) -> str:
    with pytest.raises(RunbookError) as info:
        load(tmp_path, text, **kw)
    assert info.value.exit_code == EXIT_USAGE
    message = str(info.value)
    assert "\n" not in message
    return message.replace(str(tmp_path / "rb.yml"), "rb.yml")


# --------------------------------------------------------------- good runbooks
def test_fixture_runbook_loads_with_every_value():
    path = FIXTURES / "runbooks" / "opennebula-3.2-to-3.4.yml"
    runbook = load_runbook(path, playbooks_dir=PLAYBOOKS)
    assert (runbook.name, runbook.kind) == ("opennebula-3.2-to-3.4", "upgrade")
    assert (runbook.from_version, runbook.to_version) == ("3.2", "3.4")
    assert (runbook.from_storage, runbook.to_storage) == (None, None)
    assert runbook.path == path
    assert runbook.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [s.id for s in runbook.steps] == [
        "record-vms",
        "backup-db",
        "upgrade-packages",
        "restart-libvirtd",
        "restore-db",
    ]
    record, backup, upgrade, restart, restore = runbook.steps
    assert (record.kind, record.action, record.playbook, record.target) == (
        "action",
        "record-vms",
        None,
        "all",
    )
    assert record.gates_before == (GateSpec("oned-responding", {}),)
    assert record.estimate == 30.0
    assert (backup.kind, backup.playbook, backup.target) == (
        "playbook",
        "backup-db.yml",
        "frontends",
    )
    assert backup.undo == "restore-db" and backup.sequence_start
    assert backup.gates_after == (
        GateSpec("hosts-monitored", {"timeout": "5m", "transient_states": [1]}),
    )
    assert backup.estimate == 120.0 and backup.idempotent
    assert upgrade.point_of_no_return and not upgrade.idempotent
    assert upgrade.estimate == 5400.0
    assert upgrade.vars == {"one_release": "3.4.1", "keep_backups": 3}
    assert (restart.serial, restart.per_host, restart.estimate) == (2, True, 45.0)
    assert [g.name for g in restart.gates_after] == ["hosts-monitored", "vm-count-unchanged"]
    assert restore.undo_only and restore.estimate == 90.0
    assert not any(s.point_of_no_return for s in (record, backup, restart, restore))
    assert (record.title, record.per_host, record.serial) == ("Record every active VM", False, None)


def test_storage_runbook_and_defaults(tmp_path):
    runbook = load(
        tmp_path,
        """\
        name: storage
        kind: storage
        from_storage: ocfs2
        to_storage: nfs
        steps:
          - id: presync
            action: record-vms
            estimate: 10
            idempotent: true
            per_host: true
    """,
    )
    assert (runbook.kind, runbook.from_storage, runbook.to_storage) == ("storage", "ocfs2", "nfs")
    assert (runbook.from_version, runbook.to_version) == (None, None)
    step = runbook.steps[0]
    assert (step.title, step.target, step.per_host, step.serial) == ("presync", "all", True, None)
    assert (step.vars, step.gates_before, step.undo, step.undo_only) == ({}, (), None, False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("2m30s", 150.0),
        ("0.5s", 0.5),
        ("12", 12.0),
        ("1.5", 1.5),
        ("0", 0.0),
    ],
)
def test_estimates_in_seconds_or_units(tmp_path, text, seconds):
    runbook = load(
        tmp_path, HEAD + f"  - {{id: a, action: record-vms, estimate: {text}, idempotent: true}}\n"
    )
    assert runbook.steps[0].estimate == seconds


def test_version_may_be_written_as_a_number(tmp_path):
    runbook = load(
        tmp_path,
        HEAD.replace('"3.2"', "3.2").replace('"3.4"', "3.4")
        + "  - {id: a, action: record-vms, estimate: 1, idempotent: true}\n",
    )
    assert (runbook.from_version, runbook.to_version) == ("3.2", "3.4")


def test_known_gates_are_checked_when_given(tmp_path):
    text = (
        HEAD + "  - {id: a, action: record-vms, estimate: 1, idempotent: true,\n"
        "     gates_after: [hosts-monitord]}\n"
    )
    assert load(tmp_path, text).steps[0].gates_after == (GateSpec("hosts-monitord", {}),)
    assert error_of(tmp_path, text, gates=("hosts-monitored", "oned-responding")) == (
        "rb.yml:7:20: steps[0].gates_after[0]: unknown gate 'hosts-monitord' "
        "(did you mean 'hosts-monitored'?)"
    )


# ----------------------------------------------------------------- bad runbooks
STEP = "  - id: a\n    action: record-vms\n    estimate: 1\n    idempotent: true\n"
BAD = {
    "malformed-yaml": (
        HEAD + "  - id: a\n    action: [record-vms\n",
        "rb.yml:8:1: malformed YAML: expected ',' or ']', but got '<stream end>'",
    ),
    "malformed-mapping": (
        "name: x\nkind: upgrade: yes\n",
        "rb.yml:2:14: malformed YAML: mapping values are not allowed here",
    ),
    "unknown-key-suggested": (
        HEAD + STEP + "    seral: 2\n",
        "rb.yml:10:5: steps[0].seral: unknown key 'seral' (did you mean 'serial'?)",
    ),
    "unknown-top-key": ("nmae: x\n", "rb.yml:1:1: nmae: unknown key 'nmae' (did you mean 'name'?)"),
    "unknown-key-no-match": (
        HEAD + STEP + "    zzz: 2\n",
        "rb.yml:10:5: steps[0].zzz: unknown key 'zzz' (expected one of: "
        "action, does_undo, estimate, estimate_per_host, estimate_per_vm, "
        "gates_after, gates_before, id, idempotent, per_host, playbook, "
        "point_of_no_return, rollback, sequence_end, sequence_start, "
        "serial, target, title, undo, undo_only, vars)",
    ),
    "duplicate-key": (
        HEAD + STEP + "    estimate: 2\n",
        "rb.yml:10:5: steps[0].estimate: duplicate key (first on line 8)",
    ),
    "missing-name": ("kind: upgrade\nsteps: []\n", "rb.yml:1:1: name: missing required key"),
    "missing-idempotent": (
        HEAD + "  - id: a\n    action: record-vms\n    estimate: 1\n",
        "rb.yml:6:5: steps[0].idempotent: missing required key",
    ),
    "not-a-mapping": ("- a\n- b\n", "rb.yml:1:1: expected a mapping, got a list"),
    "empty-file": ("", "rb.yml:1:1: expected a mapping, got nothing (null)"),
    "steps-not-a-list": (
        HEAD.replace("steps:\n", "steps: many\n"),
        "rb.yml:5:8: steps: expected a list, got a string",
    ),
    "no-steps": (
        HEAD.replace("steps:\n", "steps: []\n"),
        "rb.yml:5:8: steps: a runbook needs at least one step",
    ),
    "unknown-kind": (
        "name: x\nkind: upgrad\nsteps: []\n",
        "rb.yml:2:7: kind: unknown kind 'upgrad' (did you mean 'upgrade'?)",
    ),
    "unknown-version": (
        HEAD.replace('"3.4"', '"3.5"') + STEP,
        "rb.yml:4:13: to_version: '3.5' is not a version upgrader knows (3.2, 3.4, 3.6)",
    ),
    "two-hops": (
        HEAD.replace('"3.4"', '"3.6"') + STEP,
        "rb.yml:4:13: to_version: a runbook is one hop: 3.2 goes to 3.4, not 3.6",
    ),
    "storage-key-in-upgrade": (
        HEAD.replace("steps:", "from_storage: ocfs2\nsteps:") + STEP,
        "rb.yml:5:1: from_storage: not allowed in a runbook of kind 'upgrade'",
    ),
    "missing-to-version": (
        HEAD.replace('to_version: "3.4"\n', "") + STEP,
        "rb.yml:1:1: to_version: missing required key (kind 'upgrade')",
    ),
    "serial-not-int": (
        HEAD + STEP + "    serial: two\n",
        "rb.yml:10:13: steps[0].serial: expected an integer, got a string",
    ),
    "serial-zero": (
        HEAD + STEP + "    serial: 0\n",
        "rb.yml:10:13: steps[0].serial: must be at least 1, got 0",
    ),
    "serial-without-per-host": (
        HEAD + STEP + "    serial: 2\n    per_host: false\n",
        "rb.yml:10:5: steps[0].serial: serial needs per_host: true",
    ),
    "idempotent-not-bool": (
        HEAD + "  - id: a\n    action: record-vms\n    estimate: 1\n    idempotent: maybe\n",
        "rb.yml:9:17: steps[0].idempotent: expected a boolean, got a string",
    ),
    "bad-estimate": (
        HEAD + "  - id: a\n    action: record-vms\n    estimate: soon\n    idempotent: true\n",
        "rb.yml:8:15: steps[0].estimate: 'soon' is not a duration like 90s, 5m or 1h30m",
    ),
    "negative-estimate": (
        HEAD + "  - id: a\n    action: record-vms\n    estimate: -5\n    idempotent: true\n",
        "rb.yml:8:15: steps[0].estimate: must be a finite duration of 0 or more, got -5",
    ),
    "bad-id": (
        HEAD + "  - id: Backup_DB\n    action: record-vms\n    estimate: 1\n    idempotent: true\n",
        "rb.yml:6:9: steps[0].id: 'Backup_DB' is not a step id (lower-case letters, "
        "digits and dashes)",
    ),
    "duplicate-id": (
        HEAD + STEP + STEP,
        "rb.yml:10:9: steps[1].id: duplicate step id 'a' (first on line 6)",
    ),
    "playbook-and-action": (
        HEAD + STEP + "    playbook: backup-db.yml\n",
        "rb.yml:10:5: steps[0].playbook: a step runs a playbook or an action, not both",
    ),
    "neither-playbook-nor-action": (
        HEAD + "  - id: a\n    estimate: 1\n    idempotent: true\n",
        "rb.yml:6:5: steps[0]: step 'a' needs a 'playbook' or an 'action'",
    ),
    "missing-playbook": (
        HEAD + "  - id: backup-db\n    playbook: backup.yml\n"
        "    estimate: 1\n    idempotent: true\n",
        f"rb.yml:7:15: steps[0].playbook: step 'backup-db': playbook "
        f"'{PLAYBOOKS}/backup.yml' not found",
    ),
    "playbook-outside": (
        HEAD + "  - id: a\n    playbook: ../x.yml\n    estimate: 1\n    idempotent: true\n",
        f"rb.yml:7:15: steps[0].playbook: playbook '../x.yml' must be a path "
        f"inside the playbooks directory ({PLAYBOOKS})",
    ),
    "unknown-action": (
        HEAD + "  - id: a\n    action: record-vm\n    estimate: 1\n    idempotent: true\n",
        "rb.yml:7:13: steps[0].action: step 'a': unknown action 'record-vm' "
        "(did you mean 'record-vms'?)",
    ),
    "undo-missing": (
        HEAD + STEP + "    undo: restore\n",
        "rb.yml:10:11: steps[0].undo: no step 'restore' to undo step 'a' "
        "(no step is marked undo_only: true)",
    ),
    "undo-typo": (
        HEAD
        + STEP
        + "    undo: restore-bd\n"
        + STEP.replace("id: a", "id: restore-db")
        + "    undo_only: true\n",
        "rb.yml:10:11: steps[0].undo: no step 'restore-bd' to undo step 'a' "
        "(did you mean 'restore-db'?)",
    ),
    "undo-not-undo-only": (
        HEAD + STEP + "    undo: b\n" + STEP.replace("id: a", "id: b"),
        "rb.yml:10:11: steps[0].undo: step 'b' undoes step 'a' but is not marked undo_only: true",
    ),
    "undo-only-unused": (
        HEAD + STEP + STEP.replace("id: a", "id: b") + "    undo_only: true\n",
        "rb.yml:10:9: steps[1].id: undo_only step 'b' is not the undo of any step",
    ),
    "only-undo-steps": (
        HEAD + STEP + "    undo_only: true\n",
        "rb.yml:6:9: steps[0].id: undo_only step 'a' is not the undo of any step",
    ),
    "two-points-of-no-return": (
        HEAD
        + STEP
        + "    point_of_no_return: true\n"
        + STEP.replace("id: a", "id: b")
        + "    point_of_no_return: true\n",
        "rb.yml:15:5: steps[1].point_of_no_return: a second point of "
        "no return (the first is step 'a', line 10)",
    ),
    "gate-without-name": (
        HEAD + STEP + "    gates_before:\n      - timeout: 5m\n",
        "rb.yml:11:9: steps[0].gates_before[0].name: missing required key",
    ),
    "gate-bad-name": (
        HEAD + STEP + "    gates_before: [Hosts Monitored]\n",
        "rb.yml:10:20: steps[0].gates_before[0]: 'Hosts Monitored' is not a gate "
        "name like hosts-monitored",
    ),
    "vars-not-mapping": (
        HEAD + STEP + "    vars: [1, 2]\n",
        "rb.yml:10:11: steps[0].vars: expected a mapping, got a list",
    ),
    "unsafe-tag": (
        HEAD + STEP + "    vars: {x: !!python/object:os.system ls}\n",
        "rb.yml:10:15: steps[0].vars.x: unsupported YAML value: could not determine "
        "a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_runbook_is_refused_with_file_line_and_key_path(tmp_path, case):
    text, expected = BAD[case]
    assert error_of(tmp_path, text) == expected


def test_error_carries_its_location(tmp_path):
    with pytest.raises(RunbookError) as info:
        load(tmp_path, HEAD + STEP + "    seral: 2\n")
    error = info.value
    assert (error.file, error.line, error.column, error.key_path) == (
        str(tmp_path / "rb.yml"),
        10,
        5,
        "steps[0].seral",
    )


def test_missing_runbook_file(tmp_path):
    with pytest.raises(RunbookError) as info:
        load_runbook(tmp_path / "nope.yml", playbooks_dir=PLAYBOOKS)
    assert (
        str(info.value) == f"{tmp_path / 'nope.yml'}: cannot read runbook: No such file or "
        "directory"
    )
    assert info.value.line is None


def test_undo_only_step_may_not_have_its_own_undo(tmp_path):
    text = (
        HEAD
        + STEP
        + "    undo: b\n"
        + STEP.replace("id: a", "id: b")
        + "    undo_only: true\n    undo: b\n"
    )
    assert error_of(tmp_path, text) == (
        "rb.yml:16:5: steps[1].undo: not allowed on an undo_only step"
    )


# ------------------------------------------------------------------- does_undo
UNDO_PAIR = (
    HEAD
    + STEP
    + "    undo: release\n"
    + STEP.replace("id: a", "id: release")
    + "    undo_only: true\n"
)


def test_a_step_may_do_the_work_of_an_undo_step(tmp_path):
    runbook = load(
        tmp_path, UNDO_PAIR + STEP.replace("id: a", "id: release-now") + "    does_undo: release\n"
    )
    assert [(s.id, s.does_undo) for s in runbook.steps] == [
        ("a", None),
        ("release", None),
        ("release-now", "release"),
    ]


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (
            "    does_undo: relase\n",
            "rb.yml:20:16: steps[2].does_undo: step 'now' does the work of 'relase', which is "
            "not an undo_only step of this runbook (did you mean 'release'?)",
        ),
        (
            "    does_undo: a\n",
            "rb.yml:20:16: steps[2].does_undo: step 'now' does the work of 'a', which is not an "
            "undo_only step of this runbook (expected one of: release)",
        ),
        (
            "    serial: 1\n    does_undo: release\n",
            "rb.yml:21:5: steps[2].does_undo: does_undo needs a step that runs on all its hosts at "
            "once (no per_host or serial)",
        ),
    ],
)
def test_does_undo_must_name_an_undo_step_and_cover_all_hosts_at_once(tmp_path, more, message):
    assert error_of(tmp_path, UNDO_PAIR + STEP.replace("id: a", "id: now") + more) == message


def test_an_undo_only_step_may_not_do_another_undo(tmp_path):
    text = UNDO_PAIR + "    does_undo: release\n"
    assert error_of(tmp_path, text) == (
        "rb.yml:16:5: steps[1].does_undo: not allowed on an undo_only step"
    )
