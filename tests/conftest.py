"""Shared fixtures: ``oned_factory`` starts the oned simulator as a real process.

    def test_x(oned_factory):
        oned = oned_factory("3.2.1")                          # fresh database under tmp_path
        oned.stop()                                           # SIGTERM: lock file removed
        again = oned_factory("3.4.1", workdir=oned.workdir)   # same database, other release

A simulator that refuses to start raises ``OnedStartError``. Every simulator still
running at the end of the test is stopped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.oned import Simulator, start

# Tables printed at the end of the run (fault matrix, bad input, crash trials).
pytest_plugins = ["tests.support.tallies"]

OnedFactory = Callable[..., Simulator]


# The test files that take minutes, with their seconds in a CI run (3 workers on 2 CPUs, at
# 5c42b93). scripts/test hands whole files to the xdist workers in collection order
# (--no-loadscope-reorder), and this order is longest first: xdist's own order (by number of
# tests) started the one-test lab files last, and the suite ended with one of them running
# alone for minutes while the other workers had nothing left. Files not listed keep their
# place after these. A stale figure costs only some balance, never a test.
LONG_FILES = {
    "tests/reliability/test_crash_resume.py": 1030,  # 5 trials; grows with --trials
    "tests/reliability/test_fault_matrix.py": 890,
    "tests/integration/test_crash_resume.py": 610,  # 20 trials; UPGRADER_CRASH_TRIALS scales it
    "tests/lab/test_lab_whole_job.py": 490,
    "tests/lab/test_lab_storage.py": 380,
    "tests/lab/test_frontend_playbooks.py": 380,
    "tests/lab/test_cluster_playbooks.py": 330,
    "tests/lab/test_lab_gates.py": 235,
    "tests/integration/test_core_run.py": 210,
    # crash_resume's one smoke trial: 144 s for the file, measured once beside other work
    # (not in a CI run); a CI run adds the other workers' load, hence the guess
    "tests/integration/test_benchmarks_smoke.py": 200,
    "tests/lab/test_lab_window.py": 190,
    "tests/lab/test_storage_playbooks.py": 190,
    "tests/lab/test_lab_storage_faults.py": 170,
    "tests/lab/test_lab_dry_run.py": 170,
    "tests/lab/test_lab_fault_slow_migration.py": 140,
    "tests/lab/test_lab_fault_package_missing.py": 135,
    "tests/lab/test_lab_fault_libvirtd_crash.py": 125,
    "tests/integration/test_rehearsal.py": 100,
    "tests/security/test_secrets.py": 80,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The LONG_FILES first, longest first; every other test keeps its place. Every test of
    tests/lab and tests/reliability (where the lab fixtures are) must be marked ``lab``:
    ``scripts/test --quick`` (``-m "not lab"``) runs nothing of the lab, as root too, only
    because of that."""
    root = config.rootpath
    lab_dirs = [root / "tests" / "lab", root / "tests" / "reliability"]
    unmarked = [
        item.nodeid
        for item in items
        if any(item.path.is_relative_to(d) for d in lab_dirs) and not item.get_closest_marker("lab")
    ]
    if unmarked:
        raise pytest.UsageError("mark these tests lab (pytestmark): " + ", ".join(unmarked))

    def cost(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(root).as_posix()
        except ValueError:
            return 0
        seconds = LONG_FILES.get(name, 0)
        if name == "tests/integration/test_crash_resume.py":  # scripts/test --quick runs fewer
            seconds = seconds * int(os.environ.get("UPGRADER_CRASH_TRIALS", "20")) // 20
        return -seconds

    items.sort(key=cost)  # stable


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upgrader")
    group.addoption(
        "--trials",
        type=int,
        default=5,
        help="crash-and-resume trials on the lab (tests/reliability)",
    )
    group.addoption(
        "--crash-seed",
        type=int,
        default=None,
        help="seed of the crash trials' kill moments (default: a new one, printed)",
    )


@pytest.fixture
def oned_factory(tmp_path: Path) -> Iterator[OnedFactory]:
    """Start simulators: ``oned_factory(version, *, workdir=None, speed=100, ...)``."""
    started: list[Simulator] = []
    counter = itertools.count(1)

    def factory(
        version: str,
        *,
        workdir: Path | None = None,
        speed: float = 100.0,
        lab_control: bool = True,
        hook: str = "none",
        extra: Sequence[str] = (),
        timeout: float = 30.0,
    ) -> Simulator:
        sim = start(
            workdir or tmp_path / f"oned-{next(counter)}",
            version,
            speed=speed,
            lab_control=lab_control,
            hook=hook,
            more=extra,
            timeout=timeout,
        )
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()
