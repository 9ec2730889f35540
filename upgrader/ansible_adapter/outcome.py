"""A playbook call and its outcome as values: no ``ansible_runner`` import, so code that only
reads outcomes (gates, the executor's types, reports) does not load Ansible."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from upgrader.compat import StrEnum


@dataclass(frozen=True)
class PlaybookCall:
    """One playbook run: what to run, where, against which hosts, and how.

    ``secret_vars`` values (``str`` or ``upgrader.opennebula.Secret``) are written to a 0600
    JSON file in ``private_data_dir``, passed as ``-e @file`` and deleted after the run;
    they never appear on a command line. Tasks that use them must set ``no_log: true``.
    ``vault_password_file`` (the environment's) lets plays read the inventory's ``!vault``
    values: only its path goes on ansible-playbook's command line.
    ``marker`` names the run's processes (a fresh uuid when empty); journal it before the
    run so a later resume can ``kill_marked`` what a crashed upgrader left behind.
    """

    step_id: str
    playbook: Path
    project_dir: Path
    inventory: Path | str
    private_data_dir: Path
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
    limit: str | None = None
    check: bool = False
    diff: bool = False
    timeout: float | None = None
    marker: str = ""
    forks: int = 10
    vault_password_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.step_id:
            raise ValueError("PlaybookCall needs a step_id")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.forks < 1:
            raise ValueError(f"forks must be at least 1, not {self.forks}")
        if any(hasattr(value, "reveal") for value in self.extra_vars.values()):
            raise ValueError("secret values belong in secret_vars, not extra_vars")
        if overlap := sorted(set(self.extra_vars) & set(self.secret_vars)):
            raise ValueError(f"variables in both extra_vars and secret_vars: {overlap}")
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        object.__setattr__(self, "secret_vars", MappingProxyType(dict(self.secret_vars)))


class PlaybookStatus(StrEnum):
    """How a play ended; the values are ansible-runner's status words."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class TaskChange:
    """A task that changed (or, in check mode, would change) a host; ``diff`` is a summary."""

    host: str
    task: str
    action: str
    diff: str = ""


@dataclass(frozen=True)
class PlaybookOutcome:
    """What a playbook run did. ``stats`` maps host -> counter (ok, changed, failures, ...)."""

    status: PlaybookStatus
    rc: int
    stats: Mapping[str, Mapping[str, int]]
    failed_hosts: tuple[str, ...]
    unreachable_hosts: tuple[str, ...]
    changed: tuple[TaskChange, ...]
    stdout_tail: tuple[str, ...]
    duration: float
    marker: str = ""
    killed: tuple[int, ...] = ()
    # What the play handed to the controller with set_stats (e.g. the backup's checksums).
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # "host: message" of each failed task (not ignored): what the operator reads first.
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the play ran to the end without a failed or unreachable host."""
        return self.status is PlaybookStatus.SUCCESSFUL
