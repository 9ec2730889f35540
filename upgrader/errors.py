"""The one error family of upgrader.

Every error a user can cause or meet carries an exit code (DESIGN.md section 4) and,
where there is one, a hint saying what to do next. ``upgrader.cli`` is the only place that
turns them into messages; nothing here logs or prints.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WINDOW = 3
EXIT_LOCKED = 4
EXIT_INHIBITED = 5


class UpgraderError(Exception):
    """Root of every error upgrader expects; anything else is a bug."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(UpgraderError):
    """Bad input: a flag, a file, a value the user gave."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The site config or a credentials file is missing, malformed or unsafe."""


class OneApiError(UpgraderError):
    """oned answered with an error, or could not be asked.

    ``code`` is OpenNebula's error code (0x100 authentication ... 0x2000 internal)
    or, for an XML-RPC fault, the fault code (e.g. -506 for an unknown method).
    """

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class OneAuthError(OneApiError):
    """The session was refused (0x100) or the user may not do this (0x200)."""


class OneNotFoundError(OneApiError):
    """The object does not exist (0x400)."""


class OneStateError(OneApiError):
    """The object is in the wrong state for the action (0x800)."""


class OneArgumentError(OneApiError):
    """oned rejected an argument (0x1000), or the call's arity or types (XML-RPC fault)."""


class OneMethodMissingError(OneApiError):
    """The method does not exist in this oned version (XML-RPC fault -506)."""


class OneInternalError(OneApiError):
    """oned reported an internal error (0x2000)."""


class OneUnavailableError(OneApiError):
    """oned could not be reached or did not answer in time; the only retryable one."""

    retryable = True


class OneResponseError(OneApiError):
    """oned answered something that is not a valid OpenNebula response (garbage, truncated XML)."""


class JournalError(UpgraderError):
    """A run's journal cannot be read or written: a missing file, a corrupt line, a full disk."""


class ResumeRefusedError(JournalError):
    """``resume`` will not continue this run: it was aborted, or an abort is pending."""

    exit_code = EXIT_USAGE


class FingerprintMismatchError(ResumeRefusedError):
    """The runbooks, playbooks, target or inventory changed since the run started."""


class LockHeldError(UpgraderError):
    """Another run holds the environment's run lock.

    ``holder`` is the lock file's content (run_id, pid, host, started, expires), or None
    when the file could not be read.
    """

    exit_code = EXIT_LOCKED

    def __init__(
        self, message: str, *, holder: dict[str, object] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.holder = holder


class StaleLockError(LockHeldError):
    """The run lock belongs to a process that is gone, has expired, or is unreadable."""


class PlaybookSetupError(UpgraderError):
    """A playbook could not even be started: its private data directory is unusable.

    A play that starts and then fails is not an error here: ``ansible_adapter`` returns
    that as a ``PlaybookOutcome`` and the executor decides what it means.
    """


class InvalidFileError(UsageError):
    """A YAML file the user wrote (runbook, site config) is malformed or fails validation.

    The message reads ``<file>:<line>:<column>: <key path>: <problem>``; the parts are
    also kept as attributes (``line`` and ``column`` count from 1; ``None`` when the file
    could not be read at all).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        column: int | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.column = column
        self.key_path = key_path


class RunbookError(InvalidFileError):
    """A runbook is unreadable, malformed YAML, or not a valid runbook."""


class ConfigFileError(InvalidFileError, ConfigError):
    """The site config is malformed YAML or not a valid site config."""


class InventoryFileError(InvalidFileError):
    """An environment's YAML inventory is malformed or lacks a group upgrader needs."""


class GateFailedError(UpgraderError):
    """A gate failed or stayed inconclusive; the run stopped after undoing what it registered."""


class PlaybookFailedError(UpgraderError):
    """A step's playbook failed; the message names the hosts, the journal holds the output."""


class InhibitedError(UpgraderError):
    """The plan has inhibitors that were neither fixed nor accepted."""

    exit_code = EXIT_INHIBITED


class WindowClosedError(UpgraderError):
    """No maintenance window is open (or what is left of it is too short)."""

    exit_code = EXIT_WINDOW
