"""Staging first: production refuses a plan staging has not passed, names the command that
lifts it, and accepts it once staging ran it (or with a journaled reason)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import oned, site
from upgrader.journal.store import EventType, read_events


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    yield tmp_path, site.make_site(tmp_path, sim, ["node01", "node02"])
    sim.stop()


def test_production_is_refused_until_staging_passed_the_same_plan(cloud):
    root, config = cloud
    refused = site.upgrader(config, "run", "3.6", "--yes")
    assert refused.returncode == 5
    assert "no-rehearsal" in refused.stderr
    assert "upgrader run 3.6 --stage --yes" in refused.stderr
    assert not list((root / "runs").glob("production-*"))  # nothing started

    dry = site.upgrader(config, "run", "3.6", "--stage", "--dry-run", "--yes", check=True)
    assert dry.stdout.startswith("dry run staging-")
    still = site.upgrader(config, "run", "3.6", "--yes")
    assert still.returncode == 5, "a dry run is no rehearsal"

    site.upgrader(config, "run", "3.6", "--stage", "--yes", check=True)
    plan = site.upgrader(config, "plan", "3.6", check=True)
    assert "no-rehearsal" not in plan.stdout + plan.stderr
    run_id = site.upgrader(config, "run", "3.6", "--yes", check=True).stdout.strip()
    assert run_id.startswith("production-")


def test_without_rehearsal_needs_a_reason_and_journals_it(cloud):
    root, config = cloud
    empty = site.upgrader(config, "run", "3.6", "--yes", "--without-rehearsal", " ")
    assert empty.returncode == 2 and "needs a reason" in empty.stderr
    reason = "staging cloud is down for hardware repair, change 4711 approved"
    run_id = site.upgrader(
        config, "run", "3.6", "--yes", "--without-rehearsal", reason, check=True
    ).stdout.strip()
    events = read_events(root / "runs" / run_id / "journal.jsonl")
    accepted = [e for e in events if e.type == EventType.FINDING_ACCEPTED]
    assert [(e.get("key"), e.get("reason")) for e in accepted] == [
        ("no-rehearsal", f"--without-rehearsal: {reason}")
    ]
