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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.oned import Simulator, start

OnedFactory = Callable[..., Simulator]


@pytest.fixture
def oned_factory(tmp_path: Path) -> Iterator[OnedFactory]:
    """Start simulators: ``oned_factory(version, *, workdir=None, speed=100, ...)``."""
    started: list[Simulator] = []
    counter = itertools.count(1)

    def factory(version: str, *, workdir: Path | None = None, speed: float = 100.0,
                lab_control: bool = True, hook: str = "none", extra: Sequence[str] = (),
                timeout: float = 30.0) -> Simulator:
        sim = start(workdir or tmp_path / f"oned-{next(counter)}", version, speed=speed,
                    lab_control=lab_control, hook=hook, more=extra, timeout=timeout)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


# The lab modules that take minutes, longest first (CI wall times of one run, 3 workers).
# scripts/test runs xdist with --dist loadfile --no-loadscope-reorder, which hands whole files
# to workers in collection order: these start at once, on different workers, instead of the
# whole-job run starting last and alone (xdist's default order is by number of tests).
SLOW_FIRST = (
    "tests/lab/test_lab_whole_job.py",  # 600 s
    "tests/lab/test_lab_storage.py",  # 300 s
    "tests/lab/test_lab_storage_kill.py",  # 230 s
    "tests/lab/test_lab_fault_package_missing.py",  # 220 s
    "tests/lab/test_lab_fault_libvirtd_crash.py",  # 180 s
    "tests/lab/test_lab_dry_run.py",  # 150 s
    "tests/lab/test_lab_fault_slow_migration.py",  # 150 s
    "tests/lab/test_lab_storage_faults.py",  # 150 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SLOW_FIRST modules first, in that order; every other test keeps its place."""
    rank = {path: n for n, path in enumerate(SLOW_FIRST)}
    root = Path(__file__).resolve().parents[1]

    def key(item: pytest.Item) -> int:
        return rank.get(str(Path(item.fspath).resolve().relative_to(root)), len(rank))

    items.sort(key=key)  # stable: the rest stays in collection order
