"""The copy engine under each Python a front end may have: 2.7 (a 2012 site) and 3.x.

Its unit tests (``tests/host``: stdlib ``unittest``, the engine imported standalone as
Ansible ships it) run under the lab's Python 2.7 and this venv's Python 3 (3.11 in CI), and
the Ansible module that carries the engine runs a copy on localhost under each, so a
3.x-only call, or an import AnsiballZ does not pack, fails here and not on a site's front
end. pytest does not collect ``tests/host`` itself unless it is named (see
tests/host/conftest.py): this is where those tests run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from upgrader.lab.python2 import interpreter

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def _python(version: str) -> str:
    """The interpreter to run: the lab's Python 2.7, or this venv's Python 3 (3.11 in CI)."""
    if version == "venv":
        return sys.executable
    found = interpreter()
    if found is None:
        pytest.skip("Python 2.7 is not fetched (python -m upgrader.lab.python2 fetch)")
    said = subprocess.run(
        [str(found), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert said == version, f"{found} is Python {said}, not {version}"
    return str(found)


def _env() -> dict[str, str]:
    """This environment without what would point a Python at this venv's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.mark.parametrize("version", ["2.7", "venv"])
def test_the_engine_tests_pass_under_each_python(version: str) -> None:
    python = _python(version)
    done = subprocess.run(
        [python, "-m", "unittest", "discover", "-s", "tests/host", "-v"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    ran = re.search(r"^Ran (\d+) tests? in ", output, re.M)
    assert done.returncode == 0, f"python {version}: tests/host failed:\n{output}"
    assert ran and int(ran.group(1)) > 0, f"python {version} ran no test:\n{output}"
    assert re.search(r"^OK\b", output, re.M), output


PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars:
    st_progress_file: "{{ work }}/progress.json"
    st_timeout: 120
    st_delay: 1
  tasks:
    - name: Copy the datastore, reading each copy back
      upgrader_datastore:
        state: sync
        src: "{{ work }}/src"
        dst: "{{ work }}/dst"
        manifest: "{{ work }}/manifest.jsonl"
        reread: true
        progress_file: "{{ st_progress_file }}"
      async: "{{ st_timeout }}"
      poll: 0
      register: st_job

    - name: Follow it as the storage playbooks do
      ansible.builtin.include_tasks: "{{ playbooks }}/tasks/storage-follow.yml"

    - name: Verify the copy
      upgrader_datastore:
        state: verify
        dst: "{{ work }}/dst"
        manifest: "{{ work }}/manifest.jsonl"
      register: checked

    - name: List what changed since
      upgrader_datastore:
        state: changed
        dst: "{{ work }}/dst"
        manifest: "{{ work }}/manifest.jsonl"
      register: since

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'sync': st_result.summary, 'verify': checked.verify,
                      'changed': since.writes, 'follow': st_follow.upgrader_progress}
                     | to_json }}"
        dest: "{{ work }}/results.json"
        mode: "0600"
"""


@pytest.mark.parametrize("version", ["2.7", "venv"])
def test_the_module_copies_with_the_packaged_engine_under_each_python(
    version: str, tmp_path: Path
) -> None:
    """AnsiballZ packs the engine package (relative imports) and the host's Python runs it."""
    python = _python(version)
    src = tmp_path / "src" / "1"
    src.mkdir(parents=True)
    (tmp_path / "dst").mkdir()
    with open(src / ("ab" * 16), "wb") as fh:
        fh.truncate(32 * MIB)
        fh.seek(9 * MIB)
        fh.write(os.urandom(2 * MIB))
    (src / "dense").write_bytes(os.urandom(MIB + 5))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts").write_text(
        f"front ansible_connection=local ansible_python_interpreter={python}\n"
    )
    env = _env() | {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LIBRARY": str(ROOT / "playbooks" / "library"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote-tmp"),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts"),
            "-e",
            f"work={tmp_path} playbooks={ROOT / 'playbooks'}",
            str(tmp_path / "play.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"python {version}:\n{done.stdout[-4000:]}\n{done.stderr}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sync"]["copied"] == ["1/" + "ab" * 16, "1/dense"]
    assert results["sync"]["bytes_copied"] == 3 * MIB + 5
    assert results["follow"]["finished"] and results["follow"]["files_done"] == 2
    assert results["verify"]["verified"] == results["verify"]["entries"] == 3
    assert results["verify"]["mismatches"] == [] and results["changed"] == 0
    copy = tmp_path / "dst" / "1" / ("ab" * 16)
    assert copy.stat().st_blocks * 512 < 4 * MIB  # still sparse
    assert copy.read_bytes() == (src / ("ab" * 16)).read_bytes()
