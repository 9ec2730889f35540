"""What ``upgrader run --yes`` refuses before it touches anything: a credentials file its
group or others may read, and YAML that asks for a Python object in the site config or a
runbook (exit 2, one line, the object never built). An inventory with such a tag is Ansible's
to read: its loader refuses the tag, and the run must then fail at its first play instead of
running every play on no host and calling the upgrade done. Real CLI against the simulator;
each case gets a fresh site (its own runs directory) on the module's one simulator.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import oned, site
from upgrader.journal.store import read_events

HOSTS = ["node01", "node02"]
RUN = ("run", "3.6", "--stage", "--yes")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oned.Simulator]:
    work = tmp_path_factory.mktemp("refusals-oned")
    oned.seed(work, "3.2.1", hosts=2, vms=0)
    s = oned.start(work, "3.2.1", speed=50)
    yield s
    s.stop()


def _nothing_ran(root: Path) -> None:
    runs = root / "runs"
    assert not list(runs.glob("staging-*"))
    assert not (runs / "locks" / "staging.lock").exists()
    assert site.markers(root) == [] and not (root / "markers.state").exists()


def _one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("mode", [0o640, 0o604], ids=lambda m: f"{m:04o}")
def test_a_credentials_file_its_group_or_others_may_read_is_refused(
    sim: oned.Simulator, tmp_path: Path, mode: int
) -> None:
    config = site.make_site(tmp_path, sim, HOSTS)
    creds = tmp_path / "one_auth"
    creds.chmod(mode)
    line = _one_error_line(site.upgrader(config, *RUN))
    assert f"permissions 0{mode:o} for '{creds}' are too open" in line
    assert f"chmod 600 {creds}" in line
    assert sim.session.partition(":")[2] not in line
    _nothing_ran(tmp_path)


def _python_tag(target: Path) -> str:
    return f"!!python/object/apply:os.system ['touch {target}']"


def _in_config(root: Path, config: Path, tag: str) -> None:
    config.write_text(config.read_text() + f"lab: {tag}\n")


def _in_runbook_vars(root: Path, config: Path, tag: str) -> None:
    book = root / "runbooks" / "opennebula-3.2-to-3.4.yml"
    text = book.read_text()
    assert text.count("vars: {marker_name: prepare}") == 1
    book.write_text(text.replace("vars: {marker_name: prepare}", f"vars: {{marker_name: {tag}}}"))


def _in_runbook_name(root: Path, config: Path, tag: str) -> None:
    book = root / "runbooks" / "opennebula-3.4-to-3.6.yml"
    text = book.read_text()
    assert text.count("name: fixture-3.4-to-3.6") == 1
    book.write_text(text.replace("name: fixture-3.4-to-3.6", f"name: {tag}"))


@pytest.mark.parametrize(
    "place", [_in_config, _in_runbook_vars, _in_runbook_name], ids=lambda f: f.__name__[4:]
)
def test_yaml_asking_for_a_python_object_is_refused_and_never_built(
    sim: oned.Simulator, tmp_path: Path, place: Callable[[Path, Path, str], None]
) -> None:
    config = site.make_site(tmp_path, sim, HOSTS)
    target = tmp_path / "PWNED"
    place(tmp_path, config, _python_tag(target))
    line = _one_error_line(site.upgrader(config, *RUN))
    assert ":" in line.split()[1]  # file:line:column of the offending value
    assert not target.exists()
    _nothing_ran(tmp_path)


def test_an_inventory_ansible_cannot_parse_fails_the_run_instead_of_passing_it(
    sim: oned.Simulator, tmp_path: Path
) -> None:
    """Ansible's loader refuses the tag (nothing is built); the tool must not then run
    every play on no host and report the upgrade done."""
    config = site.make_site(tmp_path, sim, HOSTS)
    target = tmp_path / "PWNED"
    inventory = tmp_path / "inventory.yml"
    text = inventory.read_text()
    assert text.count("    step_sleep: 0\n") == 1
    inventory.write_text(
        text.replace("    step_sleep: 0\n", f"    step_sleep: {_python_tag(target)}\n")
    )
    result = site.upgrader(config, *RUN)
    if result.returncode == 2:  # refused before the run, by the inventory check: one line
        _one_error_line(result)
    else:  # refused by Ansible at the first play: the run failed and claims nothing done
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert not target.exists()
    assert site.markers(tmp_path) == []
    for journal in (tmp_path / "runs").glob("staging-*/journal.jsonl"):
        events = read_events(journal)
        assert not [e for e in events if e.type in ("step_finished", "run_finished")]
