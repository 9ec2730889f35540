"""Templates, secrets, enums and version detection logic: the pure parts of upgrader.opennebula."""

from __future__ import annotations

import pickle
from collections.abc import Mapping

import pytest

from upgrader.errors import OneResponseError
from upgrader.opennebula import (
    Host,
    HostState,
    ImageState,
    LcmState,
    OneVersion,
    Secret,
    Template,
    Vector,
    Vm,
    VmState,
)
from upgrader.opennebula.detect import MethodProbe, reconcile, version_from_probe, xml_markers
from upgrader.opennebula.parse import parse_host, parse_vm

SHARE_FIELDS = (
    "DISK_USAGE",
    "MEM_USAGE",
    "CPU_USAGE",
    "MAX_DISK",
    "MAX_MEM",
    "MAX_CPU",
    "FREE_DISK",
    "FREE_MEM",
    "FREE_CPU",
    "USED_DISK",
    "USED_MEM",
    "USED_CPU",
    "RUNNING_VMS",
)
ZERO_SHARE = "<HOST_SHARE>" + "".join(f"<{n}>0</{n}>" for n in SHARE_FIELDS) + "</HOST_SHARE>"

# --- Template / Vector ------------------------------------------------------------------------

DISK_A = Vector({"IMAGE_ID": "3", "TARGET": "hda"})
DISK_B = Vector({"TARGET": "hdb", "TYPE": "swap"})


def test_template_maps_simple_to_str_and_vectors_to_tuples() -> None:
    template = Template([("CPU", "1"), ("DISK", DISK_A), ("MEMORY", "512"), ("DISK", DISK_B)])
    assert isinstance(template, Mapping)
    assert template["CPU"] == "1"
    assert template["DISK"] == (DISK_A, DISK_B)
    assert list(template) == ["CPU", "DISK", "MEMORY"]
    assert len(template) == 3
    assert template.vectors("DISK") == (DISK_A, DISK_B)
    assert template.vectors("CPU") == ()
    assert template.vectors("NIC") == ()
    assert template.text("MEMORY") == "512"
    assert template.text("DISK") is None
    assert template.text("NIC") is None
    assert template.get("NIC") is None


def test_template_keeps_repeated_simple_attributes() -> None:
    template = Template([("REQUIREMENTS", "a"), ("NAME", "x"), ("REQUIREMENTS", "b")])
    assert template["REQUIREMENTS"] == "a"  # the first one, like oned's Template::get
    assert template.get_all("REQUIREMENTS") == ("a", "b")
    assert template.entries == (("REQUIREMENTS", "a"), ("NAME", "x"), ("REQUIREMENTS", "b"))


def test_template_and_vector_are_immutable_and_hashable() -> None:
    template = Template([("DISK", DISK_A)])
    with pytest.raises(TypeError):
        template["CPU"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError):
        DISK_A["TARGET"] = "hdc"  # type: ignore[index]
    with pytest.raises(AttributeError):
        template.extra = 1  # type: ignore[attr-defined]
    assert hash(template) == hash(Template([("DISK", Vector({"TARGET": "hda", "IMAGE_ID": "3"}))]))
    assert DISK_A == {"IMAGE_ID": "3", "TARGET": "hda"}
    assert Template([("A", "1")]) == {"A": "1"}
    assert Template([("A", "1")]) != Template([("A", "2")])
    assert "Vector" in repr(DISK_A)
    assert "DISK" in repr(template)


def test_vector_copies_its_input() -> None:
    source = {"TARGET": "hda"}
    vector = Vector(source)
    source["TARGET"] = "hdz"
    assert vector["TARGET"] == "hda"


def test_empty_vector_attribute_written_as_empty_element() -> None:
    host = parse_host(
        "<HOST><ID>0</ID><NAME>n</NAME><STATE>0</STATE><IM_MAD>i</IM_MAD><VM_MAD>v</VM_MAD>"
        f"<VN_MAD>d</VN_MAD><LAST_MON_TIME>0</LAST_MON_TIME>{ZERO_SHARE}"
        "<TEMPLATE><CONTEXT/><EMPTY/><NOTE><![CDATA[ a b ]]></NOTE></TEMPLATE></HOST>"
    )
    assert host.template["CONTEXT"] == (Vector(),)
    assert host.template["EMPTY"] == ""
    assert host.template["NOTE"] == " a b "  # values are kept verbatim


# --- Secret -------------------------------------------------------------------------------------


def test_secret_hides_its_value_everywhere_but_reveal() -> None:
    secret = Secret("oneadmin:opensesame")
    percent = "%s %r" % (secret, secret)  # noqa: UP031 - the way logging formats arguments
    for shown in (str(secret), repr(secret), f"{secret}", percent, f"{secret!r:>30}"):
        assert "opensesame" not in shown
    assert secret.reveal() == "oneadmin:opensesame"
    assert secret == Secret("oneadmin:opensesame")
    assert secret != "oneadmin:opensesame"
    assert hash(secret) == hash(Secret("oneadmin:opensesame"))
    assert bool(secret) and not bool(Secret(""))
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


# --- enums ----------------------------------------------------------------------------------------


def test_enums_use_the_3x_names_and_values() -> None:
    assert [state.name for state in HostState] == [
        "INIT",
        "MONITORING",
        "MONITORED",
        "ERROR",
        "DISABLED",
        "MONITORING_ERROR",
    ]
    assert HostState(1) is HostState.MONITORING is HostState.MONITORING_MONITORED
    assert [state.value for state in LcmState] == list(range(18))
    assert LcmState(15).name == "CLEANUP"
    assert VmState.DONE == 6
    assert ImageState.USED_PERS == 8


def test_one_version_orders_and_reads_as_text() -> None:
    assert OneVersion("3.4") is OneVersion.V3_4
    assert OneVersion.V3_2 < OneVersion.V3_4 < OneVersion.V3_6
    assert OneVersion.V3_6 >= OneVersion.V3_6 > OneVersion.V3_2
    assert OneVersion.V3_2 <= OneVersion.V3_2
    assert f"{OneVersion.V3_6}" == "3.6"
    assert sorted([OneVersion.V3_6, OneVersion.V3_2, OneVersion.V3_4]) == list(OneVersion)


# --- version detection (pure) -------------------------------------------------------------------


def probe(ds: bool, acct: bool, system_version: bool = False) -> MethodProbe:
    return MethodProbe(system_version=system_version, datastorepool_info=ds, vmpool_accounting=acct)


@pytest.mark.parametrize(
    ("ds", "acct", "version"),
    [(False, False, "3.2"), (True, False, "3.4"), (True, True, "3.6")],
)
def test_version_from_probe(ds: bool, acct: bool, version: str) -> None:
    assert version_from_probe(probe(ds, acct)) is OneVersion(version)


def test_impossible_method_sets_are_refused() -> None:
    with pytest.raises(OneResponseError, match=r"no OpenNebula 3\.x has this method set"):
        version_from_probe(probe(ds=False, acct=True))
    with pytest.raises(OneResponseError, match=r"3\.8 or newer"):
        version_from_probe(probe(ds=True, acct=True, system_version=True))


HOST_BASE = (
    "<HOST><ID>{id}</ID><NAME>n{id}</NAME><STATE>2</STATE><IM_MAD>i</IM_MAD><VM_MAD>v</VM_MAD>"
    "<VN_MAD>d</VN_MAD>{extra}<LAST_MON_TIME>0</LAST_MON_TIME>" + ZERO_SHARE + "<TEMPLATE/></HOST>"
)
VM_BASE = (
    "<VM><ID>{id}</ID><UID>0</UID><GID>0</GID><UNAME>a</UNAME><GNAME>b</GNAME><NAME>v</NAME>"
    "<LAST_POLL>0</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>{resched}"
    "<STIME>0</STIME><ETIME>0</ETIME><DEPLOY_ID/><MEMORY>0</MEMORY><CPU>0</CPU>"
    "<NET_TX>0</NET_TX><NET_RX>0</NET_RX><TEMPLATE/><HISTORY_RECORDS>{history}</HISTORY_RECORDS></VM>"
)
HISTORY_BASE = (
    "<HISTORY><SEQ>0</SEQ><HOSTNAME>n0</HOSTNAME><HID>0</HID><STIME>0</STIME><ETIME>0</ETIME>"
    "<VMMMAD>v</VMMMAD><VNMMAD>d</VNMMAD>{ds}<PSTIME>0</PSTIME><PETIME>0</PETIME>"
    "<RSTIME>0</RSTIME><RETIME>0</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME>"
    "<REASON>0</REASON></HISTORY>"
)


def host_32(ident: int) -> Host:
    return parse_host(HOST_BASE.format(id=ident, extra="<TM_MAD>tm_shared</TM_MAD>"))


def host_34(ident: int) -> Host:
    return parse_host(HOST_BASE.format(id=ident, extra="<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/>"))


def vm(ident: int, resched: str = "", ds: str = "") -> Vm:
    return parse_vm(VM_BASE.format(id=ident, resched=resched, history=HISTORY_BASE.format(ds=ds)))


def test_markers_from_each_version() -> None:
    assert xml_markers([], []) == ()
    (tm,) = xml_markers([host_32(0), host_32(1)], [vm(1)])
    assert tm.versions == {OneVersion.V3_2}
    assert tm.evidence == "host 0, 1 with <TM_MAD> (3.2 only)"
    (cluster,) = xml_markers([host_34(0)], [vm(1)])
    assert cluster.versions == {OneVersion.V3_4, OneVersion.V3_6}
    markers = xml_markers(
        [host_34(0)], [vm(1, resched="<RESCHED>0</RESCHED>", ds="<DS_ID>0</DS_ID>")]
    )
    assert [m.evidence for m in markers] == [
        "host 0 with <CLUSTER_ID> (3.4+)",
        "VM 1 with <RESCHED> (3.6 only)",
        "VM 1 with a history <DS_ID> (3.6 only)",
    ]


def test_marker_evidence_lists_at_most_five_ids() -> None:
    (marker,) = xml_markers([host_32(i) for i in range(8)], [])
    assert marker.evidence == "host 0, 1, 2, 3, 4 and 3 more with <TM_MAD> (3.2 only)"


def test_reconcile_accepts_agreeing_markers() -> None:
    assert reconcile(probe(False, False), xml_markers([host_32(0)], [vm(1)])) is OneVersion.V3_2
    assert reconcile(probe(True, False), xml_markers([host_34(0)], [vm(1)])) is OneVersion.V3_4
    resched = [vm(1, resched="<RESCHED>0</RESCHED>")]
    assert reconcile(probe(True, True), xml_markers([host_34(0)], resched)) is OneVersion.V3_6
    assert reconcile(probe(True, True), ()) is OneVersion.V3_6


def test_reconcile_explains_a_disagreement() -> None:
    with pytest.raises(OneResponseError) as caught:
        reconcile(probe(True, False), xml_markers([host_32(0)], [vm(4)]))
    message = str(caught.value)
    assert "the methods say OpenNebula 3.4" in message
    assert "one.datastorepool.info present, one.vmpool.accounting absent" in message
    assert "the XML says 3.2 (host 0 with <TM_MAD> (3.2 only))" in message
    assert caught.value.hint and "onedb version" in caught.value.hint


def test_reconcile_reports_contradicting_markers() -> None:
    markers = xml_markers([host_32(0)], [vm(1, resched="<RESCHED>1</RESCHED>")])
    with pytest.raises(OneResponseError, match="the XML says no single version"):
        reconcile(probe(True, True), markers)
