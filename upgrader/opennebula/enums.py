"""OpenNebula 3.2/3.4/3.6 enumerations, with the 3.x names (not pyone's 7.x ones)."""

from __future__ import annotations

from enum import IntEnum

from upgrader.compat import StrEnum


class OneVersion(StrEnum):
    """The OpenNebula releases upgrader knows; compare them with ``<`` and ``>=``."""

    V3_2 = "3.2"
    V3_4 = "3.4"
    V3_6 = "3.6"

    @property
    def _key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.value.split("."))

    def __lt__(self, other: object) -> bool:
        if isinstance(other, OneVersion):
            return self._key < other._key
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, OneVersion):
            return self._key <= other._key
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, OneVersion):
            return self._key > other._key
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, OneVersion):
            return self._key >= other._key
        return NotImplemented


class HostState(IntEnum):
    """Host STATE; 3.6 renamed 1 to MONITORING_MONITORED and added 5."""

    INIT = 0
    MONITORING = 1
    MONITORING_MONITORED = 1  # the 3.6 name of the same value
    MONITORED = 2
    ERROR = 3
    DISABLED = 4
    MONITORING_ERROR = 5  # 3.6 only


class VmState(IntEnum):
    """VM STATE (same in 3.2, 3.4 and 3.6)."""

    INIT = 0
    PENDING = 1
    HOLD = 2
    ACTIVE = 3
    STOPPED = 4
    SUSPENDED = 5
    DONE = 6
    FAILED = 7


class LcmState(IntEnum):
    """VM LCM_STATE, meaningful only when STATE is ACTIVE; HOTPLUG is 3.6 only."""

    LCM_INIT = 0
    PROLOG = 1
    BOOT = 2
    RUNNING = 3
    MIGRATE = 4
    SAVE_STOP = 5
    SAVE_SUSPEND = 6
    SAVE_MIGRATE = 7
    PROLOG_MIGRATE = 8
    PROLOG_RESUME = 9
    EPILOG_STOP = 10
    EPILOG = 11
    SHUTDOWN = 12
    CANCEL = 13
    FAILURE = 14
    CLEANUP = 15
    UNKNOWN = 16
    HOTPLUG = 17


class ImageState(IntEnum):
    """Image STATE; CLONE, DELETE and USED_PERS are 3.6 only."""

    INIT = 0
    READY = 1
    USED = 2
    DISABLED = 3
    LOCKED = 4
    ERROR = 5
    CLONE = 6
    DELETE = 7
    USED_PERS = 8


class ImageType(IntEnum):
    """Image TYPE (same in all 3.x)."""

    OS = 0
    CDROM = 1
    DATABLOCK = 2


class DiskType(IntEnum):
    """DISK_TYPE of images and datastores (3.6 only)."""

    FILE = 0
    CD_ROM = 1
    BLOCK = 2


class HistoryReason(IntEnum):
    """Why a history record (a stay of a VM on a host) ended."""

    NONE = 0
    ERROR = 1
    STOP_RESUME = 2
    USER = 3
    CANCEL = 4
