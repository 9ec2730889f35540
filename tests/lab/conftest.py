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

# Two test sessions on one machine each take their own lab (name and /24).
NAME = os.environ.get("UPGRADER_TEST_LAB", "utlab")
SUBNET = os.environ.get("UPGRADER_TEST_LAB_SUBNET", "10.79.0")

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
    """One lab for the whole session (``lab down`` at the end)."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (CI runs them as root)")
    upgrader("lab", "down", "--name", NAME)
    started = time.monotonic()
    upgrader("lab", "up", "--name", NAME, "--subnet", f"{SUBNET}.0/24")
    print(f"\n[lab] lab up took {time.monotonic() - started:.1f} s")
    spec = load_spec(NAME)
    yield {"name": NAME, "spec": spec, "dir": Path("/var/lib/upgrader-lab") / NAME}
    upgrader("lab", "down", "--name", NAME)
