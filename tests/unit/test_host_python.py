"""Every file that travels to a host compiles under Python 2.7 and 3.x, and asks for nothing newer.

A 3.x cloud's hosts run Python 2.7 (issue 20; DESIGN.md 3a): our modules
(playbooks/library), the module_utils they ship, and the storage copy engine (a module or a
package, upgrader/storage/datastore_copy*) are one source for 2.7 and 3.6+. Each file is
compiled by the lab's Python 2.7 (upgrader.lab.python2) and by this Python, each in a process
of its own with ``py_compile`` (the bytecode goes to a temporary directory, never next to the
source), and vermin says which Python each needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from upgrader.lab.python2 import interpreter

REPO = Path(__file__).resolve().parents[2]
# What Ansible copies to a host: the modules, their module_utils (ansible.cfg's module_utils
# points at upgrader/storage) and the copy engine, as one file or as a package.
HOST_GLOBS = (
    "playbooks/library/**/*.py",
    "playbooks/module_utils/**/*.py",
    "upgrader/storage/datastore_copy.py",
    "upgrader/storage/datastore_copy/**/*.py",
)
HOST_FILES = sorted({p for pattern in HOST_GLOBS for p in REPO.glob(pattern)})
PY27 = interpreter()
COMPILE = "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"


def ids(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_files_that_travel_to_hosts_are_found():
    names = {ids(p) for p in HOST_FILES}
    assert {"playbooks/library/upgrader_probe.py", "playbooks/library/upgrader_agents.py"} <= names
    assert any(name.startswith("upgrader/storage/datastore_copy") for name in names)


def compile_with(python: str, source: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", COMPILE, str(source), str(tmp_path / "compiled.pyc")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("source", HOST_FILES, ids=ids)
def test_a_host_file_compiles_under_python_27(source, tmp_path):
    if PY27 is None:
        pytest.skip("the lab's Python 2.7 is not fetched (python -m upgrader.lab.python2 fetch)")
    done = compile_with(str(PY27), source, tmp_path)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


@pytest.mark.parametrize("source", HOST_FILES, ids=ids)
def test_a_host_file_compiles_under_this_python(source, tmp_path):
    done = compile_with(sys.executable, source, tmp_path)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_vermin_finds_nothing_that_needs_more_than_python_27_or_36():
    vermin = Path(sys.executable).parent / "vermin"
    if not vermin.exists():
        pytest.skip("vermin is not installed in this environment")
    done = subprocess.run(
        [str(vermin), "-t=2.7-", "-t=3.6-", "--violations", "--no-tips", *map(str, HOST_FILES)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # vermin lists each violation under the file that has it, and exits non-zero for any
    assert done.returncode == 0, done.stdout + done.stderr
