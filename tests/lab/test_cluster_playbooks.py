"""The cluster playbooks on the lab's staging cloud, through the real adapter and real tools:
Puppet's hold and release (``puppet agent``), Pacemaker's hold and its undo (``crm_attribute``
and ``crm_resource`` on the cloud's CIB) and the node package upgrade (apt, libvirtd's init
script). Every test leaves the lab as it found it. The expectations follow the lab's host
profile: Puppet 2.7 (2012 hosts) keeps no message in its lock, so a hold made by hand names no
reason there, and libvirtd's init script is the profile's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import upgrader
from tests.lab.test_lab import hosts_of
from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.ansible_adapter.runner import REPO_ROOT, run_playbook
from upgrader.lab import hosts as hs
from upgrader.lab import profiles

pytestmark = pytest.mark.lab

PLAYBOOKS = REPO_ROOT / "playbooks"


def play(
    lab,
    tmp_path: Path,
    playbook: str,
    *,
    limit: str | None = None,
    check: bool = False,
    **extra: object,
) -> PlaybookOutcome:
    """One run of ``playbook`` against the staging inventory, as the executor runs a step."""
    return run_playbook(
        PlaybookCall(
            step_id=playbook.removesuffix(".yml"),
            playbook=PLAYBOOKS / playbook,
            project_dir=PLAYBOOKS,
            inventory=lab["dir"] / "inventory" / "staging.yml",
            private_data_dir=tmp_path / f"pdd-{uuid.uuid4().hex[:8]}",
            extra_vars=extra,
            limit=limit,
            check=check,
            diff=check,
            timeout=240,
        )
    )


def stdout_of(tmp_path: Path) -> str:
    """The whole stdout of the test's runs (an outcome keeps only its tail)."""
    return "\n".join(p.read_text() for p in tmp_path.glob("pdd-*/artifacts/*/stdout"))


def sh(lab, host: str, command: str) -> str:
    return hs.enter(lab["dir"], host, "sh", "-c", command, check=False).stdout


def profile_of(lab) -> profiles.HostProfile:
    return profiles.get(lab["spec"].profile)


def puppet_hold_of(lab, host: str) -> str | None:
    """The agent's hold on ``host`` as the product reads it: its reason ("" for a hold that
    names none); None when the agent is enabled."""
    profile = profile_of(lab)
    lock = profile.puppet_lock
    if profile.puppet_message:
        text = sh(lab, host, f"cat {lock} 2>/dev/null")
        return json.loads(text)["disabled_message"] if text.strip() else None
    # Puppet 2.7: an empty puppetdlock (a pid there is a run), the reason in the note a run's
    # hold leaves beside it, naming that very lock
    seen = sh(
        lab,
        host,
        f"test -f {lock} && ! test -s {lock} && stat -c %i:%Y {lock} && "
        f"cat {lock}.upgrader 2>/dev/null",
    )
    if not seen:
        return None
    lock_id, _, note = seen.partition("\n")
    record = json.loads(note) if note.strip() else {}
    return str(record.get("disabled_message", "")) if record.get("lock_id") == lock_id else ""


def by_hand(lab, reason: str) -> str:
    """The reason ``puppet agent --disable REASON`` leaves: none on Puppet 2.7."""
    return reason if profile_of(lab).puppet_message else ""


def libvirtd_status(lab, host: str) -> str:
    return sh(lab, host, f"/etc/init.d/{profile_of(lab).libvirtd_service} status")


def crm(lab, command: str) -> str:
    front = hosts_of(lab, "staging")[0]
    return sh(lab, front, f"CIB_file=/srv/lab/staging/pcmk/cib.xml {command} 2>&1").strip()


def maintenance_mode(lab) -> str:
    return crm(lab, "crm_attribute --type crm_config --name maintenance-mode --query --quiet")


def set_maintenance_mode(lab, value: str) -> None:
    crm(lab, f"crm_attribute --type crm_config --name maintenance-mode --update {value}")


def oned_is_managed(lab) -> str:
    return crm(lab, "crm_resource --resource oned --meta --get-parameter is-managed --quiet")


def node_version(lab, host: str) -> str:
    return sh(lab, host, "dpkg-query --show --showformat='${Version}' opennebula-node")


def pacemaker_gate(lab) -> dict:
    result = upgrader(
        "gates",
        "--stage",
        "--json",
        "--wait",
        "0",
        "--config",
        str(lab["dir"] / "upgrader.yml"),
        "--gate",
        "pacemaker-healthy",
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return {"rc": result.returncode, **json.loads(result.stdout)[0]}


@pytest.fixture
def puppet_enabled_after(lab) -> Iterator[list[str]]:
    """The staging hosts; every agent is enabled again at the end, whatever the test did."""
    staging = hosts_of(lab, "staging")
    assert all(puppet_hold_of(lab, h) is None for h in staging)
    yield staging
    for host in staging:
        hs.enter(lab["dir"], host, "puppet", "agent", "--enable", check=False)


@pytest.fixture
def pacemaker_as_found(lab) -> Iterator[None]:
    assert maintenance_mode(lab) == "false"
    yield
    set_maintenance_mode(lab, "false")
    crm(lab, "crm_resource --resource oned --meta --delete-parameter is-managed")


# ------------------------------------------------------------------------------------ Puppet


def test_hold_names_the_run_on_every_host_and_holding_again_changes_nothing(
    lab, tmp_path, puppet_enabled_after
):
    run_id = "staging-20261124T0100Z"
    first = play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id=run_id)
    assert first.ok, first.stdout_tail
    assert {h: puppet_hold_of(lab, h) for h in puppet_enabled_after} == dict.fromkeys(
        puppet_enabled_after, f"upgrader run {run_id}"
    )

    again = play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id=run_id)  # a resumed run
    assert again.ok, again.stdout_tail
    assert again.changed == ()

    released = play(lab, tmp_path, "puppet-release.yml", upgrader_run_id=run_id)
    assert released.ok, released.stdout_tail
    assert all(puppet_hold_of(lab, h) is None for h in puppet_enabled_after)


def test_a_hold_of_someone_else_stops_the_hold_naming_host_and_reason_before_any_host_is_held(
    lab, tmp_path, puppet_enabled_after
):
    first, other = puppet_enabled_after
    hs.enter(lab["dir"], other, "puppet", "agent", "--disable", "kernel patching, ask Bob")
    theirs = by_hand(lab, "kernel patching, ask Bob")

    refused = play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id="r1")
    assert not refused.ok
    assert refused.failed_hosts == (other,)
    text = stdout_of(tmp_path)
    assert (
        f"{other}: the Puppet agent is already disabled by someone else: "
        f"'{theirs or '(no reason given)'}'" in text
    )
    assert puppet_hold_of(lab, first) is None
    assert puppet_hold_of(lab, other) == theirs

    taken = play(
        lab, tmp_path, "puppet-hold.yml", upgrader_run_id="r1", puppet_take_over_holds=True
    )
    assert taken.ok, taken.stdout_tail
    assert puppet_hold_of(lab, first) == "upgrader run r1"
    assert puppet_hold_of(lab, other) == f"upgrader run r1; taken over from: {theirs}"

    released = play(lab, tmp_path, "puppet-release.yml", upgrader_run_id="r1")
    assert released.ok, released.stdout_tail
    assert puppet_hold_of(lab, first) is None
    assert puppet_hold_of(lab, other) == theirs  # given back


def test_release_lifts_only_this_runs_hold_and_reports_the_other(
    lab, tmp_path, puppet_enabled_after
):
    first, other = puppet_enabled_after
    assert play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id="r2").ok
    hs.enter(lab["dir"], other, "puppet", "agent", "--enable")
    hs.enter(lab["dir"], other, "puppet", "agent", "--disable", "upgrader run r20")
    theirs = by_hand(lab, "upgrader run r20")

    released = play(lab, tmp_path, "puppet-release.yml", upgrader_run_id="r2")
    assert released.ok, released.stdout_tail
    assert puppet_hold_of(lab, first) is None
    assert puppet_hold_of(lab, other) == theirs
    assert (
        f"{other}: the Puppet agent stays disabled, held by someone else: "
        f"'{theirs or '(no reason given)'}'" in stdout_of(tmp_path)
    )


def test_the_hold_waits_for_a_puppet_run_under_way_and_ignores_a_stale_run_lock(
    lab, tmp_path, puppet_enabled_after
):
    other = puppet_enabled_after[-1]
    run_lock = profile_of(lab).puppet_run_lock  # Puppet 2.7's is puppetdlock itself
    try:
        sh(lab, other, f"echo 999999 > {run_lock}")  # left by a run that died
        assert play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id="r3").ok
        assert puppet_hold_of(lab, other) == "upgrader run r3"
        assert play(lab, tmp_path, "puppet-release.yml", upgrader_run_id="r3").ok

        pid = sh(lab, other, "cat /var/run/libvirtd.pid").strip()
        sh(lab, other, f"echo {pid} > {run_lock}")  # a live process holds it
        busy = play(lab, tmp_path, "puppet-hold.yml", upgrader_run_id="r3", puppet_run_wait=5)
        assert not busy.ok
        assert busy.failed_hosts == (other,)
        assert f"{other}: a Puppet run is still under way (pid {pid}) after 5 s" in stdout_of(
            tmp_path
        )
    finally:
        sh(lab, other, f"rm -f {run_lock}")


# --------------------------------------------------------------------------------- Pacemaker


def test_maintenance_on_fails_pacemaker_healthy_and_off_puts_back_the_first_recorded_state(
    lab, tmp_path, pacemaker_as_found
):
    state = tmp_path / "state"
    state.mkdir()
    on = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=True,
        upgrader_state_dir=str(state),
    )
    assert on.ok, on.stdout_tail
    assert maintenance_mode(lab) == "true"
    gate = pacemaker_gate(lab)
    assert gate["rc"] == 1
    assert "maintenance-mode is true, expected false" in gate["evidence"]["summary"]
    before = json.loads((state / "pacemaker-before.json").read_text())
    assert (before["maintenance_mode"], before["oned_is_managed"]) == ("false", None)

    resumed = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=True,
        upgrader_state_dir=str(state),
    )
    assert resumed.ok, resumed.stdout_tail
    assert resumed.changed == ()
    assert json.loads((state / "pacemaker-before.json").read_text()) == before

    off = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=False,
        upgrader_state_dir=str(state),
    )
    assert off.ok, off.stdout_tail
    assert maintenance_mode(lab) == "false"
    assert pacemaker_gate(lab)["rc"] == 0


def test_maintenance_already_on_before_the_run_stays_on_after_the_undo(
    lab, tmp_path, pacemaker_as_found
):
    set_maintenance_mode(lab, "true")
    state = tmp_path / "state"
    state.mkdir()
    for wanted in (True, False):
        outcome = play(
            lab,
            tmp_path,
            "pacemaker-maintenance.yml",
            pacemaker_maintenance=wanted,
            upgrader_state_dir=str(state),
        )
        assert outcome.ok, outcome.stdout_tail
        assert [c.task for c in outcome.changed if c.action == "ansible.builtin.command"] == []
        assert maintenance_mode(lab) == "true"
    assert json.loads((state / "pacemaker-before.json").read_text())["maintenance_mode"] == "true"


def test_unmanaging_oned_and_the_undo_which_removes_the_attribute_again(
    lab, tmp_path, pacemaker_as_found
):
    state = tmp_path / "state"
    state.mkdir()
    assert "not found" in oned_is_managed(lab)
    on = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=True,
        pacemaker_hold="unmanage-oned",
        upgrader_state_dir=str(state),
    )
    assert on.ok, on.stdout_tail
    assert oned_is_managed(lab) == "false"
    assert maintenance_mode(lab) == "false"
    off = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=False,
        pacemaker_hold="unmanage-oned",
        upgrader_state_dir=str(state),
    )
    assert off.ok, off.stdout_tail
    assert "is-managed" not in crm(lab, "cibadmin --query --scope resources")


def test_a_bad_hold_kind_is_refused_in_one_line(lab, tmp_path, pacemaker_as_found):
    outcome = play(
        lab,
        tmp_path,
        "pacemaker-maintenance.yml",
        pacemaker_maintenance=True,
        pacemaker_hold="stop-everything",
        upgrader_state_dir=str(tmp_path),
    )
    assert not outcome.ok
    assert "pacemaker_hold maintenance or unmanage-oned (got stop-everything)" in stdout_of(
        tmp_path
    )
    assert maintenance_mode(lab) == "false"
    assert not (tmp_path / "pacemaker-before.json").exists()


# ------------------------------------------------------------------------------ node upgrade


def test_node_upgrade_on_one_host_installs_the_version_there_only_and_restarts_libvirtd(
    lab, tmp_path
):
    first, other = hosts_of(lab, "staging")
    pid_before = sh(lab, other, "cat /var/run/libvirtd.pid")
    try:
        outcome = play(
            lab, tmp_path, "node-upgrade.yml", limit=other, one_package_version="3.4.1-1"
        )
        assert outcome.ok, outcome.stdout_tail
        assert node_version(lab, other) == "3.4.1-1"
        assert node_version(lab, first) == "3.2.1-1"
        assert "libvirtd is running" in libvirtd_status(lab, other)
        assert sh(lab, other, "cat /var/run/libvirtd.pid") != pid_before  # restarted
        assert "OpenNebula 3.2.1" in sh(lab, other, "oned -v")  # the front-end package untouched
    finally:
        back = play(lab, tmp_path, "node-upgrade.yml", limit=other, one_package_version="3.2.1-1")
    assert back.ok, back.stdout_tail
    assert node_version(lab, other) == "3.2.1-1"
    assert "libvirtd is running" in libvirtd_status(lab, other)


def test_node_upgrade_stops_with_libvirtds_answer_when_it_does_not_come_back(lab, tmp_path):
    other = hosts_of(lab, "staging")[-1]
    try:
        outcome = play(
            lab,
            tmp_path,
            "node-upgrade.yml",
            limit=other,
            one_package_version="3.2.1-1",
            libvirtd_restart_command="/bin/true",
            libvirtd_status_command="/bin/sh -c 'echo libvirtd is hung; exit 3'",
            libvirtd_wait_retries=1,
            libvirtd_wait_delay=1,
        )
        assert not outcome.ok
        assert outcome.failed_hosts == (other,)
        assert f"{other}: libvirtd does not answer after the restart: " in stdout_of(tmp_path)
        assert "exited 3: libvirtd is hung" in stdout_of(tmp_path)
    finally:
        script = f"/etc/init.d/{profile_of(lab).libvirtd_service}"
        hs.enter(lab["dir"], other, script, "start", check=False)


def test_node_upgrade_without_a_version_is_refused_in_one_line(lab, tmp_path):
    outcome = play(lab, tmp_path, "node-upgrade.yml", limit=hosts_of(lab, "staging")[-1])
    assert not outcome.ok
    assert "node-upgrade.yml needs one_package_version" in stdout_of(tmp_path)


# ------------------------------------------------------------------------------- check mode


def test_check_mode_changes_nothing_and_does_not_fail(lab, tmp_path, pacemaker_as_found):
    staging = hosts_of(lab, "staging")
    state = tmp_path / "state"
    state.mkdir()
    pids = {h: sh(lab, h, "cat /var/run/libvirtd.pid") for h in staging}
    runs = [
        ("puppet-hold.yml", {"upgrader_run_id": "dry"}),
        (
            "pacemaker-maintenance.yml",
            {"pacemaker_maintenance": True, "upgrader_state_dir": str(state)},
        ),
        ("node-upgrade.yml", {"one_package_version": "3.4.1-1"}),
        (
            "pacemaker-maintenance.yml",
            {"pacemaker_maintenance": False, "upgrader_state_dir": str(state)},
        ),
        ("puppet-release.yml", {"upgrader_run_id": "dry"}),
    ]
    for playbook, extra in runs:
        outcome = play(lab, tmp_path, playbook, check=True, **extra)
        assert outcome.ok, (playbook, outcome.stdout_tail)
    assert all(puppet_hold_of(lab, h) is None for h in staging)
    assert maintenance_mode(lab) == "false"
    assert list(state.iterdir()) == []
    assert {h: node_version(lab, h) for h in staging} == dict.fromkeys(staging, "3.2.1-1")
    assert {h: sh(lab, h, "cat /var/run/libvirtd.pid") for h in staging} == pids
