"""The bad-input corpus' fixtures: one cloud and one clean site per session, a fresh case
directory per case, and the check every case makes.

The base site (``tests.support.site.make_site`` on a seeded 3.2.1 simulator) is never
changed by a case: a case gets its own directory with its own ``upgrader.yml`` (pointing at
the base site's files) and its own copy of the runs directory, and copies in whatever it
spoils (``CaseSite.own``). The runs directory starts with three journals, so that ``resume``,
``status`` and ``report`` meet real runs: a paused run, a dry run and an aborted run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.badinput import standin
from tests.badinput.corpus import ABORTED, DRY, PAUSED, Case
from tests.support import oned
from tests.support.site import make_site

HOSTS = ["node01", "node02"]
# Fields of the pools that move by themselves (monitoring), not by anything a command does.
_VOLATILE = re.compile(
    r"<(LAST_MON_TIME|LAST_POLL|NET_TX|NET_RX|(FREE|USED)_(CPU|MEM|DISK))>[^<]*</\1>"
)
# What a read-only look at oned may call; the stand-in records everything it was asked.
_READ_ONLY = re.compile(r"one\.(\w+pool\.(info|accounting)|\w+\.info|system\.version)")


@dataclass(frozen=True)
class Cloud:
    """The session's simulator and the clean site made for it."""

    sim: oned.Simulator
    root: Path
    config: Path
    stand_in: standin.StandIn


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("badinput-site")
    oned.seed(root / "oned", "3.2.1", hosts=2, vms=2)
    sim = oned.start(root / "oned", "3.2.1")
    try:
        config = make_site(root, sim, HOSTS)
        _seed_runs(config)
        with standin.serve() as stand_in:
            yield Cloud(sim, root, config, stand_in)
    finally:
        sim.stop()


def _seed_runs(config: Path) -> None:
    """A paused run (its fingerprint matches the site), a dry run and an aborted run."""
    from upgrader.config.workspace import workspace
    from upgrader.journal.store import EventType, Journal
    from upgrader.run.context import client_for
    from upgrader.run.prepare import prepare_plan

    ws = workspace(config, "staging")
    plan, _ = prepare_plan(ws, client_for(ws.env), "3.6")
    for run_id, dry, end in (
        (PAUSED, False, EventType.RUN_PAUSED),
        (DRY, True, EventType.RUN_FINISHED),
        (ABORTED, False, EventType.RUN_ABORTED),
    ):
        with Journal.create(ws.site.runs_dir / run_id, run_id) as journal:
            journal.record(
                EventType.RUN_STARTED,
                run_id=run_id,
                environment="staging",
                target=plan.target_version,
                fingerprint=plan.resume_fingerprint,
                identity=plan.fingerprint,
                plan=plan.to_dict(),
                dry_run=dry,
            )
            journal.record(end, reason="seeded by the bad-input corpus", next_step=plan.steps[0].id)


class CaseSite:
    """One case's directory: its ``upgrader.yml``, its runs and whatever it spoils."""

    def __init__(self, root: Path, cloud: Cloud) -> None:
        self.root, self.cloud = root, cloud
        self.config: dict[str, Any] = yaml.safe_load(cloud.config.read_text())
        shutil.copytree(Path(self.config["runs_dir"]), root / "runs")
        self.config["runs_dir"] = str(root / "runs")
        self.save()

    @property
    def path(self) -> Path:
        return self.root / "upgrader.yml"

    def env(self, name: str = "staging") -> dict[str, Any]:
        return self.config["environments"][name]  # type: ignore[no-any-return]

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.config))

    def write(self, name: str, text: str, mode: int = 0o600) -> Path:
        """Write ``text`` (``{root}`` is the case directory) to a file of the case."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{root}", str(self.root)))
        path.chmod(mode)
        return path

    def own(self, what: str) -> Path:
        """Copy the base site's ``runbooks``, ``inventory`` or ``credentials`` into the case
        and point the config at the copy; return the copy."""
        key = {"runbooks": "runbooks_dir"}.get(what)
        source = Path(self.config[key] if key else self.env()[what])
        copy = self.root / source.name
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copy2(source, copy)
        if key:
            self.config[key] = str(copy)
        else:
            for env in self.config["environments"].values():
                env[what] = str(copy)
        self.save()
        return copy

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` once in an owned file (``old`` must be there)."""
        path = self.root / relative
        text = path.read_text()
        assert old in text, f"{old!r} is not in {path}"
        path.write_text(text.replace(old, new, 1))


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, int]]:
    """Every file and directory under ``root``: content digest (or 'dir') and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or path.is_fifo():
            continue
        info = path.lstat()
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(rel)] = (digest, info.st_mode)
    return out


def cloud_state(sim: oned.Simulator) -> tuple[str, str]:
    """The host and VM pools as oned reports them, without the monitoring figures (and a
    host in MONITORING counted as MONITORED: a monitoring cycle comes and goes)."""
    hosts = _VOLATILE.sub("", sim.call("one.hostpool.info"))
    hosts = hosts.replace("<STATE>1</STATE>", "<STATE>2</STATE>")
    return hosts, _VOLATILE.sub("", sim.call("one.vmpool.info", -2, -1, -1, -1))


@pytest.fixture
def check(cloud: Cloud, tmp_path: Path, record_property: Any) -> Any:
    """``check(case)``: feed the case to the real CLI and assert the bad-input contract."""

    def run(case: Case) -> None:
        site = CaseSite(tmp_path, cloud)
        case.setup(site)
        argv = [a.replace("{root}", str(tmp_path)) for a in case.argv]
        if case.config is not None:
            argv += ["--config", str(tmp_path / case.config)]
        before = (snapshot(tmp_path), snapshot(cloud.root, skip=("oned",)), cloud_state(cloud.sim))
        asked = {mode: len(calls) for mode, calls in cloud.stand_in.calls.items()}
        result = subprocess.run(
            [sys.executable, "-m", "upgrader", *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
            env={**os.environ, "UPGRADER_CONFIG": "", "COLUMNS": "200"},
        )
        after = (snapshot(tmp_path), snapshot(cloud.root, skip=("oned",)), cloud_state(cloud.sim))
        record_property(
            "badinput", {"case": case.id, "family": case.family, "exit code": result.returncode}
        )
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        said = f"\nargv: {argv}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr, said
        assert "internal error" not in result.stderr, said
        assert result.returncode == case.code, said
        assert len(lines) == 1, f"expected one line on stderr{said}"
        assert lines[0].startswith("error: "), said
        assert re.search(case.stderr, lines[0]), f"{case.stderr!r} not in the line{said}"
        assert after[0] == before[0], f"the case's directory changed{said}"
        assert after[1] == before[1], f"the base site changed{said}"
        assert after[2] == before[2], f"the cloud changed{said}"
        new_calls = [
            m for mode, calls in cloud.stand_in.calls.items() for m in calls[asked.get(mode, 0) :]
        ]
        assert all(_READ_ONLY.fullmatch(m) for m in new_calls), new_calls

    return run
