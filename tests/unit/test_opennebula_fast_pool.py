"""Big pool replies: the VM pool's fast path, held to the careful reader, and the collector.

``parse_vm_pool`` reads each <VM> with ``_fast.vm`` and, when that lets a KeyError or a
ValueError out, with the careful ``parse._vm``. Whatever the document, the result (models
or error message) must be the one the careful reader alone gives.
"""

from __future__ import annotations

import dataclasses
import gc
import pickle
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from upgrader.errors import OneResponseError
from upgrader.opennebula import _fast, parse
from upgrader.opennebula._xml import Node, parse_pool
from upgrader.opennebula.models import History, Permissions, Vm

BITS = "".join(
    f"<{who}_{bit}>{value}</{who}_{bit}>"
    for (who, bit), value in zip(
        [(w, b) for w in ("OWNER", "GROUP", "OTHER") for b in "UMA"],
        "110100001",
        strict=True,
    )
)
PERMISSIONS = f"<PERMISSIONS>{BITS}</PERMISSIONS>"
TEMPLATE = (
    "<TEMPLATE><CPU><![CDATA[0.5]]></CPU>"
    "<DISK><DISK_ID><![CDATA[0]]></DISK_ID><TARGET><![CDATA[hda]]></TARGET></DISK>"
    "<DISK><DISK_ID><![CDATA[1]]></DISK_ID><TYPE><![CDATA[swap]]></TYPE></DISK>"
    "<MEMORY><![CDATA[512]]></MEMORY><NIC><IP><![CDATA[10.0.0.7]]></IP></NIC><CONTEXT/>"
    "<NAME><![CDATA[web & db <1>]]></NAME></TEMPLATE>"
)
# Every number and name differs from the others, so two fields swapped would show.
TIMES = (
    "<PSTIME>101</PSTIME><PETIME>102</PETIME><RSTIME>103</RSTIME><RETIME>104</RETIME>"
    "<ESTIME>105</ESTIME><EETIME>106</EETIME>"
)
HISTORY_32 = (
    "<HISTORY><SEQ>{seq}</SEQ><HOSTNAME>node0{seq}</HOSTNAME><VM_DIR>/var/lib/one/</VM_DIR>"
    "<HID>1{seq}</HID><STIME>100</STIME><ETIME>99</ETIME><VMMMAD>vmm_kvm</VMMMAD>"
    f"<VNMMAD>dummy</VNMMAD><TMMAD>tm_shared</TMMAD>{TIMES}<REASON>2</REASON></HISTORY>"
)
HISTORY_34 = (
    "<HISTORY><SEQ>{seq}</SEQ><HOSTNAME>node0{seq}</HOSTNAME><HID>1{seq}</HID>"
    "<STIME>100</STIME><ETIME>99</ETIME><VMMMAD>vmm_kvm</VMMMAD><VNMMAD>dummy</VNMMAD>"
    f"{TIMES}<REASON>3</REASON></HISTORY>"
)
HISTORY_36 = (
    "<HISTORY><OID>7</OID><SEQ>{seq}</SEQ><HOSTNAME>node0{seq}</HOSTNAME><HID>1{seq}</HID>"
    "<STIME>100</STIME><ETIME>99</ETIME><VMMMAD>vmm_kvm</VMMMAD><VNMMAD>dummy</VNMMAD>"
    f"<TMMAD>shared</TMMAD><DS_ID>5</DS_ID>{TIMES}<REASON>4</REASON></HISTORY>"
)


def vm_doc(history: str = HISTORY_32, *, resched: str = "", seqs: tuple[int, ...] = (0,)) -> str:
    records = "".join(history.format(seq=seq) for seq in seqs)
    return (
        "<VM><ID>7</ID><UID>2</UID><GID>1</GID><UNAME>alice</UNAME><GNAME>users</GNAME>"
        f"<NAME>web01</NAME>{PERMISSIONS}<LAST_POLL>1338980100</LAST_POLL><STATE>3</STATE>"
        f"<LCM_STATE>2</LCM_STATE>{resched}<STIME>1338970000</STIME><ETIME>1338970001</ETIME>"
        "<DEPLOY_ID>one-7</DEPLOY_ID><MEMORY>524288</MEMORY><CPU>12</CPU><NET_TX>12345</NET_TX>"
        f"<NET_RX>678</NET_RX>{TEMPLATE}<HISTORY_RECORDS>{records}</HISTORY_RECORDS></VM>"
    )


VM_32 = vm_doc()
VM_34 = vm_doc(HISTORY_34)
VM_36 = vm_doc(HISTORY_36, resched="<RESCHED>1</RESCHED>")
# Right after `onedb upgrade`: the migrator's new elements come last.
VM_36_AFTER_ONEDB = vm_doc(HISTORY_36).replace("</VM>", "<RESCHED>0</RESCHED></VM>")

# Documents the fast path reads as well as the careful one.
READABLE = {
    "3.2": VM_32,
    "3.4": VM_34,
    "3.6": VM_36,
    "3.6 after onedb upgrade": VM_36_AFTER_ONEDB,
    "no history yet": vm_doc(seqs=()),
    "history records out of order": vm_doc(seqs=(2, 0, 1)),
    "no permissions (the XSDs allow that)": VM_32.replace(PERMISSIONS, ""),
    "empty texts": VM_32.replace("<DEPLOY_ID>one-7</DEPLOY_ID>", "<DEPLOY_ID/>").replace(
        "<NAME>web01</NAME>", "<NAME></NAME>"
    ),
    "whitespace around numbers": VM_32.replace("<STATE>3<", "<STATE> 3\n<").replace(
        "<SEQ>0<", "<SEQ>\t0 <"
    ),
    "repeated element: the first wins": VM_32.replace(
        "<NAME>web01</NAME>", "<NAME>first</NAME><NAME>second</NAME>"
    ),
    "empty template": VM_32.replace(TEMPLATE, "<TEMPLATE/>"),
}

# Documents the fast path hands to the careful reader, which reads them all the same.
HANDED_OVER = {
    "permission bit written 01": VM_32.replace("<OWNER_U>1<", "<OWNER_U>01<"),
    "permission bits in another order": VM_32.replace(
        "<OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M>", "<OWNER_M>1</OWNER_M><OWNER_U>1</OWNER_U>"
    ),
    "an extra element among the permissions": VM_32.replace(
        "</PERMISSIONS>", "<NOTE>x</NOTE></PERMISSIONS>"
    ),
}

# Documents that are wrong: the careful reader's message, fast path or not.
BROKEN = {
    "unknown state": (VM_32.replace("<STATE>3<", "<STATE>9<"), "<STATE> 9 is not a known VmState"),
    "unknown lcm state": (VM_34.replace("<LCM_STATE>2<", "<LCM_STATE>18<"), "LcmState"),
    "missing name": (VM_32.replace("<NAME>web01</NAME>", ""), "<VM> 7: <NAME> is missing"),
    "text for a number": (
        VM_32.replace("<LAST_POLL>1338980100<", "<LAST_POLL>soon<"),
        "<LAST_POLL> is not an integer: 'soon'",
    ),
    "empty number": (VM_32.replace("<CPU>12</CPU>", "<CPU/>"), "<CPU> is not an integer: ''"),
    "flag out of range": (VM_36.replace("<RESCHED>1<", "<RESCHED>2<"), "<RESCHED> is 2"),
    "bad permission bit": (
        VM_32.replace("<OTHER_A>1<", "<OTHER_A>3<"),
        "<VM> 7 <PERMISSIONS>: <OTHER_A> is 3, expected 0 or 1",
    ),
    "no history records": (
        VM_32.replace("<HISTORY_RECORDS>", "<X>").replace("</HISTORY_RECORDS>", "</X>"),
        "<HISTORY_RECORDS> is missing",
    ),
    "history without reason": (
        VM_34.replace("<REASON>3</REASON>", ""),
        "<VM> 7 <HISTORY_RECORDS> <HISTORY> 0: <REASON> is missing",
    ),
    "unknown history reason": (VM_32.replace("<REASON>2<", "<REASON>99<"), "HistoryReason"),
    "no template": (VM_32.replace(TEMPLATE, ""), "<TEMPLATE> is missing"),
}


def careful_pool(document: str) -> tuple[Vm, ...]:
    """The pool as the careful reader alone reads it."""
    return parse_pool(document, "VM_POOL", "VM", parse._vm, "one.vmpool.info")


def careful_vm(document: str) -> Vm:
    el = ET.fromstring(document)
    return parse._vm(Node(el, "one.vmpool.info: <VM> 7"))


def pool(*vms: str) -> str:
    return f"<VM_POOL>{''.join(vms)}</VM_POOL>"


@pytest.mark.parametrize("document", READABLE.values(), ids=READABLE.keys())
def test_fast_path_reads_what_the_careful_reader_reads(document: str) -> None:
    fast = _fast.vm(ET.fromstring(document))
    assert fast == careful_vm(document)
    assert repr(fast) == repr(careful_vm(document))
    assert parse.parse_vm_pool(pool(document)) == careful_pool(pool(document))


@pytest.mark.parametrize("document", HANDED_OVER.values(), ids=HANDED_OVER.keys())
def test_fast_path_hands_unusual_elements_to_the_careful_reader(document: str) -> None:
    with pytest.raises((KeyError, ValueError)):
        _fast.vm(ET.fromstring(document))
    assert parse.parse_vm_pool(pool(document)) == careful_pool(pool(document))


@pytest.mark.parametrize(("document", "words"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_vms_get_the_careful_readers_message(document: str, words: str) -> None:
    with pytest.raises((KeyError, ValueError)):
        _fast.vm(ET.fromstring(document))
    with pytest.raises(OneResponseError) as careful:
        careful_pool(pool(VM_34, document))
    with pytest.raises(OneResponseError) as caught:
        parse.parse_vm_pool(pool(VM_34, document), "one.vmpool.info")
    assert str(caught.value) == str(careful.value)
    assert str(caught.value).startswith("one.vmpool.info: ")
    assert words in str(caught.value)


def test_pool_mixing_layouts_and_surprises_matches_the_careful_reader() -> None:
    document = pool(*READABLE.values(), *HANDED_OVER.values())
    vms = parse.parse_vm_pool(document)
    assert vms == careful_pool(document)
    assert len(vms) == len(READABLE) + len(HANDED_OVER)
    assert [vm.history[0].seq for vm in vms if len(vm.history) == 3] == [0]


def test_vms_with_the_same_permissions_share_one_instance() -> None:
    first, second, other = parse.parse_vm_pool(
        pool(VM_32, VM_34, VM_36.replace("<OTHER_A>1<", "<OTHER_A>0<"))
    )
    assert first.permissions is second.permissions
    assert first.permissions is not None and first.permissions.octal == "641"
    assert other.permissions is not None and other.permissions.octal == "640"


def test_last_history_is_the_highest_seq() -> None:
    (vm,) = parse.parse_vm_pool(pool(vm_doc(seqs=(2, 0, 1))))
    assert vm.last_history is not None and vm.last_history.seq == 2
    assert vm.host == "node02"
    (single,) = parse.parse_vm_pool(pool(VM_34))
    assert single.host_id == 10


def test_fast_models_are_the_models_their_classes_build() -> None:
    (vm,) = parse.parse_vm_pool(pool(VM_36))
    assert type(vm) is Vm and type(vm.history[0]) is History
    assert vm == careful_vm(VM_36) and hash(vm) == hash(careful_vm(VM_36))
    with pytest.raises(dataclasses.FrozenInstanceError):
        vm.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        vm.history[0].seq = 9  # type: ignore[misc]
    assert dataclasses.replace(vm, name="other").name == "other"
    assert pickle.loads(pickle.dumps(vm)) == vm
    assert not hasattr(vm, "__dict__")


def test_fast_constructor_refuses_models_it_would_build_wrongly() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True, slots=True, weakref_slot=True)
    class Referable:
        value: int

    with pytest.raises(TypeError, match="__post_init__"):
        _fast._maker(Checked)
    with pytest.raises(TypeError):
        _fast._maker(Referable)
    make = _fast._maker(Permissions)
    assert make(*[True] * 9) == Permissions(*[True] * 9)


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as the test found it."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("enabled", [True, False])
def test_pool_parse_leaves_the_collector_on_or_off_as_it_was(enabled: bool) -> None:
    if enabled:
        gc.enable()
    else:
        gc.disable()
    parse.parse_vm_pool(pool(VM_32, VM_34))
    assert gc.isenabled() is enabled
    with pytest.raises(OneResponseError):
        parse.parse_vm_pool(pool(BROKEN["missing name"][0]))
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("collector")
def test_pool_parse_hands_its_models_to_the_oldest_generation() -> None:
    gc.collect()
    vms = parse.parse_vm_pool(pool(*[VM_36] * 50))
    young = {id(obj) for generation in (0, 1) for obj in gc.get_objects(generation)}
    assert not any(id(vm) in young or id(vm.history[0]) in young for vm in vms)
    assert any(obj is vms[0] for obj in gc.get_objects(2))


@pytest.mark.usefixtures("collector")
def test_pool_parse_does_not_unfreeze_what_someone_froze() -> None:
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    parse.parse_vm_pool(pool(VM_32))
    # Unfreezing empties the permanent generation. Its count may still drop by a few without
    # that: a frozen object that dies (another thread's, in a busy test worker) leaves it.
    assert gc.get_freeze_count() > frozen // 2
