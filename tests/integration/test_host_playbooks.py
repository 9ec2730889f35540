"""The gather, Puppet and node playbooks against this machine as a 3.x-era host.

Real ansible-runner, ``connection: local``, and the lab's Python 2.7 as the host's interpreter
when it is fetched (else this venv's Python): the modules travel and run as on a Debian 7 host.
What a 2012 host has that this machine has not is a small stand-in under the test's own
directory: Puppet 2.7 (an empty puppetdlock, no message) or 3.x (agent_disabled.lock with
JSON), apt-get and dpkg-query without python-apt. Pacemaker is this machine's, on an offline
CIB (tests/support/site.write_cib).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.site import write_cib
from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.gates import observe, verdicts
from upgrader.gates.gather import HostObserver
from upgrader.lab.python2 import interpreter

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
PY27 = interpreter()
HOST_PYTHON = str(PY27 or sys.executable)


def play(tmp_path: Path, playbook: str, *, check: bool = False, **hostvars: Any) -> PlaybookOutcome:
    """``playbook`` on one local host, ``h1``, whose inventory variables are ``hostvars``."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": HOST_PYTHON}
    group = {"hosts": {"h1": {**local, **hostvars}}}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"children": {"hypervisors": group, "frontends": group}}})
    )
    runs = sorted(tmp_path.glob("pdd-*"))
    return run_playbook(
        PlaybookCall(
            step_id="test",
            playbook=PLAYBOOKS / playbook,
            project_dir=PLAYBOOKS,
            inventory=inventory,
            private_data_dir=tmp_path / f"pdd-{len(runs)}",
            check=check,
            timeout=240,
        )
    )


def changed_tasks(outcome: PlaybookOutcome) -> list[str]:
    return [c.task for c in outcome.changed]


def stand_in(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------ the gather play


def test_the_gather_play_reads_a_python_27_host_with_the_commands_of_its_time(tmp_path):
    if shutil.which("crm_mon") is None or shutil.which("cibadmin") is None:
        pytest.skip("no Pacemaker tools here (crm_mon, cibadmin)")
    cib = write_cib(tmp_path / "cib.xml", ["h1", "h2"])
    local = {"ansible_connection": "local", "ansible_python_interpreter": HOST_PYTHON}
    inventory = tmp_path / "inventory.yml"

    def gather(**extra: Any) -> Any:
        host = {**local, "one_datastore_path": "/", "one_cib_file": str(cib),
                "onedb_version_command": "echo 3.2.1", **extra}  # fmt: skip
        inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "children": {
                            g: {"hosts": {"h1": host}} for g in ("hypervisors", "frontends")
                        }
                    }
                }
            )
        )
        return HostObserver(inventory, PLAYBOOKS).gather(fresh=True)

    seen = gather()
    hv, fe = seen.hypervisors["h1"], seen.frontends["h1"]
    assert hv is not None and fe is not None
    # the datastore path is / here: mounted there, with its size, from mountinfo and statvfs
    mount = observe.datastore_observation(_NoOned(), seen).mounts[0]
    assert (mount.mounted, mount.writable) == (True, True) and mount.size_bytes
    agents = observe.puppet_observation(seen.hypervisors).agents
    assert [(a.host, a.disabled) for a in agents] == [("h1", False)]
    # Pacemaker as crm_mon --as-xml says it, and as --output-as=xml does: the same cluster
    legacy = observe.pacemaker_observation(seen)
    assert fe["crm_mon"].lstrip().startswith("<crm_mon")
    assert verdicts.pacemaker_healthy(legacy).verdict == "pass"
    fencing = verdicts.fencing_ready(observe.fencing_observation(seen))
    assert fencing.verdict == "pass", fencing.evidence["summary"]
    newer = gather(
        crm_mon_command="crm_mon --one-shot --output-as=xml --fence-history=1",
        libvirtd_service="upgrader-test-no-such-service",
    )
    assert newer.frontends["h1"]["crm_mon"].lstrip().startswith("<pacemaker-result")
    assert observe.pacemaker_observation(newer) == legacy
    # libvirtd_service names the init script the gates ask (here one this host lacks)
    assert newer.hypervisors["h1"]["libvirtd_rc"] == 127


class _NoOned:
    """oned is not asked here: only the mounts are judged."""

    def detect_version(self) -> str:
        return "3.2"


# ------------------------------------------------------------------ Puppet


def puppet_27(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Puppet 2.7's agent as a site's tools use it: an empty puppetdlock while disabled, and
    no --disable while a run holds the lock (it then names the run's pid)."""
    lock = tmp_path / "state" / "puppetdlock"
    puppet = stand_in(
        tmp_path / "bin" / "puppet",
        f'LOCK="{lock}"\n'
        'case "$1 $2" in\n'
        '  "agent --disable")\n'
        '    if [ -s "$LOCK" ] && kill -0 "$(cat "$LOCK")" 2>/dev/null; then exit 0; fi\n'
        '    mkdir -p "$(dirname "$LOCK")" && : >"$LOCK" ;;\n'
        '  "agent --enable") [ -s "$LOCK" ] || rm -f "$LOCK" ;;\n'
        "  *) exit 1 ;;\n"
        "esac",
    )
    return lock, {"puppet_command": str(puppet), "puppet_disabled_lock": str(lock)}


def puppet_3(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Puppet 3.x's agent: agent_disabled.lock holds the message as JSON."""
    lock = tmp_path / "state" / "agent_disabled.lock"
    puppet = stand_in(
        tmp_path / "bin" / "puppet",
        f'LOCK="{lock}"\n'
        'case "$1 $2" in\n'
        '  "agent --disable")\n'
        '    [ -e "$LOCK" ] && exit 0\n'
        '    mkdir -p "$(dirname "$LOCK")"\n'
        '    printf \'{"disabled_message":"%s"}\' "${3-reason not specified}" >"$LOCK" ;;\n'
        '  "agent --enable") rm -f "$LOCK" ;;\n'
        "  *) exit 1 ;;\n"
        "esac",
    )
    return lock, {"puppet_command": str(puppet), "puppet_disabled_lock": str(lock)}


def gate_sees(lock: Path, run_id: str) -> tuple[str, str]:
    """puppet-held's verdict and the reason it read, as the gather play's probe reads the lock."""
    args = lock.parent.parent / "probe-args"
    args.write_text(json.dumps({"puppet": {"locks": [str(lock)], "run_locks": []}}))
    done = subprocess.run(
        [HOST_PYTHON, str(PLAYBOOKS / "library" / "upgrader_probe.py"), str(args)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    obs = observe.puppet_observation({"h1": {"puppet": json.loads(done.stdout)["puppet"]}})
    return str(verdicts.puppet_held(obs, run_id=run_id).verdict), obs.agents[0].reason


def test_a_puppet_27_hold_names_the_run_in_a_note_the_gate_reads_and_the_release_removes(
    tmp_path,
):
    lock, hostvars = puppet_27(tmp_path)
    note = Path(f"{lock}.upgrader")
    held = play(tmp_path, "puppet-hold.yml", upgrader_run_id="R1", **hostvars)
    assert held.ok, held.failures
    assert lock.read_text() == "" and json.loads(note.read_text())["disabled_message"] == (
        "upgrader run R1"
    )
    assert gate_sees(lock, "R1") == ("pass", "upgrader run R1")
    again = play(tmp_path, "puppet-hold.yml", upgrader_run_id="R1", **hostvars)
    assert again.ok and changed_tasks(again) == []  # a resumed run knows its own hold
    other = play(tmp_path, "puppet-hold.yml", upgrader_run_id="R2", **hostvars)
    assert not other.ok
    assert "already disabled by someone else: 'upgrader run R1'" in " ".join(other.failures)
    released = play(tmp_path, "puppet-release.yml", upgrader_run_id="R1", **hostvars)
    assert released.ok, released.failures
    assert not lock.exists() and not note.exists()


def test_someone_elses_puppet_27_hold_is_refused_or_taken_over_and_given_back(tmp_path):
    lock, hostvars = puppet_27(tmp_path)
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # disabled by hand: Puppet 2.7 keeps no reason
    refused = play(tmp_path, "puppet-hold.yml", upgrader_run_id="R1", **hostvars)
    assert not refused.ok and lock.read_text() == ""
    assert "already disabled by someone else: '(no reason given)'" in " ".join(refused.failures)
    taken = play(
        tmp_path, "puppet-hold.yml", upgrader_run_id="R1", puppet_take_over_holds=True, **hostvars
    )
    assert taken.ok, taken.failures
    assert gate_sees(lock, "R1") == ("pass", "upgrader run R1; taken over from: ")
    released = play(tmp_path, "puppet-release.yml", upgrader_run_id="R1", **hostvars)
    assert released.ok, released.failures
    assert lock.exists() and lock.read_text() == ""  # their hold is back
    assert not Path(f"{lock}.upgrader").exists()


def test_a_puppet_27_run_under_way_is_waited_for_then_the_agent_is_held(tmp_path):
    lock, hostvars = puppet_27(tmp_path)
    lock.parent.mkdir(parents=True)
    run = subprocess.Popen(["sh", "-c", f'echo $$ >"{lock}"; sleep 3; rm -f "{lock}"'])
    try:
        held = play(
            tmp_path, "puppet-hold.yml", upgrader_run_id="R1", puppet_run_wait=60, **hostvars
        )
    finally:
        run.wait(timeout=30)
    assert held.ok, held.failures
    assert lock.read_text() == "" and gate_sees(lock, "R1")[0] == "pass"


def test_a_puppet_3_hold_taken_over_is_given_back_with_its_owners_message(tmp_path):
    lock, hostvars = puppet_3(tmp_path)
    lock.parent.mkdir(parents=True)
    lock.write_text('{"disabled_message":"kernel freeze (JIRA-42)"}')
    dry = play(tmp_path, "puppet-hold.yml", check=True, upgrader_run_id="R1",
               puppet_take_over_holds=True, **hostvars)  # fmt: skip
    assert dry.ok and json.loads(lock.read_text())["disabled_message"] == "kernel freeze (JIRA-42)"
    taken = play(
        tmp_path, "puppet-hold.yml", upgrader_run_id="R1", puppet_take_over_holds=True, **hostvars
    )
    assert taken.ok, taken.failures
    assert json.loads(lock.read_text())["disabled_message"] == (
        "upgrader run R1; taken over from: kernel freeze (JIRA-42)"
    )
    assert not Path(f"{lock}.upgrader").exists()  # Puppet 3 keeps the reason itself
    released = play(tmp_path, "puppet-release.yml", upgrader_run_id="R1", **hostvars)
    assert released.ok, released.failures
    assert json.loads(lock.read_text())["disabled_message"] == "kernel freeze (JIRA-42)"


# ------------------------------------------------------------------ the node package


@pytest.fixture
def no_python_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """apt-get (of Debian 7: apt 0.9) and dpkg-query answering from files under tmp_path; the
    host's Python has no python-apt. apt-get's calls are logged, one line each."""
    state = tmp_path / "dpkg"
    state.mkdir()
    (state / "available").write_text("3.2.1-1\n3.4.1-1\n")
    (state / "opennebula-node").write_text("3.2.1-1")
    bin_dir = tmp_path / "bin"
    stand_in(
        bin_dir / "dpkg-query",
        f'f="{state}/${{@: -1}}"\n'
        '[ -f "$f" ] || { echo "dpkg-query: no packages found matching ${@: -1}" >&2; exit 1; }\n'
        'cat "$f"',
    )
    stand_in(
        bin_dir / "apt-get",
        f'echo "$*" >>"{state}/apt-get.log"\n'
        'case "$1" in\n'
        '  --version) echo "apt 0.9.7.9 for amd64 compiled on Apr  3 2016 19:21:16" ;;\n'
        "  update) ;;\n"
        "  install)\n"
        '    want="${@: -1}"; pkg="${want%%=*}"; version="${want#*=}"\n'
        f'    grep -qx "$version" "{state}/available" || {{\n'
        "      echo \"E: Version '$version' for '$pkg' was not found\" >&2; exit 100; }\n"
        '    case " $* " in *" --simulate "*) echo "Inst $pkg [$version]"; exit 0 ;; esac\n'
        f'    printf %s "$version" >"{state}/$pkg" ;;\n'
        "esac",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


NODE = {"libvirtd_restart_command": "true", "libvirtd_status_command": "true"}


def apt_calls(state: Path) -> list[str]:
    log = state / "apt-get.log"
    return [line for line in log.read_text().splitlines() if line != "--version"]


def test_the_node_package_installs_exactly_its_version_without_python_apt(tmp_path, no_python_apt):
    state = no_python_apt
    done = play(tmp_path, "node-upgrade.yml", one_package_version="3.4.1-1", **NODE)
    assert done.ok, done.failures
    assert (state / "opennebula-node").read_text() == "3.4.1-1"
    assert apt_calls(state) == [
        "update -q",
        "install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
        "opennebula-node=3.4.1-1",
    ]
    again = play(tmp_path, "node-upgrade.yml", one_package_version="3.4.1-1", **NODE)
    assert again.ok and "Install the package at exactly its version with apt-get" not in (
        changed_tasks(again)
    )
    assert len(apt_calls(state)) == 3  # only the lists were refreshed


def test_a_node_package_downgrade_is_simulated_in_check_mode_then_done(tmp_path, no_python_apt):
    state = no_python_apt
    (state / "opennebula-node").write_text("3.4.1-1")
    dry = play(tmp_path, "node-upgrade.yml", check=True, one_package_version="3.2.1-1", **NODE)
    assert dry.ok, dry.failures
    assert "Install the package at exactly its version with apt-get" in changed_tasks(dry)
    assert (state / "opennebula-node").read_text() == "3.4.1-1"  # nothing changed
    assert apt_calls(state)[-1].endswith("--simulate --force-yes opennebula-node=3.2.1-1")
    done = play(tmp_path, "node-upgrade.yml", one_package_version="3.2.1-1", **NODE)
    assert done.ok, done.failures
    assert (state / "opennebula-node").read_text() == "3.2.1-1"
    assert "--force-yes opennebula-node=3.2.1-1" in apt_calls(state)[-1]  # apt 0.9's downgrade


def test_a_node_package_version_the_repository_lacks_stops_the_batch(tmp_path, no_python_apt):
    done = play(tmp_path, "node-upgrade.yml", one_package_version="3.9.9-1", **NODE)
    assert not done.ok
    assert "Version '3.9.9-1' for 'opennebula-node' was not found" in " ".join(done.failures)
    assert (no_python_apt / "opennebula-node").read_text() == "3.2.1-1"


# ------------------------------------------------------------------ oned.conf


def test_oned_conf_facts_runs_on_the_host_as_ansible_sends_it(tmp_path):
    """An AnsibleModule module: ansible-core 2.16 wraps it with its module_utils (AnsiballZ)
    and runs it with the host's Python."""
    conf = tmp_path / "oned.conf"
    conf.write_text('PORT = 2634\nDB = [ backend = "mysql", passwd = "s3cr#t" ]\n')
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "h1", "-i", "h1,", "-c", "local",
         "-m", "oned_conf_facts", "-a", f"path={conf}",
         "-e", f"ansible_python_interpreter={HOST_PYTHON}", "--one-line"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(PLAYBOOKS.parent / "ansible.cfg"),
             "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.split("=>", 1)[1])
    assert result["attributes"] == {
        "PORT": ["2634"],
        "DB": [{"backend": "mysql", "passwd": "s3cr#t"}],
    }
