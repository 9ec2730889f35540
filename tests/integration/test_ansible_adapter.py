"""ansible_adapter against real ansible-runner on the local fixture project.

Every test uses its own marker, and a finalizer kills whatever still carries it, so a
failing test never leaves a ``sleep 60`` behind. Process checks read /proc directly
rather than trusting the adapter's own scan.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from upgrader.ansible_adapter.outcome import PlaybookCall, PlaybookOutcome, PlaybookStatus
from upgrader.ansible_adapter.runner import (
    MARKER_VAR,
    kill_marked,
    leftover_processes,
    run_playbook,
)
from upgrader.errors import PlaybookSetupError
from upgrader.opennebula.secret import Secret

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "adapter"
INVENTORY = PROJECT / "inventory.ini"
SECRET = "s3cr3t-" + uuid.uuid4().hex


# --- helpers ---------------------------------------------------------------------------


def _proc_state(pid: int) -> str | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    """A zombie (killed, not yet reaped by init) counts as gone."""
    return _proc_state(pid) not in (None, "Z", "X")


def _marked(marker: str) -> dict[int, list[str]]:
    """Live processes with the marker in their environment -> their argv."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ.split(b"\0") and _alive(int(name)):
            found[int(name)] = [a.decode(errors="replace") for a in argv if a]
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    value = "test-" + uuid.uuid4().hex
    yield value
    kill_marked(value)


def _call(tmp_path: Path, playbook: str, marker: str, **kw: Any) -> PlaybookCall:
    kw.setdefault("inventory", INVENTORY)
    kw.setdefault("private_data_dir", tmp_path / "pdd")
    return PlaybookCall(
        step_id="test-step", playbook=Path(playbook), project_dir=PROJECT, marker=marker, **kw
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.lines: list[str] = []

    def run(self, call: PlaybookCall, **kw: Any) -> PlaybookOutcome:
        return run_playbook(call, on_event=self.events.append, progress=self.lines.append, **kw)


def _no_secret_under(root: Path) -> list[Path]:
    leaks = []
    for path in root.rglob("*"):
        if path.is_file() and SECRET.encode() in path.read_bytes():
            leaks.append(path)
    return leaks


# --- plain outcomes ---------------------------------------------------------------------


def test_successful_play_reports_stats_progress_and_events(tmp_path: Path, marker: str) -> None:
    rec = Recorder()
    outcome = rec.run(_call(tmp_path, "ok.yml", marker))

    assert outcome.status is PlaybookStatus.SUCCESSFUL
    assert outcome.status == "successful"
    assert outcome.ok and outcome.rc == 0
    assert outcome.stats["localhost"]["ok"] == 2
    assert outcome.stats["localhost"]["changed"] == 1
    assert outcome.failed_hosts == () and outcome.unreachable_hosts == ()
    assert [c.task for c in outcome.changed] == ["Run a command that reports a change"]
    assert "[step/test-step] localhost: task Say hello ... ok" in rec.lines
    assert (
        "[step/test-step] localhost: task Run a command that reports a change ... changed"
        in rec.lines
    )
    names = [e["event"] for e in rec.events]
    assert names.count("playbook_on_task_start") == 2
    assert names[-1] == "playbook_on_stats"
    ok = next(e for e in rec.events if e["event"] == "runner_on_ok")
    assert {"host", "task", "action", "duration", "changed"} <= set(ok)
    assert ok["action"] == "ansible.builtin.debug"
    assert all("env" not in e for e in rec.events)
    assert any("PLAY RECAP" in line for line in outcome.stdout_tail)
    assert not any("\x1b[" in line for line in outcome.stdout_tail)
    assert leftover_processes(marker) == []


def test_data_handed_over_with_set_stats_reaches_the_outcome(tmp_path: Path, marker: str) -> None:
    outcome = Recorder().run(_call(tmp_path, "stats.yml", marker))

    assert outcome.ok
    assert outcome.data == {"handed": {"localhost": {"sha256": "abc123"}}}
    assert Recorder().run(_call(tmp_path, "ok.yml", marker)).data == {}


def test_failing_task_gives_failed_outcome_without_raising(tmp_path: Path, marker: str) -> None:
    rec = Recorder()
    outcome = rec.run(_call(tmp_path, "fail.yml", marker))

    assert outcome.status == "failed"
    assert outcome.rc == 2
    assert outcome.failed_hosts == ("localhost",)
    assert any("deliberate failure for the adapter test" in line for line in outcome.stdout_tail)
    assert len(outcome.stdout_tail) <= 20
    assert "[step/test-step] localhost: task Fail on purpose ... failed" in rec.lines
    failed = next(e for e in rec.events if e["event"] == "runner_on_failed")
    assert "deliberate failure" in failed["msg"]


def test_missing_playbook_is_a_failed_outcome(tmp_path: Path, marker: str) -> None:
    outcome = run_playbook(_call(tmp_path, "nope.yml", marker))

    assert outcome.status == "failed" and outcome.rc == 1
    assert outcome.stats == {}
    assert any("nope.yml" in line for line in outcome.stdout_tail)


def test_unreachable_host_is_reported(tmp_path: Path, marker: str) -> None:
    outcome = run_playbook(
        _call(tmp_path, "ping.yml", marker, inventory=PROJECT / "unreachable.ini")
    )

    assert outcome.status == "failed" and outcome.rc == 4
    assert outcome.unreachable_hosts == ("ghost",)
    assert outcome.failed_hosts == ()
    assert outcome.stats["localhost"]["ok"] == 1


def test_limit_restricts_the_hosts(tmp_path: Path, marker: str) -> None:
    outcome = run_playbook(
        _call(tmp_path, "ping.yml", marker, inventory=PROJECT / "unreachable.ini", limit="local")
    )

    assert outcome.status == "successful"
    assert set(outcome.stats) == {"localhost"}


def test_check_mode_with_diff_reports_change_and_leaves_file(tmp_path: Path, marker: str) -> None:
    target = tmp_path / "target.conf"
    target.write_text("x=original\n")
    outcome = run_playbook(
        _call(
            tmp_path, "copy.yml", marker, check=True, diff=True, extra_vars={"target": str(target)}
        )
    )

    assert outcome.status == "successful"
    [change] = outcome.changed
    assert change.host == "localhost"
    assert change.action == "ansible.builtin.copy"
    assert "-x=original" in change.diff and "+x=changed" in change.diff
    assert target.read_text() == "x=original\n"


# --- variables and secrets --------------------------------------------------------------


def test_extra_and_secret_vars_reach_the_play_and_the_secret_stays_hidden(
    tmp_path: Path, marker: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    call = _call(
        tmp_path,
        "vars.yml",
        marker,
        extra_vars={"greeting": "hello-plain", "out_dir": str(out), "nap": 3},
        secret_vars={"db_password": Secret(SECRET)},
    )
    rec = Recorder()
    result: list[PlaybookOutcome] = []
    worker = threading.Thread(target=lambda: result.append(rec.run(call)))
    worker.start()

    cmdlines: list[str] = []
    modes: set[int] = set()
    saw_sleep = False
    while worker.is_alive():
        for argv in _marked(marker).values():
            cmdlines.append(" ".join(argv))
            saw_sleep = saw_sleep or argv[:2] == ["sleep", "3"]
        for path in (call.private_data_dir / "secrets").glob("*"):
            modes.add(stat.S_IMODE(path.stat().st_mode))
        time.sleep(0.1)
    worker.join()
    [outcome] = result

    assert outcome.status == "successful", outcome.stdout_tail
    assert (out / "plain.txt").read_text() == "hello-plain\n"
    assert (out / "secret.txt").read_text() == SECRET + "\n"
    assert saw_sleep, "never saw the sleep task running"
    assert any("ansible-playbook" in c for c in cmdlines)
    assert not [c for c in cmdlines if SECRET in c]
    assert any("hello-plain" in c for c in cmdlines)  # plain extra vars may be visible
    assert modes == {0o600}
    assert _no_secret_under(call.private_data_dir) == []
    assert SECRET not in repr(outcome) and SECRET not in repr(call)
    assert SECRET not in json.dumps(rec.events, default=str)
    assert not [line for line in rec.lines if SECRET in line]
    tasks = yaml.safe_load((PROJECT / "vars.yml").read_text())[0]["tasks"]
    assert all(task.get("no_log") is True for task in tasks if "db_password" in str(task))


def test_secret_values_are_refused_in_extra_vars(tmp_path: Path, marker: str) -> None:
    with pytest.raises(ValueError, match="secret_vars"):
        _call(tmp_path, "ok.yml", marker, extra_vars={"pw": Secret("x")})


def test_reused_private_data_dir_does_not_leak_stale_extravars(tmp_path: Path, marker: str) -> None:
    call = _call(tmp_path, "stale.yml", marker, extra_vars={"fresh_var": "fresh"})
    assert run_playbook(call).status == "successful"
    # What a run without suppress_env_files leaves behind: runner would pass it as -e @.
    (call.private_data_dir / "env" / "extravars").write_text(json.dumps({"stale_var": 1}))
    (call.private_data_dir / "inventory").mkdir()
    (call.private_data_dir / "inventory" / "hosts").write_text("stalehost\n")

    outcome = run_playbook(call)

    assert outcome.status == "successful", outcome.stdout_tail
    assert not (call.private_data_dir / "env" / "extravars").exists()
    assert set(outcome.stats) == {"localhost"}


def test_foreign_non_empty_private_data_dir_is_refused(tmp_path: Path, marker: str) -> None:
    pdd = tmp_path / "someone-elses"
    (pdd / "env").mkdir(parents=True)
    (pdd / "env" / "extravars").write_text("{}")

    with pytest.raises(PlaybookSetupError, match="not made by upgrader"):
        run_playbook(_call(tmp_path, "ok.yml", marker, private_data_dir=pdd))
    assert (pdd / "env" / "extravars").read_text() == "{}"


# --- cancel and timeout: nothing may survive --------------------------------------------


class ProcessWatch(threading.Thread):
    """Polls /proc for the marker; sets ``cancel`` once ``wanted`` was seen running."""

    def __init__(self, marker: str, wanted: Any, cancel: threading.Event | None) -> None:
        super().__init__(daemon=True)
        self.marker, self.wanted, self.cancel = marker, wanted, cancel
        self.seen: dict[int, list[str]] = {}
        self.sessions: set[int] = set()
        self.target: int | None = None
        self.canceled_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            for pid, argv in _marked(self.marker).items():
                self.seen[pid] = argv
                try:
                    self.sessions.add(os.getsid(pid))
                except OSError:
                    continue
                if self.target is None and self.wanted(pid, argv, self):
                    self.target = pid
            if self.target is not None and self.cancel is not None and self.canceled_at is None:
                time.sleep(1.0)  # let it run a little: the task is really under way
                self.canceled_at = time.monotonic()
                self.cancel.set()
            time.sleep(0.05)


def _is_sleep(pid: int, argv: list[str], watch: ProcessWatch) -> bool:
    return argv[:2] == ["sleep", "60"]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _is_worker(pid: int, argv: list[str], watch: ProcessWatch) -> bool:
    """A task worker: a fork of ansible-playbook (not our child), whatever its session."""
    parent = watch.seen.get(_parent(pid), [])
    return any("ansible-playbook" in a for a in argv) and any(
        "ansible-playbook" in a for a in parent
    )


def _is_detached(pid: int, argv: list[str], watch: ProcessWatch) -> bool:
    """The task's command that setsid()ed: no process-group kill of ansible-playbook reaches it."""
    return argv[:2] == ["sleep", "61"] and os.getsid(pid) == pid


def _assert_nothing_left(marker: str, watch: ProcessWatch) -> None:
    assert _marked(marker) == {}, f"left behind: {_marked(marker)}"
    assert leftover_processes(marker) == []
    alive = {pid: argv for pid, argv in watch.seen.items() if _alive(pid)}
    assert alive == {}, f"still alive: {alive}"


@pytest.mark.parametrize(
    ("playbook", "wanted"),
    [("sleep.yml", _is_sleep), ("pause.yml", _is_worker), ("detached.yml", _is_detached)],
)
def test_cancel_kills_the_task_worker_and_its_command(
    tmp_path: Path, marker: str, playbook: str, wanted: Any
) -> None:
    cancel = threading.Event()
    watch = ProcessWatch(marker, wanted, cancel)
    watch.start()
    rec = Recorder()
    outcome = rec.run(_call(tmp_path, playbook, marker), cancel=cancel)
    returned_at = time.monotonic()
    watch.stop.set()
    watch.join()

    assert watch.target is not None, f"never saw the task running: {watch.seen}"
    assert watch.canceled_at is not None
    assert returned_at - watch.canceled_at < 4.0
    assert outcome.status is PlaybookStatus.CANCELED
    assert outcome.rc == 254
    _assert_nothing_left(marker, watch)
    assert any(line.startswith("[step/test-step] canceled: killed") for line in rec.lines)
    if playbook == "detached.yml":
        # Out of ansible-playbook's session: only the kill by marker reaches it.
        assert len(watch.sessions) >= 2
        assert watch.target in outcome.killed


def test_timeout_kills_everything(tmp_path: Path, marker: str) -> None:
    watch = ProcessWatch(marker, _is_sleep, None)
    watch.start()
    started = time.monotonic()
    # 10 s: on a loaded machine ansible-playbook alone can take 3 s to reach the task
    outcome = run_playbook(_call(tmp_path, "sleep.yml", marker, timeout=10))
    elapsed = time.monotonic() - started
    watch.stop.set()
    watch.join()

    assert watch.target is not None, "never saw sleep 60 running"
    assert outcome.status == "timeout" and outcome.rc == 254
    assert 10.0 <= elapsed < 18.0
    _assert_nothing_left(marker, watch)


def test_a_failing_event_handler_stops_the_run_and_is_raised(tmp_path: Path, marker: str) -> None:
    def on_event(event: Mapping[str, Any]) -> None:
        if event["event"] == "playbook_on_task_start":
            raise OSError("journal disk full")

    watch = ProcessWatch(marker, lambda *_: False, None)
    watch.start()
    with pytest.raises(OSError, match="journal disk full"):
        run_playbook(_call(tmp_path, "sleep.yml", marker), on_event=on_event)
    watch.stop.set()
    watch.join()
    _assert_nothing_left(marker, watch)


def test_kill_marked_finds_processes_by_environment_only(tmp_path: Path, marker: str) -> None:
    env = {**os.environ, MARKER_VAR: marker}
    procs = [subprocess.Popen(["sleep", "60"], env=env, start_new_session=True) for _ in range(2)]
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        assert leftover_processes(marker) == sorted(p.pid for p in procs)
        assert sorted(kill_marked(marker)) == sorted(p.pid for p in procs)
        assert leftover_processes(marker) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        for proc in [*procs, bystander]:
            proc.wait()
