"""What the controller needs of Python 3.11+, for the 3.10 that ansible-core 2.16 runs on.

ansible-core 2.16, the last release that manages Python 2.7 hosts, runs on a 3.10, 3.11 or 3.12
controller; these two names keep the product on all three.
"""

from __future__ import annotations

import enum
from datetime import timezone

UTC = timezone.utc


class StrEnum(str, enum.Enum):
    """An enum whose members are their values as text, in ``str()`` and ``format()`` alike."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
