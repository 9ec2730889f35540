"""SIGKILL ``upgrader run`` at a random moment of a full lab run, resume it, and check that
nothing was lost (tests/reliability/crash.py says what a trial does and checks).

``--trials N`` (default 5, what CI runs) sets how many; each trial is one test, with its row in
the table the run prints at its end. ``--crash-seed S`` replays the kill moments of a run: the
seed is printed with every trial. benchmarks/crash_resume.py runs 50 the same way."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import side_lab
from tests.reliability.crash import run_trial

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

LAB, SUBNET = side_lab("c", 200)
_SEED = int(time.time()) % 100000


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "trial" in metafunc.fixturenames:
        metafunc.parametrize("trial", range(metafunc.config.getoption("trials")))


@pytest.fixture(scope="module")
def seed(pytestconfig: pytest.Config) -> int:
    chosen = pytestconfig.getoption("crash_seed")
    return _SEED if chosen is None else chosen


def test_sigkill_at_a_random_moment_then_resume_loses_nothing(
    trial: int, seed: int, tmp_path: Path, tally_row: Any
) -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    print(f"\n[crash] seed {seed} (replay with --crash-seed {seed})")
    result = run_trial(trial, LAB, SUBNET, tmp_path, seed=seed)
    tally_row("crash_trial", **result.row(), seed=seed, seconds=f"{result.seconds:.0f}")
    print(f"[crash] trial {trial}: {result.row()} in {result.seconds:.0f} s; {result.notes}")
    assert result.killed, f"the run ended before the kill at {result.victim}"
    assert not result.failures, result.failures
