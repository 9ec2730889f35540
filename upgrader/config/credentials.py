"""An environment's credentials file: ``user:password`` in one line, owner-only, read into a
``Secret`` that never prints its password."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from upgrader.errors import ConfigError
from upgrader.opennebula.secret import Secret


class HasCredentials(Protocol):
    """The parts of an environment (``config.site.Environment``) its credentials need."""

    @property
    def name(self) -> str: ...
    @property
    def credentials(self) -> Path: ...


def read_credentials(env: HasCredentials) -> Secret:
    """The ``user:password`` session in the environment's credentials file.

    Like ssh with a private key, refuses a file that its group or others may read; no
    message ever contains the file's content.
    """
    path = env.credentials
    fd = open_private(
        path, "credentials file", env.name, "write 'user:password' to it, then chmod 600 it"
    )
    try:
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    user, sep, password = lines[0].strip().partition(":") if len(lines) == 1 else ("", "", "")
    if not (user and sep and password):
        raise ConfigError(f"credentials file '{path}' must hold one line 'user:password'")
    return Secret(lines[0].strip())


def open_private(path: Path, what: str, env_name: str, missing_hint: str) -> int:
    """A read-only descriptor of the secret file ``path`` (``what``: "credentials file").

    Like ssh with a private key, refuses a file that its group or others may read, or that
    is not a regular file; no message ever contains the file's content.
    """
    try:
        # Non-blocking, so that a FIFO in its place is refused instead of hanging the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError(
            f"{what} '{path}' for environment '{env_name}' does not exist", hint=missing_hint
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} '{path}' for environment '{env_name}': {exc.strerror or exc}"
        ) from None
    try:
        info = os.fstat(fd)  # of the file opened, not of whatever the path names now
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} '{path}' is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"permissions {mode:04o} for '{path}' are too open: it must be "
                f"readable by its owner only (chmod 600 {path})",
                hint=f"chmod 600 {path}",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd
