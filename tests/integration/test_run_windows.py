"""`upgrader run` and `resume` against the configured maintenance windows, through the real
command line and a simulator: outside every window they exit 3 naming the next opening and
change nothing; `--window` declares an ad-hoc one, which the journal keeps; a malformed one is
refused before anything runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.support import oned, site
from upgrader.compat import UTC

HOSTS = ["node01", "node02"]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    oned.seed(tmp_path / "sim", "3.2.1", hosts=2, vms=0)
    sim = oned.start(tmp_path / "sim", "3.2.1", speed=50)
    config = site.make_site(tmp_path, sim, HOSTS)
    # staging's only window: next week, two hours
    opens = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    doc = yaml.safe_load(config.read_text())
    doc["environments"]["staging"]["windows"] = [
        {"start": opens.isoformat(), "end": (opens + timedelta(hours=2)).isoformat()}
    ]
    config.write_text(yaml.safe_dump(doc))
    yield tmp_path, config
    sim.stop()


def runs_of(root: Path) -> list[str]:
    runs = root / "runs"
    return sorted(p.name for p in runs.glob("staging-*")) if runs.is_dir() else []


def test_outside_the_windows_run_exits_3_naming_the_next_and_changes_nothing(cloud):
    root, config = cloud
    refused = site.upgrader(config, "run", "3.6", "--stage", "--yes")
    assert refused.returncode == 3, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert re.search(
        r"staging is outside its maintenance windows: the next opens "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d\+00:00",
        line,
    ), line
    assert "--window now+2h" in line
    assert runs_of(root) == [] and site.markers(root) == []


def test_an_ad_hoc_window_is_journaled_and_the_run_goes_on(cloud):
    root, config = cloud
    done = site.upgrader(config, "run", "3.6", "--stage", "--yes", "--window", "now+2h")
    assert done.returncode == 0, done.stderr
    assert re.search(r"\[run\] window \S+ to \S+ \(ad hoc: ", done.stderr)
    (run_id,) = runs_of(root)
    events = [
        json.loads(line)
        for line in (root / "runs" / run_id / "journal.jsonl").read_text().splitlines()
    ]
    window = next(e for e in events if e["type"] == "window")
    start, end = (datetime.fromisoformat(window["window"][k]) for k in ("start", "end"))
    assert window["how"] == "ad hoc" and end - start == timedelta(hours=2)
    assert events[0]["window"] == window["window"]
    started = [e for e in events if e["type"] == "step_started"]
    assert started and all(e["estimate"] > 0 and "extent" in e for e in started)
    assert [e["when"] for e in events if e["type"] == "cloud_state"] == ["start", "end"]
    assert events[-1]["type"] == "run_finished"


@pytest.mark.parametrize("spec", ["tomorrow", "now+2", "2026-01-01T01:00/2026-01-01T00:00"])
def test_a_malformed_window_is_refused_before_anything_runs(cloud, spec):
    root, config = cloud
    bad = site.upgrader(config, "run", "3.6", "--stage", "--yes", "--window", spec)
    assert bad.returncode == 2, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert runs_of(root) == []
