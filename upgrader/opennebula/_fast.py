"""The VM pool's fast path: <VM> elements read straight into models, for well-formed ones.

A 20,000-VM pool is about 1.5 million elements, and the careful readers in ``parse`` (one
method call per field, each ready to say what is wrong and where) spend about 40 us on each
VM. These builders read the same fields the same way in about 18 us, and say nothing: on
anything unusual (a missing element, text that is not a number, an unknown state) they let
a KeyError or ValueError out and ``parse_pool`` hands the element to the careful reader,
which either explains the problem or, if the fast path was only stricter, builds the model.
So a fast result always equals the careful one;
``tests/unit/test_opennebula_fast_pool.py`` holds them to that.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Final, TypeVar

from upgrader.opennebula._xml import PERMISSION_BITS, parse_template_element
from upgrader.opennebula.enums import HistoryReason, LcmState, VmState
from upgrader.opennebula.models import History, Permissions, Vm

# value -> member, the canonical member as ``Kind(value)`` gives it; KeyError for others.
_VM_STATES: Final = {member.value: member for member in VmState}
_LCM_STATES: Final = {member.value: member for member in LcmState}
_REASONS: Final = {member.value: member for member in HistoryReason}
_FLAGS: Final = {0: False, 1: True}
_BITS: Final = {"0": False, "1": True}

# There are 512 possible PERMISSIONS and most VMs share a few: one instance each, which also
# spares the garbage collector 20,000 objects in a 20,000-VM pool.
_PERMISSIONS: dict[tuple[tuple[str, str | None], ...], Permissions] = {}


M = TypeVar("M")


def _maker(cls: type[M]) -> Callable[..., M]:
    """``cls(*values)`` for a frozen slots dataclass, five times faster.

    A frozen dataclass's __init__ stores each field through ``object.__setattr__``: 2.6 us
    for a History, 80 ms for the models of a 20,000-VM pool. A plain slots dataclass with
    the same fields stores them directly (0.4 us) and becomes a ``cls`` by a change of
    class, which Python allows between classes of the same layout (checked here, at import).
    The result is the object ``cls(*values)`` builds: same class, slots, equality and
    frozenness. No ``__post_init__`` runs, so the models must have none (checked too).
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ the fast path would skip")
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    draft = dataclasses.make_dataclass(f"{cls.__name__}Draft", names, slots=True, eq=False)

    def make(*values: Any) -> M:
        obj = draft(*values)
        obj.__class__ = cls
        return obj  # type: ignore[return-value]

    make(*names)  # TypeError now if the layouts ever differ
    return make


_new_vm: Final = _maker(Vm)
_new_history: Final = _maker(History)


def _opt_int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _first(el: ET.Element, name: str) -> ET.Element:
    """The first child called ``name``; KeyError if there is none."""
    child = el.find(name)
    if child is None:
        raise KeyError(name)
    return child


def permissions(el: ET.Element | None) -> Permissions | None:
    """<PERMISSIONS> as nine children ``OWNER_U`` ... ``OTHER_A`` of text 0 or 1, in order."""
    if el is None:
        return None
    key = tuple([(bit.tag, bit.text) for bit in el])
    found = _PERMISSIONS.get(key)
    if found is None:
        if tuple(tag for tag, _ in key) != PERMISSION_BITS:
            raise KeyError("PERMISSIONS")
        found = _PERMISSIONS[key] = Permissions(*(_BITS[text or ""] for _, text in key))
    return found


def history(el: ET.Element) -> History:
    """One <HISTORY> record."""
    t = {child.tag: child.text or "" for child in reversed(el)}  # the first of a name wins
    get = t.get
    return _new_history(  # the fields in order: oid, seq, hostname, ...
        _opt_int(get("OID")),
        int(t["SEQ"]),
        t["HOSTNAME"],
        get("VM_DIR"),
        int(t["HID"]),
        int(t["STIME"]),
        int(t["ETIME"]),
        t["VMMMAD"],
        t["VNMMAD"],
        get("TMMAD"),
        _opt_int(get("DS_ID")),
        int(t["PSTIME"]),
        int(t["PETIME"]),
        int(t["RSTIME"]),
        int(t["RETIME"]),
        int(t["ESTIME"]),
        int(t["EETIME"]),
        _REASONS[int(t["REASON"])],
    )


def vm(el: ET.Element) -> Vm:
    """One <VM>, history records sorted by SEQ."""
    t = {child.tag: child.text or "" for child in reversed(el)}  # the first of a name wins
    records = [
        history(record) for record in _first(el, "HISTORY_RECORDS") if record.tag == "HISTORY"
    ]
    if len(records) > 1:  # pool calls carry the last record only
        records.sort(key=lambda record: record.seq)
    resched = t.get("RESCHED")
    return _new_vm(  # the fields in order: id, uid, gid, uname, ...
        int(t["ID"]),
        int(t["UID"]),
        int(t["GID"]),
        t["UNAME"],
        t["GNAME"],
        t["NAME"],
        permissions(el.find("PERMISSIONS")),
        int(t["LAST_POLL"]),
        _VM_STATES[int(t["STATE"])],
        _LCM_STATES[int(t["LCM_STATE"])],
        None if resched is None else _FLAGS[int(resched)],
        int(t["STIME"]),
        int(t["ETIME"]),
        t["DEPLOY_ID"],
        int(t["MEMORY"]),
        int(t["CPU"]),
        int(t["NET_TX"]),
        int(t["NET_RX"]),
        parse_template_element(_first(el, "TEMPLATE")),
        tuple(records),
    )
