"""The numbers of oned 3.x's state machines, and the token that keeps their timers honest.

VM STATE and LCM_STATE as in ``include/VirtualMachine.h``, host STATE as in
``include/Host.h`` (shared/reference/opennebula-3x.md sections 3.1 to 3.3), and the
history REASON values (section 2.2). The modules that drive the machines import them
from here: ``vm_lcm`` (a VM's life), ``vm_migration`` (moves between hosts),
``monitoring`` (host monitoring and VM polling) and ``scheduler`` (mm_sched).

Every transition runs later, on the simulated clock. A timer carries the token its
object had when it was armed; any newer transition takes a new token, so a stale
timer finds it invalid and does nothing.
"""

from __future__ import annotations

from typing import Any

from upgrader.lab.oned.cloud import ACTION, Cloud, OneFailure

# VM states and LCM states.
INIT, PENDING, HOLD, ACTIVE, STOPPED, SUSPENDED, DONE, FAILED = range(8)
(
    LCM_INIT,
    PROLOG,
    BOOT,
    RUNNING,
    MIGRATE,
    SAVE_STOP,
    SAVE_SUSPEND,
    SAVE_MIGRATE,
    PROLOG_MIGRATE,
    PROLOG_RESUME,
    EPILOG_STOP,
    EPILOG,
    SHUTDOWN,
    CANCEL,
    FAILURE,
    CLEANUP,
    UNKNOWN,
) = range(17)
H_INIT, H_MONITORING, H_MONITORED, H_ERROR, H_DISABLED, H_MONITORING_ERROR = range(6)
REASON_NONE, REASON_ERROR, REASON_STOP_RESUME, REASON_USER, REASON_CANCEL = range(5)


def wrong_state() -> OneFailure:
    """oned's answer to an action the VM's state does not allow."""
    return OneFailure(ACTION, "Wrong state to perform action")


def now(c: Cloud) -> int:
    """The simulated time in whole seconds, as oned writes it into history records."""
    return int(c.clock.now())


def new_token(obj: Any) -> int:
    """A new token for a VM or host: the timers armed before it are now stale."""
    obj._op = getattr(obj, "_op", 0) + 1
    return obj._op


def is_current(obj: Any, token: int) -> bool:
    """Whether a timer armed with ``token`` still speaks for ``obj``."""
    return getattr(obj, "_op", 0) == token
