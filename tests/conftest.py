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

# Tables printed at the end of the run (fault matrix, bad input, crash trials).
pytest_plugins = ["tests.support.tallies"]

OnedFactory = Callable[..., Simulator]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upgrader")
    group.addoption("--trials", type=int, default=5,
                    help="crash-and-resume trials on the lab (tests/reliability)")
    group.addoption("--crash-seed", type=int, default=None,
                    help="seed of the crash trials' kill moments (default: a new one, printed)")


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
