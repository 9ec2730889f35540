"""The one error family of upgrader.

Every error a user can cause or meet carries an exit code (DESIGN.md section 4) and,
where there is one, a hint saying what to do next. ``cli.py`` is the only place that
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
