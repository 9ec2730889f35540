"""The run lock and the journal under real processes: races, dead holders, SIGKILL.

Children are separate ``python -c`` processes. They wait on a barrier file, so two of them try
to take the lock within a millisecond of each other, and each reports what happened in a
``<run_id>.result`` JSON file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from upgrader.errors import LockHeldError, StaleLockError, UsageError
from upgrader.journal.files import utc_iso
from upgrader.journal.store import JOURNAL_NAME, EventType, Journal, read_events, replay
from upgrader.run.lock import LockInfo, RunLock, read_lock

ROOT = Path(__file__).resolve().parents[2]
ENV = "production"

LOCKER = r"""
import json, os, sys, time
from pathlib import Path
from upgrader.errors import UpgraderError
from upgrader.run.lock import RunLock

lock_dir, env, run_id, work, take_over, then = sys.argv[1:7]
work = Path(work)
(work / f"{run_id}.ready").touch()
while not (work / "go").exists():
    time.sleep(0.0005)
try:
    lock = RunLock.acquire(Path(lock_dir), env, run_id, expiry_seconds=600,
                           take_over=take_over == "1")
    prev = lock.previous
    result = {"ok": True, "pid": os.getpid(), "previous": prev.pid if prev else None}
except UpgraderError as exc:
    result = {"ok": False, "error": type(exc).__name__, "message": str(exc),
              "exit_code": exc.exit_code, "pid": os.getpid()}
tmp = work / f"{run_id}.tmp"
tmp.write_text(json.dumps(result))
os.replace(tmp, work / f"{run_id}.result")
if result["ok"] and then == "hold":
    while not (work / "release").exists():
        time.sleep(0.01)
    assert lock.release()
os._exit(0)  # "die": exit still holding the lock
"""

WRITER = r"""
import sys
from pathlib import Path
from upgrader.journal.store import EventType, Journal

run_dir = Path(sys.argv[1])
steps = [{"id": f"s{i}", "idempotent": i % 2 == 0} for i in range(10)]
journal = Journal.create(run_dir, "r1")
journal.record(EventType.RUN_STARTED, run_id="r1", environment="staging", target="3.4",
               fingerprint="f" * 64, plan={"steps": steps}, dry_run=False)
(run_dir / "ready").touch()
n = 0
while True:
    step = f"s{n % 10}"
    journal.record(EventType.STEP_STARTED, step=step, attempt=n // 10 + 1, idempotent=True)
    journal.record(EventType.STEP_FINISHED, step=step, outcome={"pad": "x" * (n % 7) * 40000},
                   duration=0.1)
    n += 1
"""


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.005)


def python(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env)


class Lockers:
    """Children that each try to take the lock once the barrier opens."""

    def __init__(self, tmp_path: Path) -> None:
        self.lock_dir = tmp_path / "locks"
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, run_id: str, *, take_over: bool = False, then: str = "hold") -> None:
        self.procs.append(
            python(
                LOCKER,
                str(self.lock_dir),
                ENV,
                run_id,
                str(self.work),
                "1" if take_over else "0",
                then,
            )
        )
        wait_for(self.work / f"{run_id}.ready")

    def go(self, *run_ids: str) -> dict[str, dict[str, Any]]:
        (self.work / "go").touch()
        for run_id in run_ids:
            wait_for(self.work / f"{run_id}.result")
        return {r: json.loads((self.work / f"{r}.result").read_text()) for r in run_ids}

    def finish(self) -> None:
        (self.work / "release").touch()
        for proc in self.procs:
            assert proc.wait(timeout=30) == 0


@pytest.fixture
def lockers(tmp_path: Path) -> Any:
    group = Lockers(tmp_path)
    yield group
    (group.work / "release").touch()
    for proc in group.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def dead_holder(lockers: Lockers, run_id: str = "old") -> int:
    """A child takes the lock and exits without releasing it; return its (reaped) pid."""
    (lockers.work / "go").touch()
    lockers.start(run_id, then="die")
    wait_for(lockers.work / f"{run_id}.result")
    proc = lockers.procs.pop()
    assert proc.wait(timeout=30) == 0
    (lockers.work / "go").unlink()
    return proc.pid


def exactly_one_winner(results: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    winners = [r for r, res in results.items() if res["ok"]]
    assert len(winners) == 1, results
    (loser,) = (res for res in results.values() if not res["ok"])
    return winners[0], loser


@pytest.mark.parametrize("round_", range(3))
def test_two_runs_started_together_one_proceeds_the_other_is_told_who_holds(
    lockers: Lockers, round_: int
) -> None:
    lockers.start("run-a")
    lockers.start("run-b")
    results = lockers.go("run-a", "run-b")
    winner, loser = exactly_one_winner(results)
    assert loser["error"] == "LockHeldError" and loser["exit_code"] == 4
    assert loser["message"].startswith(f"environment '{ENV}' is locked by run {winner} ")
    assert (
        f"(pid {results[winner]['pid']} on host {socket.gethostname()} since " in (loser["message"])
    )
    assert read_lock(lockers.lock_dir, ENV).run_id == winner
    lockers.finish()
    assert read_lock(lockers.lock_dir, ENV) is None


def test_lock_of_a_dead_process_is_stale_and_can_be_taken_over(lockers: Lockers) -> None:
    pid = dead_holder(lockers)
    with pytest.raises(StaleLockError) as info:
        RunLock.acquire(lockers.lock_dir, ENV, "new", expiry_seconds=60)
    assert str(info.value) == (
        f"stale lock of run old (pid {pid} is not running): pass --take-over to take it over"
    )
    assert info.value.exit_code == 4 and info.value.holder["pid"] == pid
    with RunLock.acquire(lockers.lock_dir, ENV, "new", expiry_seconds=60, take_over=True) as lock:
        assert lock.previous is not None
        assert (lock.previous.run_id, lock.previous.pid) == ("old", pid)
        assert read_lock(lockers.lock_dir, ENV) == lock.info
    assert read_lock(lockers.lock_dir, ENV) is None


def test_two_concurrent_take_overs_exactly_one_succeeds(lockers: Lockers) -> None:
    pid = dead_holder(lockers)
    lockers.start("run-a", take_over=True)
    lockers.start("run-b", take_over=True)
    results = lockers.go("run-a", "run-b")
    winner, loser = exactly_one_winner(results)
    assert results[winner]["previous"] == pid
    assert loser["error"] == "LockHeldError", loser
    assert f"is locked by run {winner} (pid {results[winner]['pid']} " in loser["message"]
    lockers.finish()


def test_a_zombie_holder_counts_as_dead(lockers: Lockers) -> None:
    (lockers.work / "go").touch()
    lockers.start("zombie", then="die")
    wait_for(lockers.work / "zombie.result")
    proc = lockers.procs[-1]
    deadline = time.monotonic() + 30
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(StaleLockError, match=f"pid {proc.pid} is not running"):
        RunLock.acquire(lockers.lock_dir, ENV, "new", expiry_seconds=60)


def test_journal_killed_at_a_random_moment_still_replays(tmp_path: Path) -> None:
    rng = random.Random(4)
    for n in range(6):
        run_dir = tmp_path / f"run-{n}"
        proc = python(WRITER, str(run_dir))
        try:
            wait_for(run_dir / "ready")
            time.sleep(rng.uniform(0.01, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        events = read_events(run_dir / JOURNAL_NAME)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        state = replay(events)
        assert state.run_id == "r1" and state.last_seq == len(events)
        with Journal.open(run_dir) as journal:
            journal.record(EventType.RUN_RESUMED, fingerprint="f" * 64)
        assert replay(read_events(run_dir / JOURNAL_NAME)).last_seq == len(events) + 1


# --- the lock in one process: expiry, ownership, files -----------------------------------------


def test_live_lock_names_its_holder(tmp_path: Path) -> None:
    held = RunLock.acquire(tmp_path, ENV, "r1", expiry_seconds=60)
    with pytest.raises(LockHeldError) as info:
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60, take_over=True)
    assert type(info.value) is LockHeldError and info.value.exit_code == 4
    assert str(info.value) == (
        f"environment '{ENV}' is locked by run r1 (pid {os.getpid()} "
        f"on host {socket.gethostname()} since {held.info.started})"
    )
    assert "upgrader abort r1" in (info.value.hint or "")
    assert held.release()


def test_an_expired_lock_is_stale_even_if_its_process_runs(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    first = RunLock.acquire(tmp_path, ENV, "r1", expiry_seconds=60, now=lambda: clock[0])
    clock[0] += 61
    with pytest.raises(StaleLockError, match="expired at"):
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60, now=lambda: clock[0])
    second = RunLock.acquire(
        tmp_path, ENV, "r2", expiry_seconds=60, take_over=True, now=lambda: clock[0]
    )
    assert second.previous == first.info
    # The old holder can neither refresh nor release what is no longer its lock.
    with pytest.raises(LockHeldError, match="held by run r2"):
        first.refresh(60)
    assert not first.release()
    assert read_lock(tmp_path, ENV) == second.info
    assert second.release()


def test_refresh_moves_the_expiry(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    lock = RunLock.acquire(tmp_path, ENV, "r1", expiry_seconds=60, now=lambda: clock[0])
    clock[0] += 50
    info = lock.refresh(60)
    assert info.expires == utc_iso(1_000_110.0) and info.started == utc_iso(1_000_000.0)
    assert read_lock(tmp_path, ENV) == info
    clock[0] += 50  # past the first expiry, within the refreshed one
    with pytest.raises(LockHeldError):
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60, now=lambda: clock[0])


def test_a_holder_on_another_host_is_trusted_until_it_expires(tmp_path: Path) -> None:
    info = LockInfo("far", 1, "elsewhere.example", utc_iso(100.0), utc_iso(200.0))
    (tmp_path / f"{ENV}.lock").write_text(json.dumps(info.__dict__))
    with pytest.raises(LockHeldError, match=r"pid 1 on host elsewhere\.example"):
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60, now=lambda: 150.0)
    with pytest.raises(StaleLockError, match="expired"):
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60, now=lambda: 250.0)


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path: Path) -> None:
    info = LockInfo(
        "old",
        os.getpid(),
        socket.gethostname(),
        utc_iso(time.time()),
        utc_iso(time.time() + 600),
        pid_start="1",
    )
    (tmp_path / f"{ENV}.lock").write_text(json.dumps(info.__dict__))
    with pytest.raises(StaleLockError, match=f"pid {os.getpid()} is not running"):
        RunLock.acquire(tmp_path, ENV, "r2", expiry_seconds=60)


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"run_id": "x"}', b"[]"])
def test_a_corrupt_lock_is_reported_and_can_be_replaced(tmp_path: Path, content: bytes) -> None:
    (tmp_path / f"{ENV}.lock").write_bytes(content)
    with pytest.raises(StaleLockError, match="unreadable or corrupt"):
        RunLock.acquire(tmp_path, ENV, "r1", expiry_seconds=60)
    with pytest.raises(StaleLockError, match="unreadable or corrupt"):
        read_lock(tmp_path, ENV)
    lock = RunLock.acquire(tmp_path, ENV, "r1", expiry_seconds=60, take_over=True)
    assert lock.previous is None and read_lock(tmp_path, ENV) == lock.info


def test_lock_files_are_owner_only_and_leave_no_temporaries(tmp_path: Path) -> None:
    lock_dir = tmp_path / "state" / "locks"
    with RunLock.acquire(lock_dir, ENV, "r1", expiry_seconds=60) as lock:
        assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert json.loads(lock.path.read_text()).keys() >= {
            "run_id",
            "pid",
            "host",
            "started",
            "expires",
        }
        lock.refresh(120)
    assert sorted(p.name for p in lock_dir.iterdir()) == [f"{ENV}.lock.guard"]


def test_environment_names_cannot_escape_the_lock_dir(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        RunLock.acquire(tmp_path, "../etc", "r1", expiry_seconds=60)
