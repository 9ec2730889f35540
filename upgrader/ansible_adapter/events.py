"""From ansible-runner's events to a ``PlaybookOutcome``: what one playbook run reports.

``Watch`` is the event handler and cancel callback ``run_playbook`` hands to ansible-runner:
it turns each runner event into a slim event (task start, host result, final stats; never the
environment) and a progress line, collects the tasks that changed a host, and decides when a
run must stop (cancel or timeout). ``build_outcome`` turns what it saw, with the runner's
status and the tail of its stdout, into the value ``run_playbook`` returns. Nothing here
imports ``ansible_runner``; ``runner.py`` drives the run.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from upgrader.ansible_adapter.outcome import PlaybookOutcome, PlaybookStatus, TaskChange

TAIL_LINES = 20
_DIFF_LIMIT = 4000
_MSG_LIMIT = 500
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued", "processed")


class Watch:
    """Turns runner events into slim events, progress lines and changes; decides when to stop."""

    def __init__(
        self,
        step_id: str,
        timeout: float | None,
        cancel: threading.Event | None,
        on_event: Callable[[Mapping[str, Any]], None] | None,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.step_id = step_id
        self.cancel = cancel
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.on_event = on_event
        self.progress = progress
        self.reason: PlaybookStatus | None = None
        self.error: BaseException | None = None
        self.stats: dict[str, dict[str, int]] | None = None
        self.data: dict[str, Any] = {}
        self.changes: list[TaskChange] = []
        self.failed: set[str] = set()
        self.unreachable: set[str] = set()
        self.failures: list[str] = []

    def should_stop(self) -> bool:
        """cancel_callback for runner: polled every pexpect_timeout."""
        if self.reason is None:
            if self.error is not None or (self.cancel is not None and self.cancel.is_set()):
                self.reason = PlaybookStatus.CANCELED
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.reason = PlaybookStatus.TIMEOUT
        return self.reason is not None

    def handle(self, event: Mapping[str, Any]) -> bool:
        """event_handler for runner; keeps every event in the artifacts."""
        try:
            slim = self._slim(event)
            if slim is not None and self.on_event is not None:
                self.on_event(slim)
        except Exception as exc:  # runner would swallow it or leave ansible running
            self.error = self.error or exc
        return True

    def say(self, line: str) -> None:
        """Hand ``line`` to ``progress``; an exception from it is kept and stops the run."""
        if self.progress is not None:
            try:
                self.progress(line)
            except Exception as exc:
                self.error = self.error or exc

    def _slim(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        base = {
            "event": name,
            "step": self.step_id,
            "counter": event.get("counter"),
            "created": event.get("created"),
        }
        if name == "playbook_on_stats":
            self.stats = _per_host_stats(data)
            artifact = data.get("artifact_data")
            self.data = dict(artifact) if isinstance(artifact, Mapping) else {}
            return {**base, "stats": self.stats}
        action = data.get("resolved_action") or data.get("task_action") or ""
        if name == "runner_retry":
            line = progress_line(data.get("res"))
            if line:
                self.say(f"[step/{self.step_id}] {data.get('host', '')}: {line}")
            return None
        if name == "playbook_on_task_start":
            return {**base, "task": data.get("task", ""), "action": action}
        if name not in _RESULTS:
            return None
        res = data.get("res") or {}
        host, task = data.get("host", ""), data.get("task", "")
        changed = bool(res.get("changed")) and name == "runner_on_ok"
        word = "changed" if changed else _RESULTS[name]
        if name == "runner_on_failed" and not data.get("ignore_errors"):
            self.failed.add(host)
            if res.get("msg"):
                self.failures.append(f"{host}: {' '.join(str(res['msg']).split())}")
        elif name == "runner_on_failed":
            word = "failed (ignored)"
        if name == "runner_on_unreachable":
            self.unreachable.add(host)
        slim = {
            **base,
            "host": host,
            "task": task,
            "action": action,
            "duration": data.get("duration"),
            "changed": changed,
            "result": word,
        }
        if changed:
            change = TaskChange(host, task, action, _diff_summary(res.get("diff")))
            self.changes.append(change)
            slim["diff"] = change.diff
        if name in {"runner_on_failed", "runner_on_unreachable"} and res.get("msg"):
            slim["msg"] = str(res["msg"])[:_MSG_LIMIT]
        self.say(f"[step/{self.step_id}] {host}: task {task} ... {word}")
        return slim


def progress_line(res: Any) -> str:
    """``copy 42 % (1.2 GiB of 2.9 GiB, 310 files), ETA 1m20s`` from a retry of the storage
    module's ``state: progress`` (its ``upgrader_progress``); "" for any other retry."""
    if not isinstance(res, Mapping) or not isinstance(res.get("upgrader_progress"), Mapping):
        return ""
    info = res["upgrader_progress"]
    if not info:
        return "copy starting"
    done, total = int(info.get("bytes_done") or 0), int(info.get("bytes_total") or 0)
    word = "verify" if info.get("phase") == "verify" else "copy"
    pct = 100 if total <= 0 else min(100, done * 100 // total)
    line = (
        f"{word} {pct} % ({_size(done)} of {_size(total)}, "
        f"{int(info.get('files_done') or 0)} files)"
    )
    eta = info.get("eta_seconds")
    if isinstance(eta, int | float) and not info.get("finished"):
        minutes, seconds = divmod(round(eta), 60)
        line += f", ETA {minutes}m{seconds:02d}s" if minutes else f", ETA {seconds}s"
    return line


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _per_host_stats(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    hosts = sorted({host for key in _STAT_KEYS for host in data.get(key) or {}})
    return {
        host: {key: int((data.get(key) or {}).get(host, 0)) for key in _STAT_KEYS} for host in hosts
    }


def _diff_summary(diff: Any) -> str:
    """A unified diff (or the module's prepared text) of what a task changed, truncated."""
    parts = []
    for item in diff if isinstance(diff, list) else [diff] if diff else []:
        if not isinstance(item, Mapping):
            continue
        if item.get("prepared"):
            parts.append(str(item["prepared"]))
            continue
        before, after = item.get("before", ""), item.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str):
            before, after = (
                json.dumps(x, indent=1, sort_keys=True, default=str) + "\n" for x in (before, after)
            )
        parts.append(
            "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=str(item.get("before_header", "before")),
                    tofile=str(item.get("after_header", "after")),
                )
            )
        )
    text = "".join(parts)
    return text if len(text) <= _DIFF_LIMIT else text[:_DIFF_LIMIT] + "\n[diff truncated]\n"


def _stdout_tail(artifact_dir: str) -> tuple[str, ...]:
    try:
        text = Path(artifact_dir, "stdout").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines[-TAIL_LINES:])


def build_outcome(
    runner: Any, watch: Watch, marker: str, killed: tuple[int, ...], duration: float
) -> PlaybookOutcome:
    """The outcome of a finished run, from what ``watch`` saw and the runner's status."""
    stats = watch.stats or {}
    if watch.stats is not None:
        failed = {host for host, counts in stats.items() if counts["failures"]}
        unreachable = {host for host, counts in stats.items() if counts["dark"]}
    else:  # cancelled, timed out or crashed: no recap, so go by the events seen
        failed, unreachable = watch.failed, watch.unreachable
    if watch.reason is not None:
        status = watch.reason
    elif runner.status == PlaybookStatus.SUCCESSFUL:
        status = PlaybookStatus.SUCCESSFUL
    else:
        status = PlaybookStatus.FAILED
    return PlaybookOutcome(
        status=status,
        rc=runner.rc if isinstance(runner.rc, int) else 1,
        stats=MappingProxyType(stats),
        failed_hosts=tuple(sorted(failed)),
        unreachable_hosts=tuple(sorted(unreachable)),
        changed=tuple(watch.changes),
        stdout_tail=_stdout_tail(runner.config.artifact_dir),
        duration=round(duration, 3),
        marker=marker,
        killed=killed,
        data=MappingProxyType(watch.data),
        failures=tuple(watch.failures),
    )
