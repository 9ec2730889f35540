"""targets-supported for real: playbooks/check-targets.yml through the product's runner on
this machine (local connections), against what Ansible itself then does, and from the command
line: ``upgrader gates`` and a run that stops in its preflight before any step changes a thing.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import oned, site
from upgrader.ansible_adapter.outcome import PlaybookCall
from upgrader.ansible_adapter.runner import run_playbook
from upgrader.config.site import PROJECT_DIR
from upgrader.gates.gather import HostObserver
from upgrader.gates.model import FAIL, PASS
from upgrader.gates.verdicts import targets_supported
from upgrader.lab.python2 import interpreter

PLAYBOOKS = PROJECT_DIR / "playbooks"
LOCAL = {"ansible_connection": "local"}
# Ansible's own answer on each host: whether a module runs, and with which interpreter.
PING = """
- name: Ask every host with a module, as any play would
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
      register: pinged
      ignore_errors: true
    - name: Say what Ansible did
      ansible.builtin.set_stats:
        data:
          pings: "{{ {inventory_hostname: {'ok': pinged is succeeded,
                    'python': pinged.ansible_facts.discovered_interpreter_python | default('')}} }}"
        aggregate: true
"""


def inventory(tmp_path: Path, groups: dict[str, dict[str, dict[str, object]]]) -> Path:
    path = tmp_path / "inventory.yml"
    children = {group: {"hosts": hosts} for group, hosts in groups.items()}
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return path


def check(inventory_file: Path):
    return targets_supported(HostObserver(inventory_file, PLAYBOOKS).targets())


def stand_in(tmp_path: Path, name: str, body: str) -> str:
    return str(site.stand_in(tmp_path / "bin" / name, body))


def test_the_check_passes_on_this_machine_with_the_interpreter_the_inventory_names(tmp_path):
    puppet = stand_in(tmp_path, "puppet", "echo 3.8.7")
    here = {**LOCAL, "ansible_python_interpreter": sys.executable, "puppet_command": puppet}
    hosts = {
        "frontends": {"node01": here},
        "hypervisors": {"node01": here, "node02": {**here, "libvirtd_status_command": "true"}},
    }
    hosts["hypervisors"]["node01"] = {**here, "libvirtd_status_command": "true"}
    result = check(inventory(tmp_path, hosts))
    assert result.verdict == PASS, result.evidence["summary"]
    version = platform.python_version()
    assert result.evidence["summary"].startswith(f"2 hosts can be managed: Python {version} on 2")
    seen = result.evidence["hosts"]["node01"]
    assert seen["python"] == sys.executable and seen["python_by"] == "ansible_python_interpreter"
    assert seen["roles"] == ["frontends", "hypervisors", "puppet"]
    assert seen["puppet"] == "3.8.7" and seen["crm_mon"].startswith("Pacemaker ")


def test_a_missing_interpreter_fails_naming_the_host_before_any_module_runs(tmp_path):
    good = {**LOCAL, "ansible_python_interpreter": sys.executable}
    hosts = {
        "nfs_servers": {
            "node01": good,
            "node02": {**LOCAL, "ansible_python_interpreter": "/nonexistent/bin/python2.7"},
        }
    }
    result = check(inventory(tmp_path, hosts))
    assert result.verdict == FAIL
    line = result.evidence["summary"]
    assert line.startswith(
        "node02: ansible_python_interpreter /nonexistent/bin/python2.7 not found; point it at "
        "a Python 2.7 or 3.6+"
    )
    assert "node01" not in line and "\n" not in line


@pytest.mark.skipif(
    interpreter() is None, reason="no Python 2.7 (python -m upgrader.lab.python2 fetch)"
)
def test_python_27_is_supported(tmp_path):
    python2 = {**LOCAL, "ansible_python_interpreter": str(interpreter())}
    result = check(inventory(tmp_path, {"nfs_servers": {"old": python2}}))
    assert result.verdict == PASS and "Python 2.7.18 on 1" in result.evidence["summary"]


def test_the_interpreter_it_names_is_the_one_ansible_uses(tmp_path):
    """Beside the check play, a module on the same hosts: where the check passes a host, the
    module runs there with the interpreter the check named; where it fails one, so does the
    module. Discovery really looks (no interpreter set), and one host hides every Python from
    it (the names it looks for, as the lab's no-python fault does by moving them aside)."""
    old = stand_in(tmp_path, "python2.6", "echo 2.6.6")  # answers anything with a version
    hosts = {
        "discovered": LOCAL,
        "set": {**LOCAL, "ansible_python_interpreter": sys.executable},
        "hidden": {
            **LOCAL,
            "ansible_interpreter_python_fallback": ["python-moved", "/nope/python"],
        },
        "missing": {**LOCAL, "ansible_python_interpreter": "/nonexistent/python"},
        "old": {**LOCAL, "ansible_python_interpreter": old},
    }
    inv = inventory(tmp_path, {"nfs_servers": hosts})
    result = check(inv)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "ping.yml").write_text(PING)
    pinged = run_playbook(
        PlaybookCall(
            "ping",
            tmp_path / "project" / "ping.yml",
            tmp_path / "project",
            inv,
            tmp_path / "pdd",
            timeout=120,
        )
    ).data["pings"]
    lines = result.evidence["lines"]
    seen = result.evidence["hosts"]
    for host in hosts:
        assert pinged[host]["ok"] == (host not in lines), (host, pinged[host], lines.get(host))
        if pinged[host]["python"]:  # discovery ran: the same interpreter
            assert seen[host]["python"] == pinged[host]["python"], host
    assert {"set", "missing", "hidden", "old"} <= set(seen) and "set" not in lines
    assert lines["hidden"] == (
        "hidden: no Python found (looked for python-moved ... /usr/bin/python, as Ansible does); "
        "install python2.7 or python3.6+, or set ansible_python_interpreter"
    )
    assert lines["old"].startswith(f"old: ansible_python_interpreter {old} is Python 2.6.6;")


def test_an_unreachable_host_is_named_not_passed(tmp_path):
    hosts = {
        "nfs_servers": {
            "node01": {**LOCAL, "ansible_python_interpreter": sys.executable},
            "gone": {
                "ansible_host": "127.0.0.1",
                "ansible_port": 9,  # discard: nothing listens there
                "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes",
            },
        }
    }
    result = check(inventory(tmp_path, hosts))
    assert result.verdict != PASS
    assert result.evidence["summary"].startswith("gone: unreachable (")
    assert result.evidence["unreachable"] == ["gone"]


# ------------------------------------------------------------------ the command line


@pytest.fixture
def cloud(tmp_path: Path):
    """The core's local site, its first step's preflight naming targets-supported first."""
    books = tmp_path / "books"
    books.mkdir()
    for book in (site.FIXTURE / "runbooks").glob("*.yml"):
        doc = yaml.safe_load(book.read_text())
        first = doc["steps"][0]
        first["gates_before"] = ["targets-supported", *first.get("gates_before", [])]
        (books / book.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    yield tmp_path, site.make_site(tmp_path, sim, ["node01", "node02"], runbooks=books)
    sim.stop()


def hide_python(root: Path, host: str) -> None:
    """Point one host's interpreter at a path with no Python."""
    path = root / "inventory.yml"
    doc = yaml.safe_load(path.read_text())
    for group in doc["all"]["children"].values():
        if host in group["hosts"]:
            # a copy: the hosts share one mapping (a YAML alias)
            group["hosts"][host] = {
                **group["hosts"][host],
                "ansible_python_interpreter": "/nonexistent/python",
            }
    path.write_text(yaml.safe_dump(doc))


def test_upgrader_gates_and_a_run_stop_at_the_host_without_python(cloud):
    root, config = cloud
    ok = site.upgrader(config, "gates", "--stage", "--gate", "targets-supported", check=True)
    assert ok.stdout.startswith("[gate/targets-supported] PASS: 2 hosts can be managed: Python ")
    hide_python(root, "node02")
    failed = site.upgrader(config, "gates", "--stage", "--gate", "targets-supported")
    assert failed.returncode == 1
    assert failed.stdout.startswith(
        "[gate/targets-supported] FAIL: node02: ansible_python_interpreter /nonexistent/python "
        "not found; point it at a Python 2.7 or 3.6+"
    )
    assert "node01" not in failed.stdout.split(" (hint:")[0]
    assert "error: 1 of 1 gates did not pass: targets-supported" in failed.stderr
    # the standing gates: it comes first, and says the same
    every = site.upgrader(config, "gates", "--stage", "--wait", "0")
    assert every.returncode == 1
    assert every.stdout.splitlines()[0] == failed.stdout.splitlines()[0]

    run = site.upgrader(config, "run", "3.6", "--stage", "--yes")
    assert run.returncode == 1, run.stderr
    last = run.stderr.strip().splitlines()
    error = next(line for line in last if line.startswith("error: "))
    assert error.startswith(
        "error: gate targets-supported fail before step 3.2-3.4/prepare: node02: "
        "ansible_python_interpreter /nonexistent/python not found;"
    )
    assert site.markers(root) == []  # no step ran
