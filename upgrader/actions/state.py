"""What every action shares: its state files in the run directory, its step's hosts and vars.

State files are JSON, written whole (``upgrader.journal.files.write_private``), so an action
re-run after a crash reads either the old or the new content, never half.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from upgrader.errors import UsageError
from upgrader.journal.files import make_private_dir, write_private
from upgrader.text import parse_duration


class StepLike(Protocol):
    """The parts of a PlannedStep an action reads (an undo step is planned like any other)."""

    @property
    def id(self) -> str: ...
    @property
    def hop(self) -> str: ...
    @property
    def hosts(self) -> tuple[str, ...]: ...
    @property
    def vars(self) -> Mapping[str, Any]: ...


class ContextLike(Protocol):
    """The parts of the executor's RunContext an action uses."""

    run_id: str
    run_dir: Path
    dry_run: bool
    progress: Callable[[str], None]
    clock: Callable[[], float]
    # hosts the run's last play on them could not reach (oned notices only minutes later)
    unreachable: set[str]


def read_json(path: Path, default: Any = None) -> Any:
    """The file's JSON content, or ``default`` if there is no such file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable action state: {exc}") from exc


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON whole (``write_private``), readable by its owner only: the state
    names the cloud's VMs and hosts, like the journal (0600) it sits beside."""
    make_private_dir(path.parent)
    write_private(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def step_hop(step: StepLike) -> str:
    """The hop (``3.2-3.4``) a planned step belongs to; ``-`` for an undo step."""
    return step.hop or "-"


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
