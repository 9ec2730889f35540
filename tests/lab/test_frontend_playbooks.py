"""The front-end playbooks on the lab's staging cloud: backup, upgrade 3.2.1 -> 3.4.1, restore.

Real ansible-runner over SSH, the lab's apt repository, its onedb and oned simulator. onedb
refuses a 3.2 database with active VMs, so each test first finalizes the staging VMs through
XML-RPC; the ``staging`` fixture then puts the cloud back as it found it (package 3.2.1,
its oned.conf, its database and hypervisor view, oned running).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab.test_lab import client
from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.lab import hosts as hs
from upgrader.opennebula import OneClient
from upgrader.opennebula.writes import vm_action, vm_allocate

# Each test runs two or three playbooks over SSH and puts the packages back: minutes each.
pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
CONF = "/etc/one/oned.conf"
BACKUP_ROOT = "/var/lib/one/upgrader-backups"
DB_SECRET = "fe-db-" + uuid.uuid4().hex[:12]
# A site's changes to the 3.2 file: values that differ from what any lab package ships.
SITE_CHANGES = {
    "HOST_MONITORING_INTERVAL = 60\n": "HOST_MONITORING_INTERVAL = 123\n",
    'DB = [ backend = "sqlite" ]\n': f'DB = [ backend = "sqlite", passwd = "{DB_SECRET}" ]\n',
}
SITE_LINES = (
    'MAC_PREFIX = "02:01"\n'
    'VM_HOOK = [ name = "on_failure", on = "FAILED", command = "/usr/bin/logger",\n'
    '            arguments = "vm $VMID failed" ]\n'
)


def _load_parser():
    path = PLAYBOOKS / "library" / "oned_conf_facts.py"
    spec = importlib.util.spec_from_file_location("oned_conf_facts_lab", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse


parse_conf = _load_parser()


@dataclass
class Staging:
    """The staging cloud of the lab, as the tests drive it."""

    lab: dict
    tmp: Path
    hosts: list[str]
    ip: str
    db: Path
    runs: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def fe(self) -> str:
        return self.hosts[0]

    def sh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return hs.enter(self.lab["dir"], host, "sh", "-c", command, check=False, timeout=120)

    def out(self, host: str, command: str) -> str:
        return self.sh(host, command).stdout

    def play(self, playbook: str, *, check: bool = False, **extra: object) -> PlaybookOutcome:
        self.runs += 1
        call = PlaybookCall(
            step_id=playbook.removesuffix(".yml"),
            playbook=PLAYBOOKS / playbook,
            project_dir=PLAYBOOKS,
            inventory=self.lab["dir"] / "inventory" / "staging.yml",
            private_data_dir=self.tmp / f"pdd-{self.runs:02d}",
            extra_vars=extra,
            check=check,
            diff=check,  # as a dry run calls it
            timeout=600,
        )
        return run_playbook(call, on_event=self._note)

    def _note(self, event) -> None:
        if event.get("event") == "runner_on_failed" and event.get("msg"):
            self.failures.append(str(event["msg"]))

    def artifacts_text(self, n: int) -> str:
        root = self.tmp / f"pdd-{n:02d}" / "artifacts"
        return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())

    def answers(self) -> bool:
        try:
            with socket.create_connection((self.ip, 2633), timeout=1):
                return True
        except OSError:
            return False

    def client(self) -> OneClient:
        return client(self.lab, "staging")

    def db_version(self) -> str:
        return self.out(self.fe, f"onedb version -s {self.db_in_host}").strip()

    @property
    def db_in_host(self) -> str:
        return "/srv/lab/staging/one/one.db"


def _stop_oned(st: Staging) -> None:
    st.sh(st.fe, "/etc/init.d/opennebula stop")


def _start_oned(st: Staging) -> None:
    result = st.sh(st.fe, "/etc/init.d/opennebula start")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30
    while not st.answers():
        assert time.monotonic() < deadline, "oned did not answer after the test"
        time.sleep(0.2)


def _finalize_vms(st: Staging) -> None:
    one = st.client()
    for vm in one.vm_pool():
        vm_action(one, "finalize", vm.id)
    deadline = time.monotonic() + 30
    while one.vm_pool():
        assert time.monotonic() < deadline, "the staging VMs did not finalize"
        time.sleep(0.2)


@pytest.fixture
def staging(lab, tmp_path) -> Iterator[Staging]:
    """Staging with its VMs finalized; afterwards back to package 3.2.1, its DB and files."""
    hosts = [h.name for h in lab["spec"].hosts if h.cloud == "staging"]
    ip = next(h.ip for h in lab["spec"].hosts if h.name == hosts[0])
    share = lab["dir"] / "share" / "staging"
    st = Staging(lab, tmp_path, hosts, ip, share / "one" / "one.db")
    saved = tmp_path / "saved"
    saved.mkdir()
    _stop_oned(st)
    shutil.copy2(st.db, saved / "one.db")
    shutil.copytree(share / "virt", saved / "virt")
    confs = {h: st.out(h, f"cat {CONF}") for h in hosts}
    _start_oned(st)
    _finalize_vms(st)
    try:
        yield st
    finally:
        _stop_oned(st)
        for h in hosts:
            st.sh(
                h,
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "
                "-o Dpkg::Options::=--force-confold opennebula=3.2.1-1 >/dev/null; "
                f"rm -rf {BACKUP_ROOT} /etc/one/oned.conf.*",
            )
            _write_file(st, h, CONF, confs[h])
        for leftover in st.db.parent.glob("one.db-*"):
            leftover.unlink()
        shutil.copy2(saved / "one.db", st.db)
        shutil.rmtree(share / "virt")
        shutil.copytree(saved / "virt", share / "virt")
        _start_oned(st)


def _write_file(st: Staging, host: str, path: str, text: str) -> None:
    """Write ``text`` to ``path`` inside a lab host."""
    hs.enter(st.lab["dir"], host, "sh", "-c", f"cat > {path}", input=text, timeout=30)


def _add_site_values(st: Staging) -> None:
    for h in st.hosts:
        text = st.out(h, f"cat {CONF}")
        for before, after in SITE_CHANGES.items():
            assert before in text
            text = text.replace(before, after)
        _write_file(st, h, CONF, text + SITE_LINES)


def _sha256_in_host(st: Staging, host: str, path: str) -> str:
    return st.out(host, f"sha256sum {path}").split()[0]


def _run_id(tag: str) -> str:
    return f"t-{tag}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- backup
def test_backup_records_checksums_that_match_the_files(staging):
    st = staging
    run_id = _run_id("backup")
    dest = st.tmp / "manifests"
    dest.mkdir()

    outcome = st.play(
        "frontend-backup.yml", upgrader_run_id=run_id, upgrader_backup_manifest_dest=str(dest)
    )

    assert outcome.ok, outcome.stdout_tail
    manifests = {h: json.loads((dest / f"{h}.json").read_text()) for h in st.hosts}
    first = manifests[st.fe]
    assert first["run_id"] == run_id
    assert first["db_version"] == "3.2.1"
    assert first["package_version"] == "3.2.1-1"
    assert set(first["files"]) == {"db", "conf"}
    assert set(manifests[st.hosts[1]]["files"]) == {"conf"}  # the DB is backed up once
    for host, manifest in manifests.items():
        for entry in manifest["files"].values():
            assert entry["path"].startswith(f"{BACKUP_ROOT}/{run_id}/")
            assert _sha256_in_host(st, host, entry["path"]) == entry["sha256"]
    db_backup = first["files"]["db"]["path"]
    assert st.out(st.fe, f"onedb version -s {db_backup}").strip() == "3.2.1"
    assert "etc/one/oned.conf" in st.out(st.fe, f"tar tzf {first['files']['conf']['path']}").split()
    # The checksums are printed (sha256sum format) and handed back as artifact data.
    text = st.artifacts_text(st.runs)
    assert f"{first['files']['db']['sha256']}  {db_backup}" in text
    stats = [
        json.loads(p.read_text())
        for p in (st.tmp / f"pdd-{st.runs:02d}" / "artifacts").rglob("job_events/*.json")
    ]
    recap = next(e for e in stats if e.get("event") == "playbook_on_stats")
    assert recap["event_data"]["artifact_data"]["upgrader_backup"] == manifests


def test_backup_refuses_with_the_numbers_when_the_space_does_not_fit(staging):
    st = staging
    outcome = st.play(
        "frontend-backup.yml", upgrader_run_id=_run_id("full"), backup_space_margin_mb=10_000_000
    )

    assert not outcome.ok
    assert any("not enough free space for the backup" in m and "MiB" in m for m in st.failures), (
        st.failures
    )
    assert "upgrader-backups" not in st.out(st.fe, "ls /var/lib/one")


def test_a_bad_run_id_is_refused_in_one_line(staging):
    st = staging
    outcome = st.play("frontend-backup.yml", upgrader_run_id="../../etc")

    assert not outcome.ok
    assert any(m.startswith("upgrader_run_id must be given") for m in st.failures)


# -------------------------------------------------------------------- upgrade and restore
def test_upgrade_to_341_carries_the_site_values_and_restore_brings_back_321(staging):
    st = staging
    _add_site_values(st)
    old_conf = st.out(st.fe, f"cat {CONF}")
    run_id = _run_id("up")
    assert st.play("frontend-backup.yml", upgrader_run_id=run_id).ok

    outcome = st.play(
        "frontend-upgrade.yml",
        upgrader_run_id=run_id,
        one_release="3.4.1",
        one_package_version="3.4.1-1",
    )

    assert outcome.ok, (outcome.stdout_tail, st.failures)
    for h in st.hosts:
        assert "OpenNebula 3.4.1 " in st.out(h, "oned -v")
    assert st.db_version() == "3.4.1"
    assert st.answers()
    assert str(st.client().detect_version()) == "3.4"
    conf = parse_conf(st.out(st.fe, f"cat {CONF}"))
    assert conf["DATASTORE_LOCATION"] == ["/var/lib/one/datastores"]
    assert conf["PORT"] == ["2633"]
    assert conf["HOST_MONITORING_INTERVAL"] == ["123"]
    assert conf["MAC_PREFIX"] == ["02:01"]
    assert conf["VM_HOOK"][0]["arguments"] == "vm $VMID failed"
    assert conf["HOST_HOOK"][0]["command"] == "ft/host_error.rb"
    assert conf["IM_MAD"][0]["name"] == "im_kvm"
    assert conf["DB"] == [{"backend": "sqlite", "passwd": DB_SECRET}]
    assert conf["TM_MAD"] == [
        {"executable": "one_tm", "arguments": "-t 15 -d dummy,shared,qcow2,ssh,vmware,iscsi"}
    ]
    assert "DATASTORE_MAD" in conf
    assert "VM_DIR" not in conf and "IMAGE_MAD" not in conf
    assert st.out(st.fe, f"cat {CONF}.{run_id}-3.2.1") == old_conf
    # The database password in oned.conf never reaches the output.
    assert DB_SECRET not in st.artifacts_text(st.runs)

    outcome = st.play("frontend-restore.yml", upgrader_run_id=run_id)

    assert outcome.ok, (outcome.stdout_tail, st.failures)
    for h in st.hosts:
        assert "OpenNebula 3.2.1 " in st.out(h, "oned -v")
    assert st.db_version() == "3.2.1"
    assert st.answers()
    assert str(st.client().detect_version()) == "3.2"
    assert st.out(st.fe, f"cat {CONF}") == old_conf
    assert DB_SECRET not in st.artifacts_text(st.runs)


def test_a_database_the_upgrade_leaves_short_fails_naming_both_versions(staging):
    st = staging
    run_id = _run_id("short")
    assert st.play("frontend-backup.yml", upgrader_run_id=run_id).ok
    # A database a newer 3.4.x onedb touched: the 3.4.1 onedb has no migrator for it and
    # says "Database already uses version 3.4.2" (opennebula-3x.md 4.2).
    with sqlite3.connect(st.db) as db:
        db.execute(
            "INSERT INTO db_versioning (version, timestamp, comment) VALUES (?, ?, ?)",
            ("3.4.2", int(time.time()), "stamped by a test"),
        )

    outcome = st.play(
        "frontend-upgrade.yml",
        upgrader_run_id=run_id,
        one_release="3.4.1",
        one_package_version="3.4.1-1",
    )

    assert not outcome.ok
    assert outcome.failed_hosts == (st.fe,)
    message = next(m for m in st.failures if m.startswith("database version"))
    assert "database version 3.4.2 after onedb upgrade" in message
    assert "OpenNebula 3.4.1 needs 3.4.1" in message
    assert "oned left stopped" in message
    assert "oned is not running" in st.out(st.fe, "/etc/init.d/opennebula status")
    assert not st.answers()

    # The undo after the failure: the backed-up database and package, oned up again.
    outcome = st.play("frontend-restore.yml", upgrader_run_id=run_id)

    assert outcome.ok, (outcome.stdout_tail, st.failures)
    assert st.db_version() == "3.2.1"
    assert "OpenNebula 3.2.1 " in st.out(st.fe, "oned -v")
    assert st.answers()


def test_an_upgrade_onedb_refuses_fails_naming_both_versions_and_oned_stays_down(staging):
    st = staging
    one = st.client()
    held = vm_allocate(one, 'NAME = "fe-held"\nCPU = 0.1\nMEMORY = 64\n')
    vm_action(one, "hold", held)
    run_id = _run_id("refused")
    assert st.play("frontend-backup.yml", upgrader_run_id=run_id).ok

    outcome = st.play(
        "frontend-upgrade.yml",
        upgrader_run_id=run_id,
        one_release="3.4.1",
        one_package_version="3.4.1-1",
    )

    assert not outcome.ok
    message = next(m for m in st.failures if m.startswith("database version"))
    assert "database version 3.2.1 after onedb upgrade (from 3.2.1)" in message
    assert "OpenNebula 3.4.1 needs 3.4.1" in message
    assert "exited 255" in message
    assert not st.answers()

    outcome = st.play("frontend-restore.yml", upgrader_run_id=run_id)

    assert outcome.ok, (outcome.stdout_tail, st.failures)
    assert st.db_version() == "3.2.1"
    assert st.answers()
    # onedb put its own backup back; the restore kept that database (and the held VM).
    assert [vm.name for vm in st.client().vm_pool()] == ["fe-held"]


def test_check_mode_runs_every_playbook_and_changes_nothing(staging):
    st = staging
    _add_site_values(st)
    run_id = _run_id("check")
    conf = st.out(st.fe, f"cat {CONF}")

    for playbook, extra in (
        ("frontend-backup.yml", {}),
        ("frontend-upgrade.yml", {"one_release": "3.4.1", "one_package_version": "3.4.1-1"}),
        ("frontend-restore.yml", {"one_previous_package_version": "3.2.1-1"}),
    ):
        outcome = st.play(playbook, check=True, upgrader_run_id=run_id, **extra)
        assert outcome.ok, (playbook, outcome.stdout_tail, st.failures)

    assert "OpenNebula 3.2.1 " in st.out(st.fe, "oned -v")
    assert st.db_version() == "3.2.1"
    assert st.out(st.fe, f"cat {CONF}") == conf
    assert "upgrader-backups" not in st.out(st.fe, "ls /var/lib/one")
    assert st.answers()
    for n in range(1, st.runs + 1):  # not even in the diffs of a dry run
        assert DB_SECRET not in st.artifacts_text(n)


def test_two_hops_in_one_run_keep_a_backup_each_and_restore_undoes_the_last(staging):
    st = staging
    run_id = _run_id("hops")
    for release in ("3.4.1", "3.6.0"):
        assert st.play("frontend-backup.yml", upgrader_run_id=run_id).ok
        outcome = st.play(
            "frontend-upgrade.yml",
            upgrader_run_id=run_id,
            one_release=release,
            one_package_version=f"{release}-1",
        )
        assert outcome.ok, (release, outcome.stdout_tail, st.failures)

    assert "OpenNebula 3.6.0 " in st.out(st.fe, "oned -v")
    assert st.db_version() == "3.6.0"
    assert str(st.client().detect_version()) == "3.6"
    conf = parse_conf(st.out(st.fe, f"cat {CONF}"))
    assert conf["AUTH_MAD"] == [
        {"executable": "one_auth_mad", "authn": "ssh,x509,ldap,server_cipher,server_x509"}
    ]
    assert "lvm" in conf["TM_MAD"][0]["arguments"].split()[-1].split(",")
    assert "DISK/SOURCE" not in conf["VM_RESTRICTED_ATTR"]
    kept = st.out(st.fe, "ls /etc/one").split()
    assert {f"oned.conf.{run_id}-3.2.1", f"oned.conf.{run_id}-3.4.1"} <= set(kept)
    backups = st.out(st.fe, f"ls {BACKUP_ROOT}/{run_id}").split()
    assert {"one.db-3.2.1.bck", "one.db-3.4.1.bck"} <= set(backups)

    outcome = st.play("frontend-restore.yml", upgrader_run_id=run_id)

    assert outcome.ok, (outcome.stdout_tail, st.failures)
    assert "OpenNebula 3.4.1 " in st.out(st.fe, "oned -v")
    assert st.db_version() == "3.4.1"
    assert str(st.client().detect_version()) == "3.4"
    assert st.out(st.fe, f"cat {CONF}") == st.out(st.fe, f"cat {CONF}.{run_id}-3.4.1")


# ----------------------------------------------------------------------------- lint
def test_the_playbooks_pass_ansible_lint_with_the_project_config():
    lint = Path(sys.executable).parent / "ansible-lint"
    result = subprocess.run(
        [str(lint), "--nocolor", "playbooks/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
