"""Hostile names from the cloud: VM and host names full of HTML, shell, YAML and Jinja
metacharacters, created in the simulator through XML-RPC (one.host.allocate,
one.vm.allocate), go through a whole run and its reports.

The run records, shuts down and re-creates every VM, drains every host (the hostile ones
too) and runs playbooks on the front end and on all hosts, with the real CLI, real
ansible-runner and real XML-RPC. Afterwards: no command hidden in a name ran (no PWNED file
under the site root, its HOME, or /tmp), the journal holds every name exactly as oned gave it,
the JSON report too, the Markdown report with only its cell escapes, and the HTML report
escaped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from tests.support import oned, site
from upgrader.journal.store import read_events

HOSTS = ["node01", "node02"]  # the inventory's hosts (Ansible can reach these)
HOSTILE_HOSTS = ["<b>x</b>", "$(touch PWNED)"]
CANARY = "/tmp/PWNED-upgrader-security"  # an absolute target too: cwd must not matter
HOSTILE_VMS = [
    "<i>vm</i><script>alert(1)</script>",
    "$(touch PWNED1)",
    "; touch PWNED2 #",
    "`touch PWNED4`",
    f"x'; touch {CANARY}; '",
    "a: b",
    "- [x]",
    "{{ lookup('pipe','touch PWNED3') }}",
    "{% raw %}{{ 7*7 }}",
    "'q\"",
    "pipe | in & a cell",
]

BOOKS = {
    "opennebula-3.2-to-3.4.yml": """
name: names-3.2-to-3.4
kind: upgrade
from_version: "3.2"
to_version: "3.4"
steps:
  - id: preflight
    action: record-vms
    estimate: 10s
    idempotent: true
    gates_before: [oned-reachable, vms-settled]
  - id: shutdown-vms
    action: shutdown-vms
    estimate: 10s
    idempotent: true
    vars: {poll_interval: 0.2}
    gates_after: [vms-settled]
  - id: upgrade-frontend
    playbook: mark.yml
    target: frontends
    vars: {marker_name: front-end, target_group: frontends}
    estimate: 10s
    idempotent: true
    point_of_no_return: true
  - id: recreate-vms
    action: recreate-vms
    estimate: 10s
    idempotent: true
    vars: {poll_interval: 0.2}
  - id: drain
    action: drain-host
    target: hypervisors
    serial: 1
    estimate: 10s
    idempotent: true
    vars: {poll_interval: 0.2}
  - id: enable
    action: enable-host
    target: hypervisors
    serial: 1
    estimate: 5s
    idempotent: true
""",
    "opennebula-3.4-to-3.6.yml": """
name: names-3.4-to-3.6
kind: upgrade
from_version: "3.4"
to_version: "3.6"
steps:
  - id: second-hop
    playbook: mark.yml
    vars: {marker_name: second-hop}
    estimate: 10s
    idempotent: true
""",
}


@dataclass
class Scene:
    root: Path
    run: subprocess.CompletedProcess[str]
    run_id: str
    events: list[Any]
    md: str
    html: str
    doc: dict[str, Any]
    tmp_pwned_before: list[Path]


def _template_string(text: str) -> str:
    """``text`` as a quoted value of OpenNebula's template syntax."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _vm_states(sim: oned.Simulator) -> dict[str, str]:
    pool = sim.call("one.vmpool.info", -2, -1, -1, -1)
    found = re.findall(
        r"<VM><ID>\d+</ID>.*?<NAME>(.*?)</NAME>.*?<LCM_STATE>(\d+)</LCM_STATE>", pool, re.S
    )
    return {markupsafe.Markup(name).unescape(): lcm for name, lcm in found}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    Path(CANARY).unlink(missing_ok=True)
    tmp_pwned = sorted(Path("/tmp").glob("PWNED*"))  # not ours to delete; none may be added
    root = tmp_path_factory.mktemp("names-site")
    books = root / "books"
    books.mkdir()
    for name, text in BOOKS.items():
        (books / name).write_text(text)
    work = tmp_path_factory.mktemp("names-oned")
    oned.seed(work, "3.2.1", hosts=2, vms=0)
    sim = oned.start(work, "3.2.1", speed=200)
    try:
        for host in HOSTILE_HOSTS:
            sim.call("one.host.allocate", host, "im_kvm", "vmm_kvm", "dummy", "tm_shared")
        for name in HOSTILE_VMS:
            sim.call("one.vm.allocate", f"NAME={_template_string(name)}\nCPU=0.1\nMEMORY=64\n")
        # the scheduler places them: every VM runs before the run starts
        oned.wait_for(lambda: set(_vm_states(sim).values()) == {"3"}, timeout=60)
        assert sorted(_vm_states(sim)) == sorted(HOSTILE_VMS)  # oned keeps the names as given
        config = site.make_site(root, sim, HOSTS, runbooks=books)
        home = root / "home"
        home.mkdir()
        env = {**os.environ, "UPGRADER_CONFIG": "", "HOME": str(home)}

        def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                site.command(config, *args),
                cwd=root,
                env=env,
                text=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=240,
                check=False,
            )
            assert not check or done.returncode == 0, done.stderr
            return done

        run = cli("run", "3.6", "--stage", "--yes", check=False)
        runs = sorted((root / "runs").glob("staging-*"))
        assert runs, run.stderr
        run_id = runs[-1].name
        html, js = root / "report.html", root / "report.json"
        md = cli("report", run_id).stdout
        cli("report", run_id, "--format", "html", "-o", str(html))
        cli("report", run_id, "--format", "json", "-o", str(js))
        yield Scene(
            root,
            run,
            run_id,
            read_events(runs[-1] / "journal.jsonl"),
            md,
            html.read_text(),
            json.loads(js.read_text()),
            tmp_pwned,
        )
    finally:
        sim.stop()


def test_the_run_went_through_every_hostile_name(scene: Scene) -> None:
    assert scene.run.returncode == 0, scene.run.stderr
    steps = [e.get("step") for e in scene.events if e.type == "step_finished"]
    for host in HOSTILE_HOSTS:  # drained and enabled again like the others
        planned = [
            s["id"] for s in scene.events[0].get("plan")["steps"] if list(s["hosts"]) == [host]
        ]
        assert len(planned) == 2 and set(planned) <= set(steps), (host, planned)
    shut = json.loads((scene.root / "runs" / scene.run_id / "shutdown.json").read_text())
    assert len(shut["targets"]) == len(HOSTILE_VMS)


def test_no_command_hidden_in_a_name_ran(scene: Scene) -> None:
    pwned = [str(p) for p in scene.root.rglob("PWNED*")]  # the run's cwd and HOME are here
    assert pwned == [] and not Path(CANARY).exists()
    assert sorted(Path("/tmp").glob("PWNED*")) == scene.tmp_pwned_before


def test_the_journal_keeps_every_name_exactly(scene: Scene) -> None:
    states = [e for e in scene.events if e.type == "cloud_state"]
    assert [e.get("when") for e in states] == ["start", "end"]
    for state in states:
        assert set(HOSTILE_VMS) <= {vm["name"] for vm in state.get("vms")}
        assert set(HOSTILE_HOSTS + HOSTS) == {h["name"] for h in state.get("hosts")}
    plan_hosts = {h for s in scene.events[0].get("plan")["steps"] for h in s["hosts"]}
    assert plan_hosts == set(HOSTILE_HOSTS + HOSTS)
    recorded = json.loads((scene.root / "runs" / scene.run_id / "vms.json").read_text())
    assert set(HOSTILE_VMS) <= _names_in(recorded)


def _names_in(data: Any) -> set[str]:
    """Every value of a ``name`` key, anywhere in ``data``."""
    if isinstance(data, dict):
        found = {str(v) for k, v in data.items() if k == "name"}
        return found.union(*(_names_in(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(_names_in(v) for v in data)) if data else set()
    return set()


def test_json_report_has_the_names_as_they_are(scene: Scene) -> None:
    end = scene.doc["cloud_end"]
    assert set(HOSTILE_VMS) <= {vm["name"] for vm in end["vms"]}
    assert set(HOSTILE_HOSTS) <= {h["name"] for h in end["hosts"]}


def test_markdown_report_shows_the_names_with_only_its_cell_escapes(scene: Scene) -> None:
    for name in HOSTILE_VMS + HOSTILE_HOSTS:
        cell = name.replace("|", "\\|").replace("<", "\\<")
        assert f"| {cell} |" in scene.md, name
    assert "| pipe \\| in & a cell |" in scene.md  # a | in a name does not split the row


def test_html_report_escapes_every_name(scene: Scene) -> None:
    page = scene.html
    for name in HOSTILE_VMS + HOSTILE_HOSTS:
        assert str(markupsafe.escape(name)) in page, name
        if any(c in name for c in "<>&'\""):
            assert name not in page, f"unescaped: {name}"
    assert "<script" not in page and "<b>x" not in page and "<i>vm" not in page
