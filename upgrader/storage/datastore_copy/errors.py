"""The engine's one error, and sizes written for an operator."""

from __future__ import absolute_import, division, print_function


class CopyError(Exception):
    """A copy or verification that cannot go on; ``str()`` is one line for an operator.

    ``kind`` is ``full``, ``mismatch``, ``locked``, ``source`` or ``io``; ``details`` holds
    the JSON-able evidence (bytes needed and available, path, pid holding the lock...).
    """

    def __init__(self, kind, message, **details):
        super(CopyError, self).__init__(message)
        self.kind = kind
        self.details = details


def human(n):
    """``1536`` -> ``1.5 KiB``: sizes in the messages an operator reads."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return "{0:.1f} {1}".format(n, unit) if unit != "B" else "{0} B".format(int(n))
        n /= 1024
    return "{0:.1f} TiB".format(n)  # pragma: no cover
