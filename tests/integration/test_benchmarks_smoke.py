"""Every benchmark still runs: each script under benchmarks/ is run with ``--smoke`` (its
smallest size, one repeat) as its own process, and must exit 0 and print a figure on stdout.

A figure is a number followed by a unit of time, size or ratio (``0.76 s``, ``47.7 MiB``,
``6.1x``, ``26%``): a benchmark whose report broke, or that prints only headers, fails. The
full runs stay by hand (DESIGN.md section 9). The scripts are found by listing benchmarks/,
so a new one is run without being named here; those that need root and the lab are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import side_lab
from upgrader.lab.python2 import interpreter

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
# crash_resume brings up a lab of its own (as root) for its one trial, 1 to 3 minutes.
NEEDS_LAB = {"crash_resume.py"}
CRASH_LAB, CRASH_SUBNET = side_lab("bc", 230)
FIGURE = re.compile(r"\d(?:[\d,]*\d)?(?:\.\d+)?\s?(?:s|ms|us|min|[KMG]i?B|x|%)(?![\w.])")


def _param(script: str) -> object:
    if script in NEEDS_LAB:
        return pytest.param(script, marks=[pytest.mark.lab, pytest.mark.timeout(1800)])
    return script


def test_the_benchmarks_are_found() -> None:
    assert {"crash_resume.py", "gates_scale.py", "oned_scale.py", "storage_copy.py"} <= set(SCRIPTS)


def test_the_figure_check_knows_a_figure_from_a_header() -> None:
    assert FIGURE.search("  seed the database                   0.71 s")
    assert FIGURE.search("  simulator RSS after settling        47.7 MiB")
    assert FIGURE.search("  one.hostpool.info  100x2000  1.23x  holds")
    assert FIGURE.search("trial 00 upgrade 3.2->3.4 ... 95 s: held")
    assert not FIGURE.search("oned simulator 3.2.1 scale benchmark (repeat 1, 1 uncounted)")
    assert not FIGURE.search("== 100 hosts, 2,000 VMs ==")
    assert not FIGURE.search("  gate               500x10000        1000x20000")


@pytest.mark.parametrize("script", [_param(s) for s in SCRIPTS])
def test_the_benchmark_runs_in_smoke_mode_and_prints_figures(script: str) -> None:
    args = [sys.executable, str(ROOT / "benchmarks" / script), "--smoke"]
    timeout = 240.0
    if script in NEEDS_LAB:
        if os.geteuid() != 0:
            pytest.skip("lab tests need root (CI runs them as root)")
        args += ["--lab", CRASH_LAB, "--subnet", CRASH_SUBNET]
        timeout = 1700.0
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          check=False)  # fmt: skip
    seconds = time.monotonic() - started
    print(f"\n[bench] {script} --smoke: exit {done.returncode} in {seconds:.1f} s\n{done.stdout}")
    tail = "\n".join(done.stderr.splitlines()[-20:])
    assert done.returncode == 0, f"{script} --smoke exited {done.returncode}:\n{tail}"
    figures = [line for line in done.stdout.splitlines() if FIGURE.search(line)]
    assert figures, f"{script} --smoke printed no figure (a number with a unit):\n{done.stdout}"
    if script == "storage_copy.py":
        _engine_under_each_python(done.stdout)


def _engine_under_each_python(stdout: str) -> None:
    """storage_copy.py times the copy engine under Python 3 and, when the lab's Python 2.7
    is fetched, under 2.7 too: a trial line of figures for each, and their ratio."""
    labels = [r"py3\.\d+"]
    if interpreter() is None:
        assert "python2.7: not fetched" in stdout, stdout
    else:
        labels.append(r"py2\.7")
        assert re.search(r"^\s+ours copy \+ verify .* \d+\.\d+x$", stdout, re.M), stdout
    for label in labels:
        trial = re.compile(rf"^\s+{label}: ours \d+\.\d+ s .* two-phase \d+\.\d+ s ", re.M)
        assert trial.search(stdout), f"no trial figures for {label}:\n{stdout}"
