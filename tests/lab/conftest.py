"""Lab tests need root (namespaces, mounts, loop devices); they are skipped otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from upgrader.lab.lab import load_spec

# Two test sessions on one machine each take their own lab (name and /24), and so does each
# pytest-xdist worker of a session (gw0, gw1...): its number is added to the name and the /24.
_BASE_NAME = os.environ.get("UPGRADER_TEST_LAB", "utlab")
_BASE_SUBNET = os.environ.get("UPGRADER_TEST_LAB_SUBNET", "10.79.0")
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def side_lab(suffix: str, offset: int) -> tuple[str, str]:
    """Name and /24 (``a.b.c``) of a lab beside the session's, for a test module that changes
    its clouds (upgrades them, breaks them): ``offset`` a multiple of 10, one per module
    (whole job 50 and 60, no-python 70, faults 100-120, dry run 130), so no two labs of any
    worker meet."""
    a, b, c = _BASE_SUBNET.split(".")
    name = f"{_BASE_NAME}{WORKER or ''}{suffix}"
    return name, f"{a}.{b}.{(int(c) + offset + WORKER) % 256}"


NAME, SUBNET = side_lab("", 0)

pytestmark = pytest.mark.lab


def upgrader(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``upgrader`` command line."""
    result = subprocess.run(
        [sys.executable, "-m", "upgrader", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"upgrader {' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, object]]:
    """One lab for the whole session, of lab up's default host profile (2012: Debian 7 hosts
    with Python 2.7 only; ``lab down`` at the end)."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", NAME)
    started = time.monotonic()
    upgrader("lab", "up", "--name", NAME, "--subnet", f"{SUBNET}.0/24")
    print(f"\n[lab] lab up took {time.monotonic() - started:.1f} s")
    spec = load_spec(NAME)
    yield {"name": NAME, "spec": spec, "dir": Path("/var/lib/upgrader-lab") / NAME}
    upgrader("lab", "down", "--name", NAME)
