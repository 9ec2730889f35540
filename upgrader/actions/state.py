"""What every action shares: its state files in the run directory, its step's hosts and vars.

State files are JSON, written atomically (``*.tmp``, fsync, rename, fsync of the directory),
so an action re-run after a crash reads either the old or the new content, never half.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from upgrader.errors import UsageError
from upgrader.journal.store import make_private_dir
from upgrader.text import parse_duration


class StepLike(Protocol):
    """The parts of a PlannedStep (or an undo Step) an action reads."""

    @property
    def vars(self) -> Mapping[str, Any]: ...


class ContextLike(Protocol):
    """The parts of the executor's RunContext an action uses."""

    run_dir: Path
    dry_run: bool
    progress: Callable[[str], None]
    clock: Callable[[], float]


def read_json(path: Path, default: Any = None) -> Any:
    """The file's JSON content, or ``default`` if there is no such file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable action state: {exc}") from exc


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (tmp + fsync + rename), readable by its owner only:
    the state names the cloud's VMs and hosts, like the journal (0600) it sits beside."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a tmp left by a killed run keeps its old mode otherwise
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_id(step: object) -> str:
    """The step's id (an undo Step has one too)."""
    return str(getattr(step, "id", "undo"))


def step_hosts(step: object) -> tuple[str, ...]:
    """The batch of hosts of a per-host step; empty for an undo step or a whole-cloud step."""
    return tuple(getattr(step, "hosts", ()) or ())


def step_hop(step: object) -> str:
    """The hop (``3.2-3.4``) a planned step belongs to; ``-`` for an undo step."""
    return str(getattr(step, "hop", "") or "-")


def seconds(step: StepLike, name: str, default: float) -> float:
    """A positive duration from the step's vars: seconds, or text like ``90s``, ``5m``."""
    value = step.vars.get(name, default)
    try:
        number = parse_duration(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise UsageError(
            f"step var {name} must be a duration (seconds, or 90s, 5m, 1h30m), not {value!r}"
        )
    return number


def wait_until(
    ctx: ContextLike, deadline: float, interval: float, done: Callable[[], bool]
) -> bool:
    """Poll ``done`` every ``interval`` seconds until it is true (True) or ``deadline`` (False)."""
    while True:
        if done():
            return True
        if ctx.clock() >= deadline:
            return False
        time.sleep(min(interval, max(0.0, deadline - ctx.clock())) or interval)
