"""Parsing recorded 3.2/3.4/3.6 HOST and VM documents (opennebula-3x.md section 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from upgrader.errors import OneResponseError
from upgrader.opennebula import (
    History,
    HistoryReason,
    Host,
    HostShare,
    HostState,
    LcmState,
    Permissions,
    Template,
    Vector,
    Vm,
    VmState,
)
from upgrader.opennebula.parse import parse_host, parse_host_pool, parse_vm, parse_vm_pool


def compact(xml: str) -> str:
    """Drop the indentation: oned writes no whitespace between elements."""
    return "".join(line.strip() for line in xml.splitlines())


SHARE = """
<HOST_SHARE>
  <DISK_USAGE>1</DISK_USAGE><MEM_USAGE>524288</MEM_USAGE><CPU_USAGE>100</CPU_USAGE>
  <MAX_DISK>2</MAX_DISK><MAX_MEM>16777216</MAX_MEM><MAX_CPU>800</MAX_CPU>
  <FREE_DISK>3</FREE_DISK><FREE_MEM>16252928</FREE_MEM><FREE_CPU>700</FREE_CPU>
  <USED_DISK>4</USED_DISK><USED_MEM>524200</USED_MEM><USED_CPU>90</USED_CPU>
  <RUNNING_VMS>1</RUNNING_VMS>
</HOST_SHARE>"""
EXPECTED_SHARE = HostShare(1, 524288, 100, 2, 16777216, 800, 3, 16252928, 700, 4, 524200, 90, 1)

PROBE_TEMPLATE = """
<TEMPLATE>
  <CPUSPEED><![CDATA[2.2GHz]]></CPUSPEED><FREECPU><![CDATA[800]]></FREECPU>
  <HOSTNAME><![CDATA[node01]]></HOSTNAME><HYPERVISOR><![CDATA[dummy]]></HYPERVISOR>
</TEMPLATE>"""
EXPECTED_PROBE_TEMPLATE = Template(
    [("CPUSPEED", "2.2GHz"), ("FREECPU", "800"), ("HOSTNAME", "node01"), ("HYPERVISOR", "dummy")]
)

HOST_32 = compact(f"""
<HOST>
  <ID>0</ID><NAME>node01</NAME><STATE>2</STATE>
  <IM_MAD>im_dummy</IM_MAD><VM_MAD>vmm_dummy</VM_MAD><VN_MAD>dummy</VN_MAD>
  <TM_MAD>tm_shared</TM_MAD>
  <LAST_MON_TIME>1338980000</LAST_MON_TIME>
  {SHARE}{PROBE_TEMPLATE}
</HOST>""")

HOST_34 = compact(f"""
<HOST>
  <ID>1</ID><NAME>node02</NAME><STATE>1</STATE>
  <IM_MAD>im_kvm</IM_MAD><VM_MAD>vmm_kvm</VM_MAD><VN_MAD>802.1Q</VN_MAD>
  <LAST_MON_TIME>1338980001</LAST_MON_TIME>
  <CLUSTER_ID>100</CLUSTER_ID><CLUSTER>production</CLUSTER>
  {SHARE}{PROBE_TEMPLATE}
</HOST>""")

# Right after `onedb upgrade` 3.2 -> 3.4: the migrator appends CLUSTER_ID/CLUSTER at the end.
HOST_34_AFTER_ONEDB = compact(f"""
<HOST>
  <ID>2</ID><NAME>node03</NAME><STATE>4</STATE>
  <IM_MAD>im_kvm</IM_MAD><VM_MAD>vmm_kvm</VM_MAD><VN_MAD>dummy</VN_MAD>
  <LAST_MON_TIME>0</LAST_MON_TIME>
  {SHARE}<TEMPLATE/><CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/>
</HOST>""")

HOST_36_ERROR = compact(f"""
<HOST>
  <ID>3</ID><NAME>node04</NAME><STATE>5</STATE>
  <IM_MAD>im_kvm</IM_MAD><VM_MAD>vmm_kvm</VM_MAD><VN_MAD>dummy</VN_MAD>
  <LAST_MON_TIME>1338980003</LAST_MON_TIME>
  <CLUSTER_ID>-1</CLUSTER_ID><CLUSTER></CLUSTER>
  {SHARE}
  <TEMPLATE>
    <ERROR><MESSAGE><![CDATA[Error monitoring host 3 : MONITOR FAILURE 3 ssh timeout]]></MESSAGE>
      <TIMESTAMP><![CDATA[Wed Jun  6 12:00:00 2012]]></TIMESTAMP></ERROR>
    <HOSTNAME><![CDATA[node04]]></HOSTNAME>
  </TEMPLATE>
</HOST>""")


def test_host_32_reads_every_field_and_tm_mad_but_no_cluster() -> None:
    assert parse_host(HOST_32) == Host(
        id=0,
        name="node01",
        state=HostState.MONITORED,
        im_mad="im_dummy",
        vm_mad="vmm_dummy",
        vn_mad="dummy",
        tm_mad="tm_shared",
        last_mon_time=1338980000,
        cluster_id=None,
        cluster=None,
        share=EXPECTED_SHARE,
        template=EXPECTED_PROBE_TEMPLATE,
    )


def test_host_34_has_cluster_and_no_tm_mad() -> None:
    host = parse_host(HOST_34)
    assert host == Host(
        id=1,
        name="node02",
        state=HostState.MONITORING,
        im_mad="im_kvm",
        vm_mad="vmm_kvm",
        vn_mad="802.1Q",
        tm_mad=None,
        last_mon_time=1338980001,
        cluster_id=100,
        cluster="production",
        share=EXPECTED_SHARE,
        template=EXPECTED_PROBE_TEMPLATE,
    )
    assert host.state is HostState.MONITORING_MONITORED  # the 3.6 name of 1


def test_host_34_after_onedb_reads_cluster_appended_at_the_end() -> None:
    host = parse_host(HOST_34_AFTER_ONEDB)
    assert (host.cluster_id, host.cluster, host.tm_mad) == (-1, "", None)
    assert host.state is HostState.DISABLED
    assert not host.is_enabled
    assert host.template == Template()
    assert host.share == EXPECTED_SHARE


def test_host_36_monitoring_error_with_error_vector() -> None:
    host = parse_host(HOST_36_ERROR)
    assert host.state is HostState.MONITORING_ERROR
    assert (host.cluster_id, host.cluster) == (-1, "")
    assert host.is_enabled
    assert host.error_message == "Error monitoring host 3 : MONITOR FAILURE 3 ssh timeout"
    assert host.template.text("HOSTNAME") == "node04"
    assert host.template["ERROR"] == (
        Vector(
            {
                "MESSAGE": "Error monitoring host 3 : MONITOR FAILURE 3 ssh timeout",
                "TIMESTAMP": "Wed Jun  6 12:00:00 2012",
            }
        ),
    )


def test_host_without_error_has_no_error_message() -> None:
    assert parse_host(HOST_32).error_message is None


def test_host_pool_keeps_order_and_mixed_layouts() -> None:
    pool = f"<HOST_POOL>{HOST_32}{HOST_34}{HOST_34_AFTER_ONEDB}{HOST_36_ERROR}</HOST_POOL>"
    assert [host.id for host in parse_host_pool(pool)] == [0, 1, 2, 3]


def test_empty_host_pool_is_an_empty_tuple() -> None:
    assert parse_host_pool("<HOST_POOL></HOST_POOL>") == ()
    assert parse_host_pool("<HOST_POOL/>") == ()


PERMISSIONS = """
<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>
  <GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A>
  <OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>1</OTHER_A></PERMISSIONS>"""
EXPECTED_PERMISSIONS = Permissions(True, True, False, True, False, False, False, False, True)

VM_HEAD = f"""
<ID>7</ID><UID>2</UID><GID>1</GID><UNAME>alice</UNAME><GNAME>users</GNAME>
<NAME>web01</NAME>{PERMISSIONS}
<LAST_POLL>1338980100</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"""
VM_MIDDLE = """
<STIME>1338970000</STIME><ETIME>0</ETIME><DEPLOY_ID>node01:web01:dummy</DEPLOY_ID>
<MEMORY>524288</MEMORY><CPU>12</CPU><NET_TX>12345</NET_TX><NET_RX>678</NET_RX>
<TEMPLATE>
  <CPU><![CDATA[1]]></CPU>
  <DISK>
    <CLONE><![CDATA[YES]]></CLONE><DISK_ID><![CDATA[0]]></DISK_ID>
    <IMAGE><![CDATA[ubuntu]]></IMAGE><IMAGE_ID><![CDATA[3]]></IMAGE_ID>
    <SOURCE><![CDATA[/var/lib/one/images/6fc2a6d1]]></SOURCE>
    <TARGET><![CDATA[hda]]></TARGET><TYPE><![CDATA[DISK]]></TYPE>
  </DISK>
  <DISK>
    <DISK_ID><![CDATA[1]]></DISK_ID><SIZE><![CDATA[1024]]></SIZE>
    <TARGET><![CDATA[hdb]]></TARGET><TYPE><![CDATA[swap]]></TYPE>
  </DISK>
  <MEMORY><![CDATA[512]]></MEMORY>
  <NAME><![CDATA[web01]]></NAME>
  <NIC><BRIDGE><![CDATA[br0]]></BRIDGE><IP><![CDATA[10.0.0.7]]></IP></NIC>
  <VMID><![CDATA[7]]></VMID>
</TEMPLATE>"""
EXPECTED_VM_TEMPLATE = Template(
    [
        ("CPU", "1"),
        (
            "DISK",
            Vector(
                {
                    "CLONE": "YES",
                    "DISK_ID": "0",
                    "IMAGE": "ubuntu",
                    "IMAGE_ID": "3",
                    "SOURCE": "/var/lib/one/images/6fc2a6d1",
                    "TARGET": "hda",
                    "TYPE": "DISK",
                }
            ),
        ),
        ("DISK", Vector({"DISK_ID": "1", "SIZE": "1024", "TARGET": "hdb", "TYPE": "swap"})),
        ("MEMORY", "512"),
        ("NAME", "web01"),
        ("NIC", Vector({"BRIDGE": "br0", "IP": "10.0.0.7"})),
        ("VMID", "7"),
    ]
)

HISTORY_32 = """
<HISTORY>
  <SEQ>{seq}</SEQ><HOSTNAME>{host}</HOSTNAME><VM_DIR>/var/lib/one/</VM_DIR><HID>{hid}</HID>
  <STIME>100{seq}</STIME><ETIME>{etime}</ETIME>
  <VMMMAD>vmm_dummy</VMMMAD><VNMMAD>dummy</VNMMAD><TMMAD>tm_shared</TMMAD>
  <PSTIME>101</PSTIME><PETIME>102</PETIME><RSTIME>103</RSTIME><RETIME>104</RETIME>
  <ESTIME>105</ESTIME><EETIME>106</EETIME><REASON>{reason}</REASON>
</HISTORY>"""

VM_32 = compact(f"""
<VM>{VM_HEAD}{VM_MIDDLE}
<HISTORY_RECORDS>
  {HISTORY_32.format(seq=0, host="node01", hid=0, etime=1338970050, reason=3)}
  {HISTORY_32.format(seq=1, host="node02", hid=1, etime=0, reason=0)}
</HISTORY_RECORDS>
</VM>""")

VM_34 = compact(f"""
<VM>{VM_HEAD}{VM_MIDDLE}
<HISTORY_RECORDS><HISTORY>
  <SEQ>0</SEQ><HOSTNAME>node01</HOSTNAME><HID>0</HID>
  <STIME>1338970005</STIME><ETIME>0</ETIME>
  <VMMMAD>vmm_dummy</VMMMAD><VNMMAD>dummy</VNMMAD>
  <PSTIME>1</PSTIME><PETIME>2</PETIME><RSTIME>3</RSTIME><RETIME>0</RETIME>
  <ESTIME>0</ESTIME><EETIME>0</EETIME><REASON>0</REASON>
</HISTORY></HISTORY_RECORDS>
</VM>""")

VM_36 = compact(f"""
<VM>{VM_HEAD}<RESCHED>1</RESCHED>{VM_MIDDLE}
<HISTORY_RECORDS><HISTORY>
  <OID>7</OID><SEQ>0</SEQ><HOSTNAME>node01</HOSTNAME><HID>0</HID>
  <STIME>1338970005</STIME><ETIME>0</ETIME>
  <VMMMAD>vmm_dummy</VMMMAD><VNMMAD>dummy</VNMMAD>
  <TMMAD>shared</TMMAD><DS_ID>0</DS_ID>
  <PSTIME>1</PSTIME><PETIME>2</PETIME><RSTIME>3</RSTIME><RETIME>0</RETIME>
  <ESTIME>0</ESTIME><EETIME>0</EETIME><REASON>0</REASON>
</HISTORY></HISTORY_RECORDS>
</VM>""")

# Right after `onedb upgrade` 3.4 -> 3.6: a pending VM, RESCHED appended after HISTORY_RECORDS.
VM_36_AFTER_ONEDB = compact(f"""
<VM>
  <ID>8</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>
  <NAME>db01</NAME>{PERMISSIONS}
  <LAST_POLL>0</LAST_POLL><STATE>1</STATE><LCM_STATE>0</LCM_STATE>
  <STIME>1338970000</STIME><ETIME>0</ETIME><DEPLOY_ID></DEPLOY_ID>
  <MEMORY>0</MEMORY><CPU>0</CPU><NET_TX>0</NET_TX><NET_RX>0</NET_RX>
  <TEMPLATE/><HISTORY_RECORDS/><RESCHED>0</RESCHED>
</VM>""")

COMMON_VM: dict[str, Any] = {
    "id": 7,
    "uid": 2,
    "gid": 1,
    "uname": "alice",
    "gname": "users",
    "name": "web01",
    "permissions": EXPECTED_PERMISSIONS,
    "last_poll": 1338980100,
    "state": VmState.ACTIVE,
    "lcm_state": LcmState.RUNNING,
    "stime": 1338970000,
    "etime": 0,
    "deploy_id": "node01:web01:dummy",
    "memory": 524288,
    "cpu": 12,
    "net_tx": 12345,
    "net_rx": 678,
    "template": EXPECTED_VM_TEMPLATE,
}


def test_vm_32_reads_all_history_records_with_vm_dir_and_tmmad() -> None:
    def history(seq: int, host: str, etime: int, reason: HistoryReason) -> History:
        return History(
            oid=None,
            seq=seq,
            hostname=host,
            vm_dir="/var/lib/one/",
            hid=seq,
            stime=1000 + seq,
            etime=etime,
            vmmmad="vmm_dummy",
            vnmmad="dummy",
            tmmad="tm_shared",
            ds_id=None,
            pstime=101,
            petime=102,
            rstime=103,
            retime=104,
            estime=105,
            eetime=106,
            reason=reason,
        )

    vm = parse_vm(VM_32)
    assert vm == Vm(
        **COMMON_VM,
        resched=None,
        history=(
            history(0, "node01", 1338970050, HistoryReason.USER),
            history(1, "node02", 0, HistoryReason.NONE),
        ),
    )
    assert (vm.host, vm.host_id) == ("node02", 1)


def test_vm_34_history_has_neither_vm_dir_nor_tmmad() -> None:
    vm = parse_vm(VM_34)
    assert vm == Vm(
        **COMMON_VM,
        resched=None,
        history=(
            History(
                oid=None,
                seq=0,
                hostname="node01",
                vm_dir=None,
                hid=0,
                stime=1338970005,
                etime=0,
                vmmmad="vmm_dummy",
                vnmmad="dummy",
                tmmad=None,
                ds_id=None,
                pstime=1,
                petime=2,
                rstime=3,
                retime=0,
                estime=0,
                eetime=0,
                reason=HistoryReason.NONE,
            ),
        ),
    )


def test_vm_36_has_resched_and_history_oid_tmmad_ds_id() -> None:
    vm = parse_vm(VM_36)
    assert vm.resched is True
    assert dataclasses.replace(vm, resched=None, history=()) == Vm(
        **COMMON_VM, resched=None, history=()
    )
    (record,) = vm.history
    assert (record.oid, record.tmmad, record.ds_id, record.vm_dir) == (7, "shared", 0, None)
    assert (vm.host, vm.host_id) == ("node01", 0)


def test_vm_36_after_onedb_reads_resched_appended_at_the_end() -> None:
    vm = parse_vm(VM_36_AFTER_ONEDB)
    assert vm.resched is False
    assert (vm.state, vm.lcm_state) == (VmState.PENDING, LcmState.LCM_INIT)
    assert vm.history == ()
    assert (vm.host, vm.host_id, vm.last_history) == (None, None, None)
    assert vm.deploy_id == ""
    assert vm.template == Template()
    assert vm.disks == ()


def test_vm_template_vectors_and_convenience_properties() -> None:
    vm = parse_vm(VM_32)
    assert [disk["TARGET"] for disk in vm.disks] == ["hda", "hdb"]
    assert vm.nics == (Vector({"BRIDGE": "br0", "IP": "10.0.0.7"}),)
    assert vm.template.text("MEMORY") == "512"
    assert vm.is_running
    assert not vm.is_transient
    assert not vm.is_done
    assert vm.permissions is not None
    assert vm.permissions.octal == "641"


def test_vm_pool_parses_every_version_layout() -> None:
    pool = f"<VM_POOL>{VM_32}{VM_34}{VM_36}{VM_36_AFTER_ONEDB}</VM_POOL>"
    vms = parse_vm_pool(pool)
    assert [vm.id for vm in vms] == [7, 7, 7, 8]
    assert [vm.resched for vm in vms] == [None, None, True, False]


def test_history_records_come_back_sorted_by_seq() -> None:
    swapped = VM_32.replace("<SEQ>0</SEQ>", "<SEQ>X</SEQ>").replace("<SEQ>1</SEQ>", "<SEQ>0</SEQ>")
    vm = parse_vm(swapped.replace("<SEQ>X</SEQ>", "<SEQ>1</SEQ>"))
    assert [record.seq for record in vm.history] == [0, 1]
    assert vm.host == "node01"  # the record that now carries SEQ 1


@pytest.mark.parametrize(
    ("state", "lcm", "transient"),
    [
        (VmState.INIT, LcmState.LCM_INIT, True),
        (VmState.PENDING, LcmState.LCM_INIT, False),
        (VmState.ACTIVE, LcmState.PROLOG, True),
        (VmState.ACTIVE, LcmState.BOOT, True),
        (VmState.ACTIVE, LcmState.RUNNING, False),
        (VmState.ACTIVE, LcmState.MIGRATE, True),
        (VmState.ACTIVE, LcmState.SAVE_STOP, True),
        (VmState.ACTIVE, LcmState.EPILOG, True),
        (VmState.ACTIVE, LcmState.UNKNOWN, False),
        (VmState.ACTIVE, LcmState.HOTPLUG, True),
        (VmState.STOPPED, LcmState.LCM_INIT, False),
        (VmState.DONE, LcmState.LCM_INIT, False),
    ],
)
def test_vm_is_transient(state: VmState, lcm: LcmState, transient: bool) -> None:
    vm = dataclasses.replace(parse_vm(VM_34), state=state, lcm_state=lcm)
    assert vm.is_transient is transient


def test_models_are_frozen_and_hashable() -> None:
    vm = parse_vm(VM_36)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vm.name = "other"  # type: ignore[misc]
    assert isinstance(vm.history, tuple)
    assert hash(vm) == hash(parse_vm(VM_36))
    assert hash(parse_host(HOST_36_ERROR)) == hash(parse_host(HOST_36_ERROR))


@pytest.mark.parametrize(
    ("parser", "document", "words"),
    [
        (parse_host, HOST_32.replace("<NAME>node01</NAME>", ""), ["<HOST> 0", "<NAME> is missing"]),
        (parse_host, HOST_32.replace("<STATE>2</STATE>", "<STATE>9</STATE>"), ["9", "HostState"]),
        (parse_host, HOST_32.replace("<MAX_CPU>800", "<MAX_CPU>lots"), ["<MAX_CPU>", "'lots'"]),
        (parse_host, HOST_32.replace("HOST_SHARE>", "SHARE>"), ["<HOST_SHARE> is missing"]),
        (parse_vm, VM_34.replace("<LCM_STATE>3<", "<LCM_STATE>18<"), ["<VM> 7", "LcmState"]),
        (parse_vm, VM_34.replace("<REASON>0</REASON>", ""), ["<HISTORY> 0", "<REASON> is missing"]),
        (parse_vm, VM_36.replace("<RESCHED>1<", "<RESCHED>2<"), ["<RESCHED> is 2"]),
        (parse_vm, VM_36.replace("<HISTORY_RECORDS>", "<HISTORY>", 1), ["malformed"]),
        (parse_host, HOST_32[:-20], ["malformed or truncated XML"]),
        (parse_host, "this is not xml", ["malformed or truncated XML"]),
        (parse_host, "<VM_POOL></VM_POOL>", ["expected a <HOST> document, got <VM_POOL>"]),
        (parse_host, '<!DOCTYPE x [<!ENTITY a "b">]><HOST/>', ["DTD"]),
        (parse_host, 42, ["expected an XML document, got int"]),
    ],
)
def test_bad_documents_raise_response_error_naming_the_source(
    parser: Callable[[object, str], object], document: object, words: list[str]
) -> None:
    with pytest.raises(OneResponseError) as caught:
        parser(document, "one.x.info")
    message = str(caught.value)
    assert message.startswith("one.x.info: ")
    for word in words:
        assert word in message
